"""The declarative base every model inherits, and the UTC clock models default to."""

from __future__ import annotations

from datetime import UTC, datetime

from advanced_alchemy.base import UUIDv7AuditBase, UUIDv7Base, orm_registry

__all__ = ["UUIDv7AuditBase", "UUIDv7Base", "orm_registry", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)
