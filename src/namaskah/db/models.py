"""Imports every model module so the metadata is complete for Alembic and the migration check."""

from advanced_alchemy.base import metadata_registry

from namaskah.domain.accounts.email_tokens import AccountToken
from namaskah.domain.accounts.models import RecoveryCode, RefreshToken, User
from namaskah.domain.apikeys.models import ApiKey
from namaskah.domain.audit.models import AuditChainHead, AuditLog
from namaskah.domain.catalog.models import CatalogEntry
from namaskah.domain.maintenance.models import Ping
from namaskah.domain.rentals.models import Rental, RentalMessage
from namaskah.domain.tiers.models import TierPlan
from namaskah.domain.verifications.models import Verification, VerificationMessage
from namaskah.domain.wallet.models import LedgerAccount, LedgerEntry, LedgerTransaction
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.providers.simulator_models import SimulatorMessage, SimulatorReservation

metadata = metadata_registry.get(None)

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditChainHead",
    "AuditLog",
    "CatalogEntry",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "OutboxMessage",
    "Ping",
    "RecoveryCode",
    "RefreshToken",
    "Rental",
    "RentalMessage",
    "SimulatorMessage",
    "SimulatorReservation",
    "TierPlan",
    "User",
    "Verification",
    "VerificationMessage",
    "metadata",
]
