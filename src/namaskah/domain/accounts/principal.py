"""Who is calling: a user with a session (access token), or a user acting through a scoped API key."""

from __future__ import annotations

from dataclasses import dataclass

from namaskah.domain.accounts.models import User
from namaskah.domain.apikeys.models import ApiKey
from namaskah.lib.errors import DomainError


class InsufficientScope(DomainError):
    status_code = 403
    code = "insufficient_scope"
    title = "Insufficient scope"


@dataclass(frozen=True, slots=True)
class Principal:
    """`user` and `api_key` are read-only snapshots shared with other requests (the caller cache): never change
    them; a route that changes the account takes the `account` dependency, a row of its own session."""

    user: User
    api_key: ApiKey | None = None

    def require(self, scope: str) -> None:
        """A session may do all its user may; a key only what its scopes say."""
        if self.api_key is not None and scope not in self.api_key.scopes:
            raise InsufficientScope(f"This API key lacks the {scope!r} scope")

    def require_session(self, action: str = "manage API keys") -> None:
        """Managing credentials takes the user's own session, never an API key."""
        if self.api_key is not None:
            raise InsufficientScope(f"Sign in as the account owner to {action}")
