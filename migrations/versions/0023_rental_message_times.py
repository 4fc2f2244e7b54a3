"""An index on a rental's messages by time: the duplicate check of every push and poll reads the messages of one
rental received around a moment (`lib/received_sms.py`), and a rental kept for a month collects many.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rental_messages_rental_id_received_at", "rental_messages", ["rental_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_rental_messages_rental_id_received_at", table_name="rental_messages")
