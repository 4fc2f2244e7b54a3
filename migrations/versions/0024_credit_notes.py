"""Credit notes: one per refund or lost dispute of an invoiced payment, numbered without gaps per year in a series
of their own (`credit_note_counters`), and immutable as invoices are: the same trigger function as migration 0019
refuses every UPDATE and DELETE (and TRUNCATE on PostgreSQL); SQLite gets its own RAISE(ABORT) triggers. New tables
only, nothing rebuilt, so the invoices' SQLite triggers stay as they are.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

TABLE = "credit_notes"
MESSAGE = "issued credit notes are immutable"


def upgrade() -> None:
    op.create_table(
        "credit_note_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_credit_note_counters")),
    )
    op.create_table(
        TABLE,
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("invoice_id", GUID(length=16), nullable=False),
        sa.Column("invoice_number", sa.String(length=20), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_reference", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_mode", sa.String(length=10), nullable=False),
        sa.Column("tax_name", sa.String(length=40), nullable=False),
        sa.Column("tax_rate_bps", sa.Integer(), nullable=False),
        sa.Column("tax_basis", sa.String(length=16), nullable=False),
        sa.Column("net_total", sa.BigInteger(), nullable=False),
        sa.Column("tax_total", sa.BigInteger(), nullable=False),
        sa.Column("gross_total", sa.BigInteger(), nullable=False),
        sa.Column("seller_name", sa.String(length=200), nullable=False),
        sa.Column("seller_address", sa.String(length=500), nullable=False),
        sa.Column("seller_tax_id", sa.String(length=64), nullable=False),
        sa.Column("buyer_email", sa.String(length=320), nullable=False),
        sa.Column("issued_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind IN ('refund', 'dispute')", name=op.f("ck_credit_notes_kind_known")),
        sa.CheckConstraint(
            "net_total >= 0 AND tax_total >= 0 AND gross_total > 0", name=op.f("ck_credit_notes_totals_positive")
        ),
        sa.CheckConstraint("net_total + tax_total = gross_total", name=op.f("ck_credit_notes_totals_add_up")),
        sa.CheckConstraint("sequence > 0", name=op.f("ck_credit_notes_sequence_positive")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_credit_notes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("number", name=op.f("uq_credit_notes_number")),
        sa.UniqueConstraint("source_reference", name=op.f("uq_credit_notes_source_reference")),
        sa.UniqueConstraint("year", "sequence", name=op.f("uq_credit_notes_year")),
    )
    op.create_index(op.f("ix_credit_notes_invoice_id"), TABLE, ["invoice_id"])
    op.create_index(op.f("ix_credit_notes_user_id"), TABLE, ["user_id"])
    if op.get_context().dialect.name == "postgresql":
        # refuse_invoice_change() (0019) names the operation and the table it refused.
        op.execute(
            f"CREATE TRIGGER {TABLE}_immutable BEFORE UPDATE OR DELETE ON {TABLE}"
            " FOR EACH ROW EXECUTE FUNCTION refuse_invoice_change()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}"
            " FOR EACH STATEMENT EXECUTE FUNCTION refuse_invoice_change()"
        )
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_refuse_{operation.lower()} BEFORE {operation} ON {TABLE}"
            f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    # Dropping the table drops its triggers; the function belongs to 0019.
    op.drop_index(op.f("ix_credit_notes_user_id"), table_name=TABLE)
    op.drop_index(op.f("ix_credit_notes_invoice_id"), table_name=TABLE)
    op.drop_table(TABLE)
    op.drop_table("credit_note_counters")
