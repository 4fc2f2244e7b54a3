"""Dependencies of the operator routes: every admin service is built from the `operator`, so no admin handler
can reach one without the caller having proved to be an operator."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.accounts.deps import account_dependencies
from namaskah.domain.accounts.models import Role, User
from namaskah.domain.accounts.principal import Principal
from namaskah.domain.admin.service import AdminUserService
from namaskah.domain.audit.service import AuditService
from namaskah.lib.errors import DomainError


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    title = "Forbidden"


def operator_only(principal: NamedDependency[Principal]) -> User:
    """The caller, if it is an operator signed in with a session (401 comes earlier, from `principal`)."""
    if principal.api_key is not None:
        raise Forbidden("API keys cannot use operator routes; sign in as an operator")
    if principal.user.role != Role.OPERATOR:
        raise Forbidden("Operators only")
    return principal.user


def provide_admin_users(db_session: NamedDependency[AsyncSession], operator: NamedDependency[User]) -> AdminUserService:
    return AdminUserService(session=db_session)


def provide_audit_log(db_session: NamedDependency[AsyncSession], operator: NamedDependency[User]) -> AuditService:
    return AuditService(session=db_session)


admin_dependencies = {
    **account_dependencies,
    "operator": Provide(operator_only, sync_to_thread=False),
    "admin_users": Provide(provide_admin_users, sync_to_thread=False),
    "audit_log": Provide(provide_audit_log, sync_to_thread=False),
}
