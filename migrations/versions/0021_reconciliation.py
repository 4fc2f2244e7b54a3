"""Reconciliation: the differences between Paystack's transactions and the ledger, stored once per run window.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

KINDS = "kind IN ('missed', 'phantom', 'amount', 'currency', 'status')"


def upgrade() -> None:
    op.create_table(
        "reconciliation_differences",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("window_start", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("window_end", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("paystack_status", sa.String(length=16), nullable=True),
        sa.Column("paystack_amount", sa.BigInteger(), nullable=True),
        sa.Column("paystack_currency", sa.String(length=3), nullable=True),
        sa.Column("our_status", sa.String(length=16), nullable=True),
        sa.Column("our_amount", sa.BigInteger(), nullable=True),
        sa.Column("our_currency", sa.String(length=3), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("found_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("resolved_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("resolved_by", GUID(length=16), nullable=True),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint(KINDS, name=op.f("ck_reconciliation_differences_kind_known")),
        sa.ForeignKeyConstraint(
            ["resolved_by"], ["users.id"], name=op.f("fk_reconciliation_differences_resolved_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_differences")),
        sa.UniqueConstraint(
            "window_start",
            "window_end",
            "reference",
            "kind",
            name=op.f("uq_reconciliation_differences_window_kind"),
        ),
    )
    op.create_index(
        "ix_reconciliation_differences_resolved_at_found_at", "reconciliation_differences", ["resolved_at", "found_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_differences_resolved_at_found_at", table_name="reconciliation_differences")
    op.drop_table("reconciliation_differences")
