"""Rentals: numbers kept for days, and every message they received.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rentals",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("service_name", sa.String(length=120), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_service", sa.String(length=120), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("price_per_day", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.String(length=200), nullable=True),
        sa.Column("starts_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("ends_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'expired', 'released', 'lapsed', 'failed')",
            name=op.f("ck_rentals_status_known"),
        ),
        sa.CheckConstraint("price >= 0", name=op.f("ck_rentals_price_not_negative")),
        sa.CheckConstraint("days > 0", name=op.f("ck_rentals_days_positive")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_rentals_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rentals")),
    )
    op.create_index(op.f("ix_rentals_user_id"), "rentals", ["user_id"])
    op.create_index(op.f("ix_rentals_ends_at"), "rentals", ["ends_at"])
    op.create_table(
        "rental_messages",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("rental_id", GUID(length=16), nullable=False),
        sa.Column("provider_message_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=1600), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=True),
        sa.Column("received_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rental_id"], ["rentals.id"], name=op.f("fk_rental_messages_rental_id_rentals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rental_messages")),
        sa.UniqueConstraint("rental_id", "provider_message_id", name=op.f("uq_rental_messages_rental_id")),
    )


def downgrade() -> None:
    op.drop_table("rental_messages")
    op.drop_index(op.f("ix_rentals_ends_at"), table_name="rentals")
    op.drop_index(op.f("ix_rentals_user_id"), table_name="rentals")
    op.drop_table("rentals")
