"""Dependencies of the accounts routes: the services, and the authenticated user of a request."""

from __future__ import annotations

from datetime import timedelta

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.caller import identify, refusal
from namaskah.domain.accounts.email_tokens import AccountEmailService
from namaskah.domain.accounts.login_throttle import LoginThrottle
from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.accounts.service import AccountService, SessionService
from namaskah.domain.accounts.two_factor import TwoFactorService
from namaskah.domain.apikeys.service import ApiKeyService
from namaskah.lib.logging import bound_context


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


async def provide_principal(
    request: Request[object, object, State], db_session: NamedDependency[AsyncSession]
) -> Principal:
    """The caller: `X-API-Key: <key>` (a partner) or `Authorization: Bearer <access token>`; 401 otherwise."""
    caller = await identify(request)
    if caller is None:
        raise refusal(request)
    # Looked up already (by the rate-limit guard): attach those rows to this session without a second query.
    user = await db_session.merge(caller.user, load=False)
    api_key = await db_session.merge(caller.api_key, load=False) if caller.api_key is not None else None
    context = bound_context()
    context["user_id"] = str(user.id)
    if api_key is not None:
        context["api_key_id"] = str(api_key.id)
        if request.app.state.caller_cache.should_touch(api_key.id):
            await ApiKeyService(session=db_session).touch(api_key.id)
    return Principal(user=user, api_key=api_key)


def provide_current_user(principal: NamedDependency[Principal]) -> User:
    return principal.user


account_dependencies = {
    "accounts": Provide(provide_accounts, sync_to_thread=False),
    "two_factor": Provide(provide_two_factor, sync_to_thread=False),
    "sessions": Provide(provide_sessions, sync_to_thread=False),
    "principal": Provide(provide_principal),
    "current_user": Provide(provide_current_user, sync_to_thread=False),
    "login_throttle": Provide(provide_login_throttle, sync_to_thread=False),
    "account_emails": Provide(provide_account_emails, sync_to_thread=False),
}
