"""TOTP (RFC 6238) secrets, codes with their time step, and single-use recovery codes stored as hashes."""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime

import pyotp

from namaskah.lib.security.tokens import hash_token

CODE_PATTERN = re.compile(r"[0-9]{6}")
RECOVERY_CODE_COUNT = 10
# Lower-case letters and digits without the look-alikes i, l, o, 0 and 1: 31 symbols, log2(31) ≈ 4.95 bits each.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_GROUPS, RECOVERY_GROUP_LENGTH = 3, 5  # 15 symbols ≈ 74 bits


def new_secret() -> str:
    """160 random bits in base32, the size RFC 4226 recommends and authenticator apps expect."""
    return pyotp.random_base32()


def otpauth_uri(secret: str, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def is_totp_code(code: str) -> bool:
    return CODE_PATTERN.fullmatch(code) is not None


def matching_step(secret: str, code: str, now: datetime, *, valid_window: int = 1) -> int | None:
    """The time step whose code this is, within `valid_window` steps of `now` (clock drift), or None.

    Returning the step lets the caller refuse a code whose step is not newer than the last one accepted.
    """
    if not is_totp_code(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    matched: int | None = None
    # Every candidate is compared, in constant time, so timing does not tell which step matched.
    for step in range(current - valid_window, current + valid_window + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Distinct codes such as `k7mq2-xtrbe-9hw4n`, easy to read out and type."""
    codes: set[str] = set()
    while len(codes) < count:
        symbols = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH))
        groups = (symbols[i : i + RECOVERY_GROUP_LENGTH] for i in range(0, len(symbols), RECOVERY_GROUP_LENGTH))
        codes.add("-".join(groups))
    return sorted(codes)


def normalize_recovery_code(code: str) -> str:
    """Case, dashes and spaces do not matter: `K7MQ2 XTRBE 9HW4N` is `k7mq2-xtrbe-9hw4n`."""
    return "".join(code.split()).replace("-", "").lower()


def hash_recovery_code(code: str, *, salt: str) -> str:
    """SHA-256 of the normalised code, salted with its owner's id.

    ~74 bits is enough against guessing one user's codes, but an unsalted fast hash would let a stolen
    table be attacked for every user's codes at once.
    """
    return hash_token(f"{salt}:{normalize_recovery_code(code)}")
