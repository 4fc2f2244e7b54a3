"""Paystack's request and answer bodies for the calls we make, named as its OpenAPI document names them; fields we
do not read are ignored, so Paystack adding fields never breaks a decode."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

encoder = msgspec.json.Encoder()


class InitializeRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """TransactionInitialize: `amount` in the currency's subunit (kobo)."""

    email: str
    amount: int
    currency: str
    reference: str
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None


class InitializeData(msgspec.Struct, frozen=True):
    authorization_url: str
    access_code: str
    reference: str


class InitializeResponse(msgspec.Struct, frozen=True):
    """TransactionInitializeResponse."""

    status: bool
    message: str
    data: InitializeData


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """The part of VerifyResponse.data (and of a TransactionListResponseArray item) we read. `status` is Paystack's
    word: success, failed, abandoned, ongoing, pending, processing, queued, reversed."""

    id: int
    status: str
    reference: str
    amount: int
    currency: str
    paid_at: datetime | None = None
    gateway_response: str | None = None
    metadata: Any = None


class VerifyResponse(msgspec.Struct, frozen=True):
    status: bool
    message: str
    data: Transaction


class ListMeta(msgspec.Struct, frozen=True, rename={"page_count": "pageCount", "per_page": "perPage"}):
    total: int
    page: int
    page_count: int
    per_page: int | str


class TransactionListResponse(msgspec.Struct, frozen=True):
    status: bool
    message: str
    data: list[Transaction]
    meta: ListMeta


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Error / TransactionInitializeBadRequestModel: every field optional (many error answers carry only some)."""

    status: bool = False
    message: str = ""
    code: str | None = None
    type: str | None = None
