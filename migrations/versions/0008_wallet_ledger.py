"""Wallet ledger: accounts (a wallet per user, system accounts), transactions unique on reference, and entries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The system accounts and their fixed ids (namaskah.domain.wallet.models.SYSTEM_ACCOUNT_IDS).
SYSTEM_ACCOUNTS = [
    ("revenue", "00000000-0000-7000-8000-000000000001"),
    ("refunds", "00000000-0000-7000-8000-000000000002"),
    ("grants", "00000000-0000-7000-8000-000000000003"),
    ("paystack_clearing", "00000000-0000-7000-8000-000000000004"),
]


def upgrade() -> None:
    accounts = op.create_table(
        "ledger_accounts",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=True),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_ledger_accounts_balance_not_negative")),
        sa.CheckConstraint(
            "(user_id IS NOT NULL AND code IS NULL AND balance IS NOT NULL AND last_sequence IS NOT NULL)"
            " OR (user_id IS NULL AND code IS NOT NULL AND balance IS NULL AND last_sequence IS NULL)",
            name=op.f("ck_ledger_accounts_wallet_or_system"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_ledger_accounts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_ledger_accounts_code")),
        sa.UniqueConstraint("user_id", name=op.f("uq_ledger_accounts_user_id")),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_transactions_amount_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("reference", name=op.f("uq_ledger_transactions_reference")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("transaction_id", GUID(length=16), nullable=False),
        sa.Column("account_id", GUID(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("balance_after", sa.BigInteger(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_entries_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.id"], name=op.f("fk_ledger_entries_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("account_id", "sequence", name=op.f("uq_ledger_entries_account_id")),
        sa.UniqueConstraint("transaction_id", "account_id", name=op.f("uq_ledger_entries_transaction_id")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        accounts,
        [
            {"id": uuid.UUID(account_id), "code": code, "currency": "NGN", "created_at": now, "updated_at": now}
            for code, account_id in SYSTEM_ACCOUNTS
        ],
    )


def downgrade() -> None:
    op.drop_table("ledger_entries")
    op.drop_table("ledger_transactions")
    op.drop_table("ledger_accounts")
