"""Dependencies of the accounts routes: the services, and the authenticated user of a request."""

from __future__ import annotations

import uuid
from datetime import timedelta

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.caller import identify, refusal
from namaskah.domain.accounts.email_tokens import AccountEmailService
from namaskah.domain.accounts.errors import NotAuthenticated
from namaskah.domain.accounts.login_throttle import LoginThrottle
from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.accounts.service import AccountService, SessionService
from namaskah.domain.accounts.two_factor import TwoFactorService
from namaskah.domain.apikeys.service import ApiKeyService
from namaskah.lib.logging import bound_context, get_logger

logger = get_logger(__name__)


def provide_two_factor(db_session: NamedDependency[AsyncSession], state: State) -> TwoFactorService:
    return TwoFactorService(session=db_session, issuer=state.settings.totp_issuer)


def provide_accounts(
    db_session: NamedDependency[AsyncSession], state: State, two_factor: NamedDependency[TwoFactorService]
) -> AccountService:
    return AccountService(session=db_session, hasher=state.password_hasher, two_factor=two_factor)


def provide_sessions(db_session: NamedDependency[AsyncSession], state: State) -> SessionService:
    settings = state.settings
    return SessionService(
        session=db_session, codec=state.token_codec, refresh_ttl=timedelta(seconds=settings.refresh_token_ttl)
    )


def provide_account_emails(db_session: NamedDependency[AsyncSession], state: State) -> AccountEmailService:
    return AccountEmailService(session=db_session, hasher=state.password_hasher, settings=state.settings)


def provide_login_throttle(state: State) -> LoginThrottle:
    return LoginThrottle(state.login_limiter, state.settings)


async def provide_principal(request: Request[object, object, State]) -> Principal:
    """The caller: `X-API-Key: <key>` (a partner) or `Authorization: Bearer <access token>`; 401 otherwise.

    Usually served from the caller cache without a query; routes that change the account take `account`."""
    caller = await identify(request)
    if caller is None:
        raise refusal(request)
    context = bound_context()
    context["user_id"] = str(caller.user.id)
    if caller.api_key is not None:
        context["api_key_id"] = str(caller.api_key.id)
        await _note_key_use(request.app.state, caller.api_key.id)
    return Principal(user=caller.user, api_key=caller.api_key)


async def provide_account(principal: NamedDependency[Principal], db_session: NamedDependency[AsyncSession]) -> User:
    """The caller's own row, loaded and locked in this request's session: for routes that change the account."""
    user = await db_session.get(User, principal.user.id, with_for_update=True)
    if user is None or not user.is_active:
        raise NotAuthenticated("The account no longer exists or is disabled")
    return user


def provide_current_user(principal: NamedDependency[Principal]) -> User:
    return principal.user


async def _note_key_use(state: State, api_key_id: uuid.UUID) -> None:
    """`last_used_at`, written at most once a minute per key and process, in a transaction of its own: a hint
    for the key's owner that must not fail the request it describes."""
    if not state.caller_cache.should_touch(api_key_id):
        return
    try:
        async with state.session_factory() as session:
            await ApiKeyService(session=session).touch(api_key_id)
            await session.commit()
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("api_key_touch_failed", api_key_id=str(api_key_id), error=type(exc).__name__)


account_dependencies = {
    "accounts": Provide(provide_accounts, sync_to_thread=False),
    "two_factor": Provide(provide_two_factor, sync_to_thread=False),
    "sessions": Provide(provide_sessions, sync_to_thread=False),
    "principal": Provide(provide_principal),
    "current_user": Provide(provide_current_user, sync_to_thread=False),
    "account": Provide(provide_account),
    "login_throttle": Provide(provide_login_throttle, sync_to_thread=False),
    "account_emails": Provide(provide_account_emails, sync_to_thread=False),
}
