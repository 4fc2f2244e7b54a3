"""Dependencies of the accounts routes: the services, and the authenticated user of a request."""

from __future__ import annotations

import uuid
from datetime import timedelta

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.errors import NotAuthenticated
from namaskah.domain.accounts.models import User
from namaskah.domain.accounts.service import AccountService, SessionService
from namaskah.lib.logging import bound_context


def provide_accounts(db_session: NamedDependency[AsyncSession], state: State) -> AccountService:
    return AccountService(session=db_session, hasher=state.password_hasher)


def provide_sessions(db_session: NamedDependency[AsyncSession], state: State) -> SessionService:
    settings = state.settings
    return SessionService(
        session=db_session, codec=state.token_codec, refresh_ttl=timedelta(seconds=settings.refresh_token_ttl)
    )


async def provide_current_user(
    request: Request[object, object, State], accounts: NamedDependency[AccountService]
) -> User:
    """The user of a valid `Authorization: Bearer <access token>`; 401 for anything else."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Send Authorization: Bearer <access token>")
    claims = request.app.state.token_codec.decode(token.strip())
    try:
        user_id = uuid.UUID(claims.sub)
    except ValueError:
        raise NotAuthenticated("Malformed token subject") from None
    user = await accounts.get_active(user_id)
    if user is None:
        raise NotAuthenticated("The account no longer exists or is disabled")
    bound_context()["user_id"] = str(user.id)
    return user


account_dependencies = {
    "accounts": Provide(provide_accounts, sync_to_thread=False),
    "sessions": Provide(provide_sessions, sync_to_thread=False),
    "current_user": Provide(provide_current_user),
}
