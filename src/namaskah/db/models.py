"""Imports every model module so the metadata is complete for Alembic and the migration check."""

from advanced_alchemy.base import metadata_registry

from namaskah.domain.accounts.email_tokens import AccountToken
from namaskah.domain.accounts.models import RecoveryCode, RefreshToken, User
from namaskah.domain.apikeys.models import ApiKey
from namaskah.domain.audit.models import AuditChainHead, AuditLog
from namaskah.domain.billing.models import BillingFlag, PaystackEvent, SandboxTransaction, Topup
from namaskah.domain.catalog.models import CatalogEntry
from namaskah.domain.invoices.models import Invoice, InvoiceCounter, InvoiceLine
from namaskah.domain.maintenance.models import Ping
from namaskah.domain.provider_events.models import ProviderEvent
from namaskah.domain.reconciliation.models import ReconciliationDifference
from namaskah.domain.rentals.models import Rental, RentalMessage
from namaskah.domain.subscriptions.models import Subscription
from namaskah.domain.tax.models import TaxRate
from namaskah.domain.tiers.models import TierPlan
from namaskah.domain.verifications.models import Verification, VerificationMessage
from namaskah.domain.wallet.models import LedgerAccount, LedgerEntry, LedgerTransaction
from namaskah.domain.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.providers.simulator_models import SimulatorMessage, SimulatorReservation

metadata = metadata_registry.get(None)

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditChainHead",
    "AuditLog",
    "BillingFlag",
    "CatalogEntry",
    "Invoice",
    "InvoiceCounter",
    "InvoiceLine",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "OutboxMessage",
    "PaystackEvent",
    "Ping",
    "ProviderEvent",
    "ReconciliationDifference",
    "RecoveryCode",
    "RefreshToken",
    "Rental",
    "RentalMessage",
    "SandboxTransaction",
    "SimulatorMessage",
    "SimulatorReservation",
    "Subscription",
    "TaxRate",
    "TierPlan",
    "Topup",
    "User",
    "Verification",
    "VerificationMessage",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "metadata",
]
