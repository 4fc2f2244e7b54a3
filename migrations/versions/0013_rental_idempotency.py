"""Rentals: the Idempotency-Key of the purchase (unique per user) and the fingerprint of its body; an index for the
sweep that fails rentals pending too long.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite can not add a constraint to an existing table, so it copies the table; PostgreSQL alters.
    with op.batch_alter_table("rentals") as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=True))
        # Nullable: rentals made before this revision have no fingerprint, and no key to replay.
        batch_op.add_column(sa.Column("request_fingerprint", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_rentals_user_id"), ["user_id", "idempotency_key"])
    op.create_index("ix_rentals_status_created_at", "rentals", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_rentals_status_created_at", table_name="rentals")
    with op.batch_alter_table("rentals") as batch_op:
        batch_op.drop_constraint(op.f("uq_rentals_user_id"), type_="unique")
        batch_op.drop_column("request_fingerprint")
        batch_op.drop_column("idempotency_key")
