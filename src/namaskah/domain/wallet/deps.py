"""Dependencies of the wallet routes: the caller's wallet service, and the operators' one for grants."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.session import service_provider
from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.models import User
from namaskah.domain.admin.deps import admin_dependencies
from namaskah.domain.wallet.service import WalletService


async def provide_balance(current_user: NamedDependency[User], state: State) -> int:
    """The caller's balance now, for answers that show it: a read session of its own, without the request's unit
    of work (nothing to commit), which costs a read-only route most of its time."""
    async with state.session_factory() as session:
        return await WalletService(session=session).balance_of(current_user.id)


def provide_admin_wallet(db_session: NamedDependency[AsyncSession], operator: NamedDependency[User]) -> WalletService:
    """Built from `operator`, like every admin service, so no grant handler runs for a caller who is not one."""
    return WalletService(session=db_session)


wallet_dependencies = {**account_dependencies, "wallet": service_provider(WalletService)}
admin_wallet_dependencies = {
    **admin_dependencies,
    "admin_wallet": Provide(provide_admin_wallet, sync_to_thread=False),
}
