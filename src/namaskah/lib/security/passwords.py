"""Argon2id password hashing and the policy every new password must pass."""

from __future__ import annotations

import secrets
import unicodedata
from functools import cache
from importlib.resources import files

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from namaskah.lib.errors import DomainError
from namaskah.settings import Settings

MIN_LENGTH = 10
# argon2 work does not grow with length, but hashing megabytes per attempt would still be a cheap DoS.
MAX_LENGTH = 256


class WeakPassword(DomainError):
    status_code = 422
    code = "weak_password"
    title = "Password too weak"


def _normalize(password: str) -> str:
    # NFKC, as NIST SP 800-63B advises: "é" typed as one code point or as e + accent is the same password.
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    """argon2id with the configured cost; verification never raises for a wrong password or a foreign hash."""

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=argon2.Type.ID
        )
        # Made with these very parameters, so verifying against it costs what a real verify costs.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(_normalize(password))

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, _normalize(password))
        except (VerificationError, InvalidHashError, UnicodeError):
            # UnicodeError: a non-ASCII "hash" or a password with lone surrogates; neither can match.
            return False

    def verify_dummy(self, password: str) -> bool:
        """Spend a real verify's time and answer False: login for an unknown email must not be faster."""
        self.verify(self._dummy_hash, password)
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


@cache
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords, lower-cased; read once."""
    text = files("namaskah.lib.security").joinpath("common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def check_password_policy(password: str, *, email: str) -> None:
    """Raise WeakPassword naming the rule that failed; the password itself never appears in the message."""
    normalized = _normalize(password)
    if len(normalized) < MIN_LENGTH:
        raise WeakPassword(f"The password must be at least {MIN_LENGTH} characters long.")
    if len(normalized) > MAX_LENGTH:
        raise WeakPassword(f"The password must be at most {MAX_LENGTH} characters long.")
    folded = normalized.casefold()
    address = _normalize(email.strip()).casefold()
    local_part = address.rpartition("@")[0] if "@" in address else address
    if folded in {address, local_part}:
        raise WeakPassword("The password must not be your email address or the part before the @.")
    if folded in common_passwords():
        raise WeakPassword("The password is one of the most commonly used passwords; choose another.")
