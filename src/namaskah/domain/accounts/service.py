"""Registration, login (password, then the second factor when enabled) and the rotation of refresh tokens."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any, NoReturn

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.domain.accounts.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshReused,
    TotpRequired,
)
from namaskah.domain.accounts.models import RefreshToken, User
from namaskah.domain.accounts.schemas import TokenPair
from namaskah.domain.accounts.two_factor import TwoFactorService
from namaskah.domain.audit.service import Actor, AuditService
from namaskah.lib.errors import DomainError
from namaskah.lib.logging import get_logger
from namaskah.lib.security.passwords import PasswordHasher, check_password_policy
from namaskah.lib.security.tokens import AccessTokenCodec, hash_token, new_opaque_token

logger = get_logger(__name__)
REFRESH_PREFIX = "rt"


def normalize_email(email: str) -> str:
    return email.strip().lower()


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User


class AccountService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    """Users and their passwords."""

    repository_type = UserRepository

    def __init__(
        self, session: AsyncSession, *, hasher: PasswordHasher, two_factor: TwoFactorService, **kwargs: Any
    ) -> None:
        super().__init__(session=session, **kwargs)
        self.hasher = hasher
        self.two_factor = two_factor
        self.audit = AuditService(self.repository.session)

    async def register(self, email: str, password: str) -> User:
        email = normalize_email(email)
        check_password_policy(password, email=email)
        if await self.repository.exists(email=email):
            raise EmailTaken(f"{email} already has an account")
        user = User(email=email, password_hash=await asyncio.to_thread(self.hasher.hash, password))
        session = self.repository.session
        try:
            async with session.begin_nested():
                session.add(user)
        except IntegrityError:
            # Two registrations raced past the check above; the unique constraint decided.
            raise EmailTaken(f"{email} already has an account") from None
        logger.info("user_registered", user_id=str(user.id))
        return user

    async def authenticate(self, email: str, password: str, totp_code: str | None = None) -> User:
        """The user whose password this is, and whose TOTP or recovery code this is when 2FA is on.

        Unknown emails cost the same time as wrong passwords; the code is looked at only after the password.
        """
        # argon2id takes ~100 ms of CPU by design: in a thread, so the event loop keeps serving.
        user = await self.repository.get_one_or_none(email=normalize_email(email))
        if user is None:
            await asyncio.to_thread(self.hasher.verify_dummy, password)
            await self._refuse_login(InvalidCredentials(), email, None, "unknown_email")
        if not await asyncio.to_thread(self.hasher.verify, user.password_hash, password):
            await self._refuse_login(InvalidCredentials(), email, user, "wrong_password")
        if not user.is_active:
            await self._refuse_login(InvalidCredentials(), email, user, "account_disabled")
        try:
            await self.two_factor.verify_login_code(user, totp_code)
        except TotpRequired as exc:
            await self._refuse_login(
                exc, email, user, "second_factor_invalid" if totp_code else "second_factor_missing"
            )
        if self.hasher.needs_rehash(user.password_hash):
            # Parameters were raised since this hash was made: upgrade it while we hold the password.
            user.password_hash = await asyncio.to_thread(self.hasher.hash, password)
        await self.audit.record(
            "auth.login.succeeded",
            subject_type="user",
            subject_id=user.id,
            after={"two_factor": user.totp_enabled},
            actor=Actor.user(user.id),
        )
        return user

    async def _refuse_login(self, error: DomainError, email: str, user: User | None, reason: str) -> NoReturn:
        """The error rolls the request's transaction back, so the audit entry of a failed login is committed here."""
        await self.audit.record(
            "auth.login.failed",
            subject_type="user",
            subject_id=None if user is None else user.id,
            after={"email": normalize_email(email), "reason": reason},
        )
        await self.repository.session.commit()
        raise error


class RefreshTokenRepository(SQLAlchemyAsyncRepository[RefreshToken]):
    model_type = RefreshToken


class SessionService(SQLAlchemyAsyncRepositoryService[RefreshToken, RefreshTokenRepository]):
    """Login sessions: an access JWT plus a chain ("family") of single-use refresh tokens."""

    repository_type = RefreshTokenRepository

    def __init__(
        self, session: AsyncSession, *, codec: AccessTokenCodec, refresh_ttl: timedelta, **kwargs: Any
    ) -> None:
        super().__init__(session=session, **kwargs)
        self.codec = codec
        self.refresh_ttl = refresh_ttl

    async def start(self, user: User) -> TokenPair:
        return await self._issue(user.id, family_id=uuid.uuid4())

    async def rotate(self, refresh_token: str) -> TokenPair:
        """Spend a refresh token for a new pair. A spent token presented again means it was stolen (or the
        client lost a response): the whole family is revoked, and that revocation is committed."""
        now = utcnow()
        token = await self._find_for_update(refresh_token)
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            raise InvalidRefreshToken
        if not await self.repository.session.scalar(select(User.is_active).where(User.id == token.user_id)):
            raise InvalidRefreshToken("The account is disabled")
        if token.used_at is not None:
            await self._revoke_family(token.family_id, now)
            await AuditService(self.repository.session).record(
                "auth.session.reuse_revoked",
                subject_type="user",
                subject_id=token.user_id,
                after={"family_id": str(token.family_id)},
            )
            await self.repository.session.commit()
            logger.warning("refresh_token_reused", user_id=str(token.user_id), family_id=str(token.family_id))
            raise RefreshReused("This refresh token was already used; the session has been revoked")
        token.used_at = now
        return await self._issue(token.user_id, family_id=token.family_id, now=now)

    async def end(self, refresh_token: str) -> None:
        """Logout: revoke the session the token belongs to. Unknown tokens are ignored (idempotent)."""
        token = await self._find_for_update(refresh_token)
        if token is not None:
            await self._revoke_family(token.family_id, utcnow())

    async def _issue(self, user_id: uuid.UUID, *, family_id: uuid.UUID, now: datetime | None = None) -> TokenPair:
        now = now or utcnow()
        refresh = new_opaque_token(REFRESH_PREFIX)
        self.repository.session.add(
            RefreshToken(
                user_id=user_id,
                family_id=family_id,
                token_hash=hash_token(refresh),
                issued_at=now,
                expires_at=now + self.refresh_ttl,
            )
        )
        access, expires_in = self.codec.issue(str(user_id), now=now)
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=expires_in)

    async def _find_for_update(self, refresh_token: str) -> RefreshToken | None:
        # The row lock serialises two clients racing with the same token: the second sees it spent.
        query = select(RefreshToken).where(RefreshToken.token_hash == hash_token(refresh_token)).with_for_update()
        return (await self.repository.session.scalars(query)).one_or_none()

    async def _revoke_family(self, family_id: uuid.UUID, now: datetime) -> None:
        await self.repository.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
