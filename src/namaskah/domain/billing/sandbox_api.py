"""The embedded Paystack of dev mode: an httpx transport that answers the calls our client makes (initialize, verify,
list) as Paystack's OpenAPI document describes them, from the sandbox's table, so nothing leaves the machine."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

import httpx
import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from uuid_utils.compat import uuid7

from namaskah.db.base import utcnow
from namaskah.db.core import rowcount
from namaskah.db.upsert import insert_or_skip
from namaskah.domain.billing.models import SandboxTransaction
from namaskah.settings import Settings

CHECKOUT_PATH = "/v1/billing/sandbox/checkout"
_REFERENCE = re.compile(r"[A-Za-z0-9.=-]{1,100}")
_VERIFY = re.compile(r"/transaction/verify/([^/]+)")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _common(tx: SandboxTransaction) -> dict[str, Any]:
    """The fields VerifyResponse.data and a TransactionListResponseArray item share, as Paystack fills them."""
    paid = tx.status == "success"
    return {
        "id": tx.paystack_id,
        "domain": "test",
        "status": tx.status,
        "reference": tx.reference,
        "amount": tx.amount,
        "message": None,
        "gateway_response": "Successful" if paid else "The transaction was not completed",
        "paid_at": _iso(tx.paid_at),
        "created_at": _iso(tx.created_at),
        "channel": "card",
        "currency": tx.currency,
        "ip_address": "127.0.0.1",
        "log": None,
        "fees": tx.amount // 100 if paid else None,
        "fees_split": None,
        "authorization": {
            "authorization_code": f"AUTH_{tx.access_code[:10]}",
            "bin": "408408",
            "last4": "4081",
            "exp_month": "12",
            "exp_year": "2030",
            "channel": "card",
            "card_type": "visa ",
            "bank": "TEST BANK",
            "country_code": "NG",
            "brand": "visa",
            "reusable": True,
            "signature": f"SIG_{tx.access_code[:10]}",
            "account_name": None,
        },
        "customer": {
            "id": tx.paystack_id % 1_000_000,
            "first_name": None,
            "last_name": None,
            "email": tx.email,
            "customer_code": f"CUS_{tx.access_code[:12]}",
            "phone": None,
            "metadata": None,
            "risk_action": "default",
        },
        "split": {},
        "subaccount": {},
        "order_id": None,
        "createdAt": _iso(tx.created_at),
        "requested_amount": tx.amount,
        "pos_transaction_data": None,
        "source": None,
        "connect": None,
    }


def verify_data(tx: SandboxTransaction) -> dict[str, Any]:
    """VerifyResponse.data (and the data of the charge.success webhook the sandbox sends)."""
    data = _common(tx)
    data["customer"]["international_format_phone"] = None
    return data | {
        "receipt_number": None,
        "metadata": tx.metadata_ or "",
        "plan": None,
        "paidAt": _iso(tx.paid_at),
        "fees_breakdown": None,
        "transaction_date": _iso(tx.created_at),
        "plan_object": {},
    }


def list_item(tx: SandboxTransaction) -> dict[str, Any]:
    """A TransactionListResponseArray item (the document types `plan` as an object and `paidAt` as a string)."""
    return _common(tx) | {"metadata": tx.metadata_, "plan": {}, "paidAt": _iso(tx.paid_at or tx.created_at)}


def _answer(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"})


def _refusal(status: int, message: str, code: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"status": False, "message": message}
    if code is not None:
        body |= {"code": code, "type": "validation_error"}
    return _answer(status, body)


class SandboxTransport(httpx.AsyncBaseTransport):
    """Plays api.paystack.co for the dev key. Checkout happens on our own page (CHECKOUT_PATH); paying there flips
    the row to success and sends the webhook (see sandbox.py), and verify answers from the same row."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {self._settings.paystack_key}":
            return _refusal(401, "Invalid key")
        path = request.url.path
        async with self._sessions() as session:
            if request.method == "POST" and path == "/transaction/initialize":
                answer = await self._initialize(session, request)
            elif request.method == "GET" and (match := _VERIFY.fullmatch(path)):
                answer = await self._verify(session, match[1])
            elif request.method == "GET" and path == "/transaction":
                answer = await self._list(session, request.url.params)
            else:
                answer = _refusal(404, "The sandbox does not serve this call")
            await session.commit()
        return answer

    async def _initialize(self, session: AsyncSession, request: httpx.Request) -> httpx.Response:
        try:
            body = msgspec.json.decode(await request.aread())
            amount, email = body["amount"], body["email"]
        except (msgspec.DecodeError, KeyError, TypeError):
            return _refusal(400, "email and amount are required", "validation_error")
        reference = body.get("reference") or secrets.token_hex(8)
        if not isinstance(amount, int) or amount <= 0 or not isinstance(email, str) or "@" not in email:
            return _refusal(400, "Invalid amount or email", "validation_error")
        if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
            return _refusal(400, "Invalid reference", "validation_error")
        access_code = secrets.token_hex(8)
        statement = insert_or_skip(
            session,
            SandboxTransaction,
            ("reference",),
            id=uuid7(),
            paystack_id=1_000_000_000 + secrets.randbelow(2**40),
            reference=reference,
            access_code=access_code,
            amount=amount,
            currency=str(body.get("currency") or "NGN"),
            email=email,
            metadata_=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
            callback_url=body.get("callback_url"),
            status="abandoned",
            created_at=utcnow(),
            paid_at=None,
        )
        if not rowcount(await session.execute(statement)):
            return _refusal(400, "Duplicate Transaction Reference", "duplicate_reference")
        url = f"{self._settings.public_base_url.rstrip('/')}{CHECKOUT_PATH}/{reference}"
        data = {"authorization_url": url, "access_code": access_code, "reference": reference}
        return _answer(200, {"status": True, "message": "Authorization URL created", "data": data})

    async def _verify(self, session: AsyncSession, reference: str) -> httpx.Response:
        tx = await session.scalar(select(SandboxTransaction).where(SandboxTransaction.reference == reference))
        if tx is None:
            return _refusal(404, "Transaction reference not found")
        return _answer(200, {"status": True, "message": "Verification successful", "data": verify_data(tx)})

    async def _list(self, session: AsyncSession, params: httpx.QueryParams) -> httpx.Response:
        page, per_page = max(1, int(params.get("page", "1"))), max(1, min(100, int(params.get("per_page", "50"))))
        query = select(SandboxTransaction)
        if params.get("status"):
            query = query.where(SandboxTransaction.status == params["status"])
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = await session.scalars(
            query.order_by(SandboxTransaction.created_at.desc()).limit(per_page).offset((page - 1) * per_page)
        )
        items = [list_item(tx) for tx in rows]
        meta = {
            "total": total,
            "total_volume": sum(tx["amount"] for tx in items if tx["status"] == "success"),
            "skipped": (page - 1) * per_page,
            "perPage": per_page,
            "page": page,
            "pageCount": max(1, -(-total // per_page)),
        }
        return _answer(200, {"status": True, "message": "Transactions retrieved", "data": items, "meta": meta})
