"""Verifications: numbers bought for one SMS code, and the messages they received.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("service_name", sa.String(length=120), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_service", sa.String(length=120), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("area_code", sa.String(length=3), nullable=True),
        sa.Column("carrier", sa.String(length=32), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("failure_reason", sa.String(length=200), nullable=True),
        sa.Column("expires_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'completed', 'cancelled', 'expired', 'failed')",
            name=op.f("ck_verifications_status_known"),
        ),
        sa.CheckConstraint("price >= 0", name=op.f("ck_verifications_price_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_verifications_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifications")),
        sa.UniqueConstraint("user_id", "idempotency_key", name=op.f("uq_verifications_user_id")),
    )
    op.create_index(op.f("ix_verifications_user_id"), "verifications", ["user_id"])
    op.create_table(
        "verification_messages",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("verification_id", GUID(length=16), nullable=False),
        sa.Column("provider_message_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=1600), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=True),
        sa.Column("received_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["verification_id"],
            ["verifications.id"],
            name=op.f("fk_verification_messages_verification_id_verifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_messages")),
        sa.UniqueConstraint(
            "verification_id", "provider_message_id", name=op.f("uq_verification_messages_verification_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("verification_messages")
    op.drop_index(op.f("ix_verifications_user_id"), table_name="verifications")
    op.drop_table("verifications")
