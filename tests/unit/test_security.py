"""Password hashing and policy, access tokens and opaque tokens, exercised with the real libraries."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from namaskah.lib.security import passwords
from namaskah.lib.security.passwords import MAX_LENGTH, PasswordHasher, WeakPassword, check_password_policy
from namaskah.lib.security.tokens import AccessTokenCodec, InvalidAccessToken, hash_token, new_opaque_token
from namaskah.settings import Settings, load_settings

SECRET, OTHER_SECRET = "k" * 64, "x" * 64  # 64 bytes: PyJWT warns about shorter HS512 keys
EMAIL = "Asha.Rao@example.com"
GOOD_PASSWORD = "violet-harbour-tram-42"
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def codec(**overrides: Any) -> AccessTokenCodec:
    options = {"secret": SECRET, "issuer": "namaskah", "audience": "namaskah-api", "ttl_seconds": 900}
    return AccessTokenCodec(**{**options, **overrides})


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides: object) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    base = {"sub": "user-1", "iat": now, "exp": now + 900, "jti": "j1", "iss": "namaskah", "aud": "namaskah-api"}
    return {key: value for key, value in {**base, **overrides}.items() if value is not None}


def test_hash_is_argon2id_and_verifies(hasher: PasswordHasher) -> None:
    stored = hasher.hash(GOOD_PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert hasher.verify(stored, GOOD_PASSWORD) is True
    assert hasher.verify(stored, GOOD_PASSWORD + "x") is False
    assert hasher.verify(stored, "\ud800" * 12) is False  # unencodable, not an error
    assert hasher.hash(GOOD_PASSWORD) != stored  # salted
    assert hasher.verify(hasher.hash("caf\u00e9-au-lait-9"), "cafe\u0301-au-lait-9") is True  # NFKC
    assert hasher.verify_dummy(GOOD_PASSWORD) is False  # its timing is measured by hand, not asserted


@pytest.mark.parametrize(
    "malformed",
    ["", "not a hash", "$argon2id$v=19$m=8192,t=1,p=1$garbage", "$2b$12$abcdefghijklmnopqrstuuNvW", "$argon2id$\u00e9"],
)
def test_malformed_or_foreign_hash_is_false_not_an_error(hasher: PasswordHasher, malformed: str) -> None:
    assert hasher.verify(malformed, GOOD_PASSWORD) is False
    assert hasher.needs_rehash(malformed) is True


def test_needs_rehash_flips_when_parameters_change(hasher: PasswordHasher) -> None:
    stored = hasher.hash(GOOD_PASSWORD)
    assert hasher.needs_rehash(stored) is False
    stronger = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)
    assert stronger.needs_rehash(stored) is True
    assert stronger.verify(stored, GOOD_PASSWORD) is True  # old hashes keep working until rehashed


def test_from_settings_uses_the_configured_cost() -> None:
    settings = Settings(argon2_time_cost=2, argon2_memory_cost=9216, argon2_parallelism=2)
    stored = PasswordHasher.from_settings(settings).hash(GOOD_PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=9216,t=2,p=2$")


@pytest.mark.parametrize(
    ("password", "email", "rule"),
    [
        ("short-pw1", EMAIL, "at least 10"),
        ("a" * (MAX_LENGTH + 1), EMAIL, f"at most {MAX_LENGTH}"),
        ("asha.rao@example.com", EMAIL, "email"),
        ("ASHA.RAO@EXAMPLE.COM", EMAIL, "email"),
        ("ASHA.RAO.KUMAR", "asha.rao.kumar@example.com", "email"),
        ("PASSWORD123", EMAIL, "commonly used"),
        ("QwertyUiop", EMAIL, "commonly used"),
        ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44123", EMAIL, "commonly used"),  # full-width password123
    ],
)
def test_policy_refuses(password: str, email: str, rule: str) -> None:
    with pytest.raises(WeakPassword, match=rule) as raised:
        check_password_policy(password, email=email)
    assert (raised.value.status_code, raised.value.code) == (422, "weak_password")
    assert password not in raised.value.detail


def test_policy_accepts_a_good_password_and_ships_the_list() -> None:
    check_password_policy(GOOD_PASSWORD, email=EMAIL)
    check_password_policy("a" * MAX_LENGTH, email=EMAIL)
    common = passwords.common_passwords()
    assert len(common) == 10_000
    assert {"password", "123456", "password123", "qwertyuiop"} <= common
    assert all(p == p.lower() and not p.startswith("#") for p in common)


def test_access_token_round_trip() -> None:
    now = datetime.now(UTC)
    token, expires_in = codec().issue("user-1", now=now)
    decoded = codec().decode(token)
    assert expires_in == 900
    assert (decoded.sub, decoded.iss, decoded.aud, decoded.scope) == ("user-1", "namaskah", "namaskah-api", "user")
    assert (decoded.iat, decoded.exp) == (int(now.timestamp()), int(now.timestamp()) + 900)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert codec().decode(codec().issue("user-1")[0]).jti != decoded.jti


def test_expiry_uses_the_given_clock_and_a_small_leeway() -> None:
    just_expired, _ = codec().issue("user-1", now=datetime.now(UTC) - timedelta(seconds=905))
    assert codec().decode(just_expired).sub == "user-1"
    with pytest.raises(InvalidAccessToken, match="expired"):
        codec().decode(codec().issue("user-1")[0], now=datetime.now(UTC) + HOUR)


def _signed(payload: dict[str, object], *, alg: str = "HS256", key: str = SECRET) -> str:
    return jwt.encode(payload, key, algorithm=alg)


def _swapped(*, header: dict[str, object] | None = None, payload: dict[str, object] | None = None) -> str:
    original = _signed(claims()).split(".")
    return ".".join([b64(header) if header else original[0], b64(payload) if payload else original[1], original[2]])


REFUSED: dict[str, tuple[Callable[[], str], str]] = {
    "alg none": (lambda: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.", "algorithm not allowed"),
    "header says HS512": (lambda: _swapped(header={"alg": "HS512", "typ": "JWT"}), "algorithm not allowed"),
    "header says RS256": (lambda: _swapped(header={"alg": "RS256", "typ": "JWT"}), "algorithm not allowed"),
    "really HS512": (lambda: _signed(claims(), alg="HS512"), "algorithm not allowed"),
    "wrong key": (lambda: _signed(claims(), key=OTHER_SECRET), "bad signature"),
    "tampered payload": (lambda: _swapped(payload=claims(sub="admin")), "bad signature"),
    "expired": (lambda: codec().issue("user-1", now=datetime.now(UTC) - HOUR)[0], "expired"),
    "issued in the future": (lambda: codec().issue("user-1", now=datetime.now(UTC) + HOUR)[0], "future"),
    "wrong audience": (lambda: codec(audience="someone-else").issue("user-1")[0], "wrong audience"),
    "wrong issuer": (lambda: codec(issuer="someone-else").issue("user-1")[0], "wrong issuer"),
    "missing jti": (lambda: _signed(claims(jti=None)), "missing claim jti"),
    "missing exp": (lambda: _signed(claims(exp=None)), "missing claim exp"),
    "missing sub": (lambda: _signed(claims(sub=None)), "missing claim sub"),
    "non-integer exp": (lambda: _signed(claims(exp="tomorrow")), "malformed claims"),
    "not a jwt": (lambda: "not-a-token", "malformed"),
    "empty": (lambda: "", "malformed"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused_access_tokens(case: str) -> None:
    make, reason = REFUSED[case]
    token = make()
    with pytest.raises(InvalidAccessToken) as raised:
        codec().decode(token)
    error = raised.value
    assert (error.status_code, error.code) == (401, "invalid_token")
    assert reason in error.detail
    assert error.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    assert all(part not in error.detail for part in token.split(".") if part)
    assert error.__cause__ is None  # PyJWT's message stays out of tracebacks and logs


def test_codec_configuration() -> None:
    settings = load_settings({"SECRET_KEY": SECRET, "ACCESS_TOKEN_TTL": "300"}, env_file=None)
    token, expires_in = AccessTokenCodec.from_settings(settings).issue("user-9")
    assert (expires_in, codec().decode(token).sub) == (300, "user-9")
    for algorithm in ("none", "RS256"):
        with pytest.raises(ValueError, match="unsupported algorithm"):
            codec(algorithm=algorithm)
    with pytest.raises(ValueError, match="timezone-aware"):
        codec().issue("user-1", now=datetime(2030, 1, 1))  # noqa: DTZ001


def test_opaque_tokens_are_prefixed_unique_and_hashed_with_sha256() -> None:
    tokens = {new_opaque_token("rt") for _ in range(100)}
    assert len(tokens) == 100
    assert all(re.fullmatch(r"rt_[A-Za-z0-9_-]{43}", t) for t in tokens)
    assert re.fullmatch(r"ev_[A-Za-z0-9_-]{22}", new_opaque_token("ev", 16))
    token = tokens.pop()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(token))
    assert hash_token(token) == hash_token(token) != hash_token(new_opaque_token("rt"))
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
