"""Tax rates by country (seeded with Nigeria's 7.5% VAT), invoices with their lines, and the per-year counter their
numbers come from. A trigger refuses every UPDATE and DELETE of an invoice or a line (and TRUNCATE on PostgreSQL):
issued means immutable, whatever the code or a console session tries. A later batch migration that rebuilds these
tables on SQLite must create the triggers again.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

IMMUTABLE = ("invoices", "invoice_lines")
MESSAGE = "issued invoices are immutable"

_PG_FUNCTION = f"""
CREATE FUNCTION refuse_invoice_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % on % refused', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$
"""


def upgrade() -> None:
    rates = op.create_table(
        "tax_rates",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("rate_bps", sa.Integer(), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint("rate_bps >= 0 AND rate_bps <= 5000", name=op.f("ck_tax_rates_rate_bps_range")),
        sa.PrimaryKeyConstraint("country", name=op.f("pk_tax_rates")),
    )
    op.bulk_insert(rates, [{"country": "NG", "name": "VAT", "rate_bps": 750, "updated_at": datetime.now(UTC)}])
    op.create_table(
        "invoice_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_invoice_counters")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_reference", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_mode", sa.String(length=10), nullable=False),
        sa.Column("tax_name", sa.String(length=40), nullable=False),
        sa.Column("tax_rate_bps", sa.Integer(), nullable=False),
        sa.Column("net_total", sa.BigInteger(), nullable=False),
        sa.Column("tax_total", sa.BigInteger(), nullable=False),
        sa.Column("gross_total", sa.BigInteger(), nullable=False),
        sa.Column("seller_name", sa.String(length=200), nullable=False),
        sa.Column("seller_address", sa.String(length=500), nullable=False),
        sa.Column("seller_tax_id", sa.String(length=64), nullable=False),
        sa.Column("buyer_email", sa.String(length=320), nullable=False),
        sa.Column("issued_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind IN ('topup', 'subscription')", name=op.f("ck_invoices_kind_known")),
        sa.CheckConstraint("tax_mode IN ('inclusive', 'exclusive')", name=op.f("ck_invoices_tax_mode_known")),
        sa.CheckConstraint("net_total >= 0 AND tax_total >= 0", name=op.f("ck_invoices_totals_not_negative")),
        sa.CheckConstraint("net_total + tax_total = gross_total", name=op.f("ck_invoices_totals_add_up")),
        sa.CheckConstraint("sequence > 0", name=op.f("ck_invoices_sequence_positive")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_invoices_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("source_reference", name=op.f("uq_invoices_source_reference")),
        sa.UniqueConstraint("year", "sequence", name=op.f("uq_invoices_year")),
    )
    op.create_index(op.f("ix_invoices_user_id"), "invoices", ["user_id"])
    op.create_table(
        "invoice_lines",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("invoice_id", GUID(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_invoice_lines_quantity_positive")),
        sa.CheckConstraint("unit_amount > 0", name=op.f("ck_invoice_lines_unit_amount_positive")),
        sa.CheckConstraint("net + tax = gross", name=op.f("ck_invoice_lines_amounts_add_up")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint("invoice_id", "position", name=op.f("uq_invoice_lines_invoice_id")),
    )
    _create_triggers()


def _create_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in IMMUTABLE:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION refuse_invoice_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION refuse_invoice_change()"
            )
        return
    # SQLite (dev mode): no TRUNCATE there; an UPDATE or DELETE aborts its statement.
    for table in IMMUTABLE:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_refuse_{operation.lower()} BEFORE {operation} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def downgrade() -> None:
    # Dropping a table drops its triggers (neither database runs row triggers for it).
    op.drop_table("invoice_lines")
    op.drop_index(op.f("ix_invoices_user_id"), table_name="invoices")
    op.drop_table("invoices")
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION refuse_invoice_change()")
    op.drop_table("invoice_counters")
    op.drop_table("tax_rates")
