"""Provider events: every push a provider sent (stored once per provider and event id) and what its job made of
it; indexes to find a verification or rental by the provider's reservation id.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC, JsonB
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_events",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("idempotency_key", sa.String(length=256), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("delivery_attempt", sa.Integer(), nullable=False),
        sa.Column("payload", JsonB, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("match_attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("processed_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'processed', 'unmatched', 'ignored')", name=op.f("ck_provider_events_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_events")),
        sa.UniqueConstraint("provider", "event_id", name=op.f("uq_provider_events_provider")),
    )
    op.create_index("ix_verifications_provider_id", "verifications", ["provider_id"])
    op.create_index("ix_rentals_provider_id", "rentals", ["provider_id"])


def downgrade() -> None:
    op.drop_index("ix_rentals_provider_id", table_name="rentals")
    op.drop_index("ix_verifications_provider_id", table_name="verifications")
    op.drop_table("provider_events")
