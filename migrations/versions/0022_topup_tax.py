"""Tax on top-ups: what a top-up charges besides what it credits, and the tax quote it was charged at; an invoice's
tax basis (`charged`, or 0 here because the tax is charged on the top-ups or when prepaid credits are used).

Earlier top-ups were charged exactly their amount. Columns are added in place, never by a batch rebuild: on SQLite
a rebuilt `invoices` table would lose the triggers that keep invoices immutable (migration 0019). Adding a column
fires no row trigger.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_TOPUP_QUOTE = (
    ("tax_point", sa.String(length=8)),
    ("tax_mode", sa.String(length=10)),
    ("tax_country", sa.String(length=2)),
    ("tax_name", sa.String(length=40)),
    ("tax_rate_bps", sa.Integer()),
)


def upgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    # NOT NULL with a temporary default, then every existing top-up's charge is its amount.
    op.add_column("topups", sa.Column("charged_amount", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE topups SET charged_amount = amount")
    op.add_column("topups", sa.Column("tax_amount", sa.BigInteger(), nullable=False, server_default="0"))
    for name, type_ in _TOPUP_QUOTE:
        op.add_column("topups", sa.Column(name, type_, nullable=True))
    op.add_column("invoices", sa.Column("tax_basis", sa.String(length=16), nullable=False, server_default="charged"))
    if postgresql:  # SQLite can not add a constraint to a table in place (and a rebuild is what we avoid)
        op.alter_column("topups", "charged_amount", server_default=None)
        op.create_check_constraint(
            op.f("ck_topups_charged_covers_credit"), "topups", "charged_amount >= amount AND tax_amount >= 0"
        )
        op.create_check_constraint(
            op.f("ck_invoices_tax_basis_known"), "invoices", "tax_basis IN ('charged', 'on_topups', 'prepayment')"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_invoices_tax_basis_known"), "invoices", type_="check")
        op.drop_constraint(op.f("ck_topups_charged_covers_credit"), "topups", type_="check")
    op.drop_column("invoices", "tax_basis")
    for name, _ in reversed(_TOPUP_QUOTE):
        op.drop_column("topups", name)
    op.drop_column("topups", "tax_amount")
    op.drop_column("topups", "charged_amount")
