"""Catalog: the services table, and each tier's discount off catalog prices.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT_DISCOUNTS = {"free": 0, "payg": 0, "pro": 1_000, "enterprise": 2_000}


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_service", sa.String(length=120), nullable=False),
        sa.Column("cost", sa.Numeric(14, 4), nullable=False),
        sa.Column("cost_currency", sa.String(length=3), nullable=False),
        sa.Column("rental_cost_per_day", sa.Numeric(14, 4), nullable=True),
        sa.Column("markup_bps", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("synced_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint("cost >= 0", name=op.f("ck_services_cost_not_negative")),
        sa.CheckConstraint(
            "rental_cost_per_day IS NULL OR rental_cost_per_day >= 0", name=op.f("ck_services_rental_cost_not_negative")
        ),
        sa.CheckConstraint("markup_bps >= 10000", name=op.f("ck_services_markup_at_least_cost")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("slug", name=op.f("uq_services_slug")),
    )
    with op.batch_alter_table("tiers") as batch_op:
        batch_op.add_column(sa.Column("discount_bps", sa.Integer(), nullable=False, server_default="0"))
    tiers = sa.table("tiers", sa.column("name", sa.String), sa.column("discount_bps", sa.Integer))
    for name, discount in DEFAULT_DISCOUNTS.items():
        op.execute(tiers.update().where(tiers.c.name == name).values(discount_bps=discount))


def downgrade() -> None:
    with op.batch_alter_table("tiers") as batch_op:
        batch_op.drop_column("discount_bps")
    op.drop_table("services")
