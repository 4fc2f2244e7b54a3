"""Simulator: the embedded provider's reservations and delivered messages, shared by the API and the workers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "simulator_reservations",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=120), nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=256), nullable=False),
        sa.Column("cost", sa.Numeric(14, 4), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("expires_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind IN ('verification', 'rental')", name=op.f("ck_simulator_reservations_kind_known")),
        sa.CheckConstraint("cost >= 0", name=op.f("ck_simulator_reservations_cost_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulator_reservations")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_simulator_reservations_idempotency_key")),
        sa.UniqueConstraint("phone_number", name=op.f("uq_simulator_reservations_phone_number")),
    )
    op.create_table(
        "simulator_messages",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("reservation_id", GUID(length=16), nullable=False),
        sa.Column("text", sa.String(length=1600), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=True),
        sa.Column("sender", sa.String(length=32), nullable=True),
        sa.Column("received_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["simulator_reservations.id"],
            name=op.f("fk_simulator_messages_reservation_id_simulator_reservations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulator_messages")),
    )
    op.create_index(op.f("ix_simulator_messages_reservation_id"), "simulator_messages", ["reservation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_simulator_messages_reservation_id"), table_name="simulator_messages")
    op.drop_table("simulator_messages")
    op.drop_table("simulator_reservations")
