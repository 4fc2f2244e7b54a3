"""Imports every model module so the metadata is complete for Alembic and the migration check."""

from advanced_alchemy.base import metadata_registry

from namaskah.domain.accounts.models import RefreshToken, User
from namaskah.domain.maintenance.models import Ping
from namaskah.lib.outbox.models import OutboxMessage

metadata = metadata_registry.get(None)

__all__ = ["OutboxMessage", "Ping", "RefreshToken", "User", "metadata"]
