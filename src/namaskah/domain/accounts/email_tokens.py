"""Single-use mailed links (verify the email address, reset the password) and password changes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import ForeignKey, String, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from namaskah.db.base import UUIDv7Base, utcnow
from namaskah.domain.accounts.errors import (
    EmailAlreadyVerified,
    EmailTokenExpired,
    InvalidCredentials,
    InvalidEmailToken,
)
from namaskah.domain.accounts.models import RefreshToken, User
from namaskah.domain.accounts.service import normalize_email
from namaskah.domain.audit.service import Actor, AuditService
from namaskah.lib.logging import get_logger
from namaskah.lib.mail import Mail, SendMail
from namaskah.lib.mail_templates import EmailVerification, PasswordReset, render
from namaskah.lib.outbox.service import OutboxService
from namaskah.lib.security.passwords import PasswordHasher, check_password_policy
from namaskah.lib.security.tokens import hash_token, new_opaque_token
from namaskah.settings import Settings

logger = get_logger(__name__)
# No new mail this soon after the last one (whose link still works): asking again and again floods nobody.
RESEND_COOLDOWN = timedelta(minutes=1)


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose's name, not a password


# Prefixes tell people, secret scanners and the log redaction what a leaked token is.
TOKEN_PREFIXES = {TokenPurpose.VERIFY_EMAIL: "ev", TokenPurpose.RESET_PASSWORD: "pr"}
LINK_PATHS = {TokenPurpose.VERIFY_EMAIL: "/verify-email", TokenPurpose.RESET_PASSWORD: "/reset-password"}
TEMPLATES = {TokenPurpose.VERIFY_EMAIL: EmailVerification, TokenPurpose.RESET_PASSWORD: PasswordReset}


class AccountToken(UUIDv7Base):
    """A token mailed to a user in a link; only its SHA-256 is stored, and it works once, until `expires_at`."""

    __tablename__ = "account_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class AccountTokenRepository(SQLAlchemyAsyncRepository[AccountToken]):
    model_type = AccountToken


class AccountEmailService(SQLAlchemyAsyncRepositoryService[AccountToken, AccountTokenRepository]):
    """Mailed links and the password changes they and signed-in users make. A user has at most one live link
    per purpose: a new one replaces the earlier ones, and spending one spends them all."""

    repository_type = AccountTokenRepository

    def __init__(self, session: AsyncSession, *, hasher: PasswordHasher, settings: Settings, **kwargs: Any) -> None:
        super().__init__(session=session, **kwargs)
        self.session = session
        self.hasher = hasher
        self.settings = settings

    async def request_verification(self, user: User) -> None:
        """Mail a link that verifies the user's address; sent once this transaction commits."""
        if user.email_verified_at is not None:
            raise EmailAlreadyVerified("This account's email address is already verified.")
        await self._issue(user, TokenPurpose.VERIFY_EMAIL)

    async def verify_email(self, token: str) -> User:
        """Spend a verification link's token and mark the user's address verified."""
        now = utcnow()
        account_token, user = await self._find(token, TokenPurpose.VERIFY_EMAIL, now)
        await self._spend(account_token, now)
        if user.email_verified_at is None:
            user.email_verified_at = now
        await self._audit("auth.email.verified", user)
        logger.info("email_verified", user_id=str(user.id))
        return user

    async def request_password_reset(self, email: str) -> None:
        """Mail a reset link if the address has an active account; otherwise do nothing, and say nothing.

        The answer is the same either way, and neither path hashes a password or sends anything in the request:
        the times differ by a few small writes (registration's `email_taken` tells more than that anyway).
        """
        user = await self.session.scalar(select(User).where(User.email == normalize_email(email)))
        if user is None or not user.is_active:
            return
        await self._issue(user, TokenPurpose.RESET_PASSWORD)

    async def reset_password(self, token: str, new_password: str) -> User:
        """Set the password a reset link was mailed for, and end every session of the account."""
        now = utcnow()
        account_token, user = await self._find(token, TokenPurpose.RESET_PASSWORD, now)
        # A weak password leaves the token unspent: the user may try another with the same link.
        check_password_policy(new_password, email=user.email)
        password_hash = await asyncio.to_thread(self.hasher.hash, new_password)
        await self._spend(account_token, now)
        user.password_hash = password_hash
        if user.email_verified_at is None:
            # The link reached the mailbox, which proves the address as well as a verification link would.
            user.email_verified_at = now
        await self._revoke_sessions(user.id, now)
        await self._audit("auth.password.reset", user)
        logger.info("password_reset", user_id=str(user.id))
        return user

    async def change_password(
        self, user: User, current_password: str, new_password: str, *, keep_refresh_token: str | None = None
    ) -> User:
        """Replace a signed-in user's password. Every other session ends; the one of `keep_refresh_token`
        (the caller's own, if it sent it) stays."""
        user = await self._lock(user)
        if not await asyncio.to_thread(self.hasher.verify, user.password_hash, current_password):
            raise InvalidCredentials("The current password is wrong.")
        check_password_policy(new_password, email=user.email)
        user.password_hash = await asyncio.to_thread(self.hasher.hash, new_password)
        now = utcnow()
        keep = await self._family_of(user.id, keep_refresh_token) if keep_refresh_token else None
        await self._revoke_sessions(user.id, now, keep_family=keep)
        # A reset link mailed before the change must not undo it.
        await self.session.execute(
            delete(AccountToken).where(
                AccountToken.user_id == user.id, AccountToken.purpose == TokenPurpose.RESET_PASSWORD.value
            )
        )
        await self._audit("auth.password.changed", user)
        logger.info("password_changed", user_id=str(user.id))
        return user

    async def _audit(self, action: str, user: User) -> None:
        # A link's holder acts as the user it was mailed to; a signed-in caller is taken from the request.
        await AuditService(self.session).record(
            action, subject_type="user", subject_id=user.id, actor=Actor.user(user.id)
        )

    async def _issue(self, user: User, purpose: TokenPurpose) -> None:
        now = utcnow()
        # Concurrent requests for one user take turns, so the second sees the first one's token below.
        await self._lock(user)
        latest = await self.session.scalar(
            select(func.max(AccountToken.created_at)).where(
                AccountToken.user_id == user.id,
                AccountToken.purpose == purpose.value,
                AccountToken.used_at.is_(None),
            )
        )
        if latest is not None and latest > now - RESEND_COOLDOWN:
            logger.info("account_mail_skipped", purpose=purpose.value, user_id=str(user.id), reason="cooldown")
            return
        await self.session.execute(
            delete(AccountToken).where(AccountToken.user_id == user.id, AccountToken.purpose == purpose.value)
        )
        token = new_opaque_token(TOKEN_PREFIXES[purpose])
        ttl = timedelta(
            seconds=self.settings.email_verification_ttl
            if purpose is TokenPurpose.VERIFY_EMAIL
            else self.settings.password_reset_ttl
        )
        self.session.add(
            AccountToken(
                user_id=user.id,
                purpose=purpose.value,
                token_hash=hash_token(token),
                created_at=now,
                expires_at=now + ttl,
            )
        )
        job = SendMail.seal(
            self._render(purpose, user.email, token, ttl),
            purpose=purpose.value,
            user_id=user.id,
            secret_key=self.settings.secret_key,
        )
        await OutboxService(session=self.session).request(job)
        logger.info("account_mail_requested", purpose=purpose.value, user_id=str(user.id))

    def _render(self, purpose: TokenPurpose, to: str, token: str, ttl: timedelta) -> Mail:
        # In the fragment, the token never reaches a web server (its logs) nor a Referer header.
        link = f"{self.settings.public_base_url.rstrip('/')}{LINK_PATHS[purpose]}#token={token}"
        return render(TEMPLATES[purpose](link=link, expires_in=ttl), to=to)

    async def _find(self, token: str, purpose: TokenPurpose, now: datetime) -> tuple[AccountToken, User]:
        """The token's row and its user, or the refusal: unknown, spent, replaced or expired."""
        row = (
            await self.session.execute(
                select(AccountToken, User)
                .join(User, User.id == AccountToken.user_id)
                .where(AccountToken.token_hash == hash_token(token), AccountToken.purpose == purpose.value)
            )
        ).one_or_none()
        if row is None or row[0].used_at is not None or not row[1].is_active:
            raise InvalidEmailToken("This link is not valid, or it was already used; ask for a new one.")
        if row[0].expires_at <= now:
            raise EmailTokenExpired("This link has expired; ask for a new one.")
        return row[0], row[1]

    async def _spend(self, account_token: AccountToken, now: datetime) -> None:
        # One conditional UPDATE: of two requests racing with one token, the second waits for this row lock,
        # then matches nothing. The check in _find alone would let both through.
        spent = await self.session.scalar(
            update(AccountToken)
            .where(
                AccountToken.id == account_token.id,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(AccountToken.id)
        )
        if spent is None:
            raise InvalidEmailToken("This link was already used; ask for a new one.")
        await self.session.execute(
            delete(AccountToken).where(
                AccountToken.user_id == account_token.user_id,
                AccountToken.purpose == account_token.purpose,
                AccountToken.id != account_token.id,
            )
        )

    async def _revoke_sessions(
        self, user_id: uuid.UUID, now: datetime, *, keep_family: uuid.UUID | None = None
    ) -> None:
        query = update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        if keep_family is not None:
            query = query.where(RefreshToken.family_id != keep_family)
        await self.session.execute(query.values(revoked_at=now))

    async def _family_of(self, user_id: uuid.UUID, refresh_token: str) -> uuid.UUID | None:
        """The session of a live refresh token of this user; anyone else's token keeps nothing."""
        family: uuid.UUID | None = await self.session.scalar(
            select(RefreshToken.family_id).where(
                RefreshToken.token_hash == hash_token(refresh_token),
                RefreshToken.user_id == user_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
        )
        return family

    async def _lock(self, user: User) -> User:
        """Re-read the user's row under a lock held to commit: password and link changes apply one at a time."""
        query = select(User).where(User.id == user.id).with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(query)).one()
