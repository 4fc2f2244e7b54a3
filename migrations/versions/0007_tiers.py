"""Tiers in the database: request limits and feature flags that operators edit; users.tier refers to them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# name, requests per minute, rentals, webhooks, area-code choice
DEFAULT_TIERS = [
    ("free", 10, False, False, False),
    ("payg", 30, True, False, False),
    ("pro", 100, True, True, True),
    ("enterprise", 500, True, True, True),
]


def upgrade() -> None:
    tiers = op.create_table(
        "tiers",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False),
        sa.Column("rentals", sa.Boolean(), nullable=False),
        sa.Column("webhooks", sa.Boolean(), nullable=False),
        sa.Column("area_code_choice", sa.Boolean(), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tiers")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        tiers,
        [
            {
                "name": name,
                "rate_limit_per_minute": limit,
                "rentals": rentals,
                "webhooks": webhooks,
                "area_code_choice": area_code,
                "updated_at": now,
            }
            for name, limit, rentals, webhooks, area_code in DEFAULT_TIERS
        ],
    )
    with op.batch_alter_table("users") as batch_op:
        batch_op.create_foreign_key(op.f("fk_users_tier_tiers"), "tiers", ["tier"], ["name"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint(op.f("fk_users_tier_tiers"), type_="foreignkey")
    op.drop_table("tiers")
