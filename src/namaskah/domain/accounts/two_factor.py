"""TOTP two-factor authentication: setup, enable, disable, and the second factor of a login."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.domain.accounts.errors import (
    InvalidTotpCode,
    TotpAlreadyEnabled,
    TotpNotEnabled,
    TotpNotSetUp,
    TotpRequired,
)
from namaskah.domain.accounts.models import RecoveryCode, User
from namaskah.domain.accounts.schemas import RecoveryCodes, TotpSetup
from namaskah.domain.audit.service import Actor, AuditService
from namaskah.lib.logging import get_logger
from namaskah.lib.security import totp

logger = get_logger(__name__)


class RecoveryCodeRepository(SQLAlchemyAsyncRepository[RecoveryCode]):
    model_type = RecoveryCode


class TwoFactorService(SQLAlchemyAsyncRepositoryService[RecoveryCode, RecoveryCodeRepository]):
    """A user's TOTP secret and recovery codes; every accepted code is spent, so none works twice."""

    repository_type = RecoveryCodeRepository

    def __init__(self, session: AsyncSession, *, issuer: str, **kwargs: Any) -> None:
        super().__init__(session=session, **kwargs)
        self.issuer = issuer

    async def setup(self, user: User) -> TotpSetup:
        """A new pending secret (replacing any earlier one); it guards nothing until `enable` sees a code."""
        user = await self._lock(user)
        if user.totp_enabled:
            raise TotpAlreadyEnabled("Disable two-factor authentication before setting it up again.")
        secret = totp.new_secret()
        user.totp_secret = secret
        user.totp_last_step = None
        logger.info("totp_setup_started", user_id=str(user.id))
        return TotpSetup(secret=secret, otpauth_uri=totp.otpauth_uri(secret, account=user.email, issuer=self.issuer))

    async def enable(self, user: User, code: str) -> RecoveryCodes:
        """Turn 2FA on once the app proves it holds the secret; the recovery codes are shown only here."""
        user = await self._lock(user)
        if user.totp_enabled:
            raise TotpAlreadyEnabled
        if user.totp_secret is None:
            raise TotpNotSetUp("Call POST /v1/me/2fa/setup first.")
        now = utcnow()
        if not await self._spend_totp(user, user.totp_secret, "".join(code.split()), now):
            raise InvalidTotpCode("The code does not match; check the authenticator app's clock and try again.")
        user.totp_enabled_at = now
        codes = totp.new_recovery_codes()
        await self.repository.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        self.repository.session.add_all(
            RecoveryCode(user_id=user.id, code_hash=totp.hash_recovery_code(recovery, salt=str(user.id)))
            for recovery in codes
        )
        await self._audit("auth.2fa.enabled", user, enabled=True)
        logger.info("totp_enabled", user_id=str(user.id))
        return RecoveryCodes(recovery_codes=codes)

    async def disable(self, user: User, code: str) -> None:
        """Turn 2FA off with a current code or a recovery code; the secret and recovery codes are deleted."""
        user = await self._lock(user)
        if not user.totp_enabled:
            raise TotpNotEnabled
        if not await self._spend(user, code, utcnow()):
            raise InvalidTotpCode("The code is wrong or was already used.")
        user.totp_secret = None
        user.totp_enabled_at = None
        user.totp_last_step = None
        await self.repository.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        await self._audit("auth.2fa.disabled", user, enabled=False)
        logger.info("totp_disabled", user_id=str(user.id))

    async def verify_login_code(self, user: User, code: str | None) -> None:
        """The second factor of a login whose password was right: nothing to do unless 2FA is on."""
        if not user.totp_enabled:
            return
        if not code or not await self._spend(user, code, utcnow()):
            raise TotpRequired("Send the code from your authenticator app, or a recovery code, as totp_code.")

    async def _spend(self, user: User, code: str, now: datetime) -> bool:
        candidate = "".join(code.split())
        if totp.is_totp_code(candidate):
            return user.totp_secret is not None and await self._spend_totp(user, user.totp_secret, candidate, now)
        return await self._spend_recovery_code(user, code, now)

    async def _spend_totp(self, user: User, secret: str, code: str, now: datetime) -> bool:
        step = totp.matching_step(secret, code, now)
        if step is None:
            return False
        # One conditional UPDATE: a second request with the same code waits for this row lock, then matches
        # nothing, so the code is accepted once even by concurrent logins.
        spent = await self.repository.session.scalar(
            update(User)
            .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
            .returning(User.id)
        )
        return spent is not None

    async def _spend_recovery_code(self, user: User, code: str, now: datetime) -> bool:
        # The same conditional UPDATE as for TOTP codes: of two logins racing with one code, only one wins.
        spent = await self.repository.session.scalar(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == totp.hash_recovery_code(code, salt=str(user.id)),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .returning(RecoveryCode.id)
        )
        if spent is not None:
            # During a login nobody is signed in yet: the code itself proves the user.
            await AuditService(self.repository.session).record(
                "auth.recovery_code.used",
                subject_type="user",
                subject_id=user.id,
                after={"code_id": str(spent)},
                actor=Actor.current(fallback_user_id=user.id),
            )
            logger.info("recovery_code_used", user_id=str(user.id))
        return spent is not None

    async def _audit(self, action: str, user: User, *, enabled: bool) -> None:
        await AuditService(self.repository.session).record(
            action,
            subject_type="user",
            subject_id=user.id,
            before={"two_factor": not enabled},
            after={"two_factor": enabled},
        )

    async def _lock(self, user: User) -> User:
        """Re-read the user's row under a lock held to commit, so concurrent 2FA changes apply one at a time."""
        query = select(User).where(User.id == user.id).with_for_update().execution_options(populate_existing=True)
        return (await self.repository.session.scalars(query)).one()
