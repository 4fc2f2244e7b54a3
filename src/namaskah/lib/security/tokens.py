"""Short-lived JWT access tokens, and opaque tokens (refresh, one-time) that are stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

import jwt
import msgspec

from namaskah.lib.errors import DomainError
from namaskah.settings import Settings

LEEWAY_SECONDS = 10
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti"]
# Symmetric only: the codec has one shared secret, so an asymmetric algorithm would be a misconfiguration.
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


class AccessClaims(msgspec.Struct, frozen=True):
    sub: str
    iat: int
    exp: int
    jti: str
    iss: str
    aud: str
    scope: str = "user"


class InvalidAccessToken(DomainError):
    status_code = 401
    code = "invalid_token"
    title = "Invalid or expired access token"

    def __init__(self, reason: str = "invalid") -> None:
        super().__init__(
            f"The access token was refused: {reason}.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
        self.reason = reason


# Fixed reasons rather than PyJWT's messages, which may quote parts of the token.
_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not valid yet"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.DecodeError, "malformed"),
]


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"  # one of REQUIRED_CLAIMS, never token text
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "invalid")


def _timestamp(now: datetime | None) -> int:
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(moment.timestamp())


class AccessTokenCodec:
    """Issues and checks signed access tokens; the algorithm is pinned, every claim is required."""

    def __init__(self, *, secret: str, issuer: str, audience: str, ttl_seconds: int, algorithm: str = "HS256") -> None:
        if algorithm not in HMAC_ALGORITHMS:
            raise ValueError(f"unsupported algorithm {algorithm!r}; use one of {sorted(HMAC_ALGORITHMS)}")
        if not secret:
            raise ValueError("secret must not be empty")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._algorithm = algorithm
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessTokenCodec:
        return cls(
            secret=settings.secret_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl,
        )

    def issue(self, subject: str, *, now: datetime | None = None) -> tuple[str, int]:
        """Return the token and its lifetime in seconds (the `expires_in` of a token response)."""
        issued_at = _timestamp(now)
        claims = {
            "sub": subject,
            "iat": issued_at,
            "exp": issued_at + self.ttl_seconds,
            "jti": secrets.token_urlsafe(16),
            "iss": self._issuer,
            "aud": self._audience,
            "scope": "user",
        }
        return jwt.encode(claims, self._secret, algorithm=self._algorithm), self.ttl_seconds

    def decode(self, token: str, *, now: datetime | None = None) -> AccessClaims:
        """Verified claims, or InvalidAccessToken with a short reason."""
        moment = _timestamp(now)
        try:
            # PyJWT reads the clock itself; exp and iat are checked below against `now` instead.
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_iat": False},
                leeway=LEEWAY_SECONDS,
            )
            claims = msgspec.convert(payload, AccessClaims)
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken(_reason(exc)) from None
        except msgspec.ValidationError:
            raise InvalidAccessToken("malformed claims") from None
        if claims.exp <= moment - LEEWAY_SECONDS:
            raise InvalidAccessToken("expired")
        if claims.iat > moment + LEEWAY_SECONDS:
            raise InvalidAccessToken("issued in the future")
        return claims


def new_opaque_token(prefix: str, nbytes: int = 32) -> str:
    """A random bearer secret such as `rt_...`; the prefix tells humans and secret scanners what it is."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_token(token: str) -> str:
    """SHA-256 hex: opaque tokens carry 256 random bits, so a fast hash is safe and lets us look them up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
