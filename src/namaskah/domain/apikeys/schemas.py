"""Bodies of the API key routes; the scopes are the contract's."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec


class Scope(StrEnum):
    VERIFICATIONS_READ = "verifications:read"
    VERIFICATIONS_WRITE = "verifications:write"
    RENTALS_READ = "rentals:read"
    RENTALS_WRITE = "rentals:write"
    WALLET_READ = "wallet:read"
    WEBHOOKS_WRITE = "webhooks:write"


class ApiKeyCreate(msgspec.Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=len(Scope))]


class ApiKeyRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    scopes: list[str]
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(msgspec.Struct, frozen=True):
    """The only answer that carries the key itself."""

    id: uuid.UUID
    name: str
    scopes: list[str]
    prefix: str
    key: str


class ApiKeyList(msgspec.Struct, frozen=True):
    items: list[ApiKeyRead]
    total: int
