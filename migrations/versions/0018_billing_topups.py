"""Billing: top-ups, Paystack events stored once per event key, operators' billing flags, the dev sandbox's
transactions, and the `disputes` system account that holds credits while a chargeback is open.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

# namaskah.domain.wallet.models.SYSTEM_ACCOUNT_IDS[SystemAccount.DISPUTES]
DISPUTES_ACCOUNT = ("disputes", "00000000-0000-7000-8000-0000000000d1")


def upgrade() -> None:
    op.create_table(
        "paystack_events",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", JsonB, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("source_ip", sa.String(length=45), nullable=True),
        sa.Column("received_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("processed_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'processed', 'ignored', 'flagged')", name=op.f("ck_paystack_events_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paystack_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_paystack_events_event_key")),
    )
    op.create_table(
        "paystack_sandbox_transactions",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("paystack_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("access_code", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("metadata", JsonB, nullable=True),
        sa.Column("callback_url", sa.String(length=2048), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("paid_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paystack_sandbox_transactions")),
        sa.UniqueConstraint("paystack_id", name=op.f("uq_paystack_sandbox_transactions_paystack_id")),
        sa.UniqueConstraint("reference", name=op.f("uq_paystack_sandbox_transactions_reference")),
    )
    op.create_table(
        "topups",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("authorization_url", sa.String(length=2048), nullable=True),
        sa.Column("access_code", sa.String(length=100), nullable=True),
        sa.Column("paystack_id", sa.BigInteger(), nullable=True),
        sa.Column("paid_amount", sa.BigInteger(), nullable=True),
        sa.Column("paid_currency", sa.String(length=3), nullable=True),
        sa.Column("paid_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("settled_by", sa.String(length=16), nullable=True),
        sa.Column("failure", sa.String(length=200), nullable=True),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("frozen_amount", sa.BigInteger(), nullable=False),
        sa.Column("flagged_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('initializing', 'pending', 'success', 'failed', 'mismatch')",
            name=op.f("ck_topups_status_known"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_topups_amount_positive")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_topups_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topups")),
        sa.UniqueConstraint("reference", name=op.f("uq_topups_reference")),
    )
    op.create_index("ix_topups_user_id_created_at", "topups", ["user_id", "created_at"], unique=False)
    op.create_table(
        "billing_flags",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("topup_id", GUID(length=16), nullable=True),
        sa.Column("user_id", GUID(length=16), nullable=True),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["topup_id"], ["topups.id"], name=op.f("fk_billing_flags_topup_id_topups")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_billing_flags_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_flags")),
        sa.UniqueConstraint("key", name=op.f("uq_billing_flags_key")),
    )
    accounts = sa.table(
        "ledger_accounts",
        sa.column("id", GUID(length=16)),
        sa.column("code", sa.String(40)),
        sa.column("currency", sa.String(3)),
        sa.column("created_at", DateTimeUTC(timezone=True)),
        sa.column("updated_at", DateTimeUTC(timezone=True)),
    )
    now = datetime.now(UTC)
    code, account_id = DISPUTES_ACCOUNT
    op.bulk_insert(
        accounts,
        [{"id": uuid.UUID(account_id), "code": code, "currency": "NGN", "created_at": now, "updated_at": now}],
    )


def downgrade() -> None:
    # Only an empty disputes account can go: entries against it would make the delete fail, as they should.
    op.execute(sa.text("DELETE FROM ledger_accounts WHERE code = 'disputes'"))
    op.drop_table("billing_flags")
    op.drop_index("ix_topups_user_id_created_at", table_name="topups")
    op.drop_table("topups")
    op.drop_table("paystack_sandbox_transactions")
    op.drop_table("paystack_events")
