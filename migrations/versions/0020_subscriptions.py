"""Subscriptions: each tier's monthly price and included credit (pro and enterprise sold by the month), the
subscriptions table (one current subscription per user), and the system accounts of plan prices and included credit.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# (price per month, included monthly credit) in kobo: NGN 5,000 with NGN 1,000 of credit, NGN 25,000 with 6,000.
DEFAULT_PLANS = {"pro": (500_000, 100_000), "enterprise": (2_500_000, 600_000)}
# namaskah.domain.wallet.models.SYSTEM_ACCOUNT_IDS
SYSTEM_ACCOUNTS = [
    ("subscriptions", "00000000-0000-7000-8000-0000000000b1"),
    ("included_credits", "00000000-0000-7000-8000-0000000000b2"),
]
CURRENT = "status IN ('active', 'past_due')"


def upgrade() -> None:
    with op.batch_alter_table("tiers") as batch_op:
        batch_op.add_column(sa.Column("price_per_month", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("included_monthly_credit", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.create_check_constraint(op.f("ck_tiers_price_not_negative"), "price_per_month >= 0")
        batch_op.create_check_constraint(op.f("ck_tiers_included_credit_not_negative"), "included_monthly_credit >= 0")
    tiers = sa.table(
        "tiers",
        sa.column("name", sa.String),
        sa.column("price_per_month", sa.BigInteger),
        sa.column("included_monthly_credit", sa.BigInteger),
    )
    for name, (price, credit) in DEFAULT_PLANS.items():
        op.execute(
            tiers.update().where(tiers.c.name == name).values(price_per_month=price, included_monthly_credit=credit)
        )

    op.create_table(
        "subscriptions",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("plan", sa.String(length=20), nullable=False),
        sa.Column("next_plan", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("anchor_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("current_period_start", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("current_period_end", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("ended_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'past_due', 'canceled', 'lapsed')", name=op.f("ck_subscriptions_status_known")
        ),
        sa.CheckConstraint("period >= 1", name=op.f("ck_subscriptions_period_positive")),
        sa.CheckConstraint("price >= 0", name=op.f("ck_subscriptions_price_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users")),
        sa.ForeignKeyConstraint(["plan"], ["tiers.name"], name=op.f("fk_subscriptions_plan_tiers")),
        sa.ForeignKeyConstraint(["next_plan"], ["tiers.name"], name=op.f("fk_subscriptions_next_plan_tiers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(op.f("ix_subscriptions_user_id"), "subscriptions", ["user_id"])
    op.create_index("ix_subscriptions_status_period_end", "subscriptions", ["status", "current_period_end"])
    # One current subscription per user, whatever the code does (partial: ended ones stay as history).
    op.create_index(
        "uq_subscriptions_user_current",
        "subscriptions",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text(CURRENT),
        sqlite_where=sa.text(CURRENT),
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
    op.bulk_insert(
        accounts,
        [
            {"id": uuid.UUID(account_id), "code": code, "currency": "NGN", "created_at": now, "updated_at": now}
            for code, account_id in SYSTEM_ACCOUNTS
        ],
    )


def downgrade() -> None:
    # Only accounts without entries can go: entries against them make the delete fail, as they should.
    codes = ", ".join(f"'{code}'" for code, _ in SYSTEM_ACCOUNTS)
    op.execute(sa.text(f"DELETE FROM ledger_accounts WHERE code IN ({codes})"))  # noqa: S608 - constants above
    op.drop_index("uq_subscriptions_user_current", table_name="subscriptions")
    op.drop_index("ix_subscriptions_status_period_end", table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_user_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    with op.batch_alter_table("tiers") as batch_op:
        batch_op.drop_constraint(op.f("ck_tiers_included_credit_not_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_tiers_price_not_negative"), type_="check")
        batch_op.drop_column("included_monthly_credit")
        batch_op.drop_column("price_per_month")
