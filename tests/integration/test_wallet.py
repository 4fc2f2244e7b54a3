"""Wallet routes: balance, history and CSV of the caller's own wallet, scoped for API keys; operator grants."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update

from namaskah.domain.accounts.models import User
from namaskah.domain.wallet.models import (
    SYSTEM_ACCOUNT_IDS,
    EntryKind,
    LedgerEntry,
    LedgerTransaction,
    SystemAccount,
)
from namaskah.domain.wallet.schemas import MAX_GRANT
from namaskah.domain.wallet.service import WalletService
from tests.integration.test_admin import headers_for, operator_headers

WALLET_ROUTES = ("/v1/wallet", "/v1/wallet/transactions", "/v1/wallet/transactions.csv")


async def customer(client: AsyncClient, session_factory, email: str = "ada@example.com") -> tuple[dict, uuid.UUID]:
    """A signed-in customer on `pro` (these tests make more requests than `free` allows a minute) and their id."""
    headers = await headers_for(client, email)
    async with session_factory() as session:
        await session.execute(update(User).where(User.email == email).values(tier="pro"))
        await session.commit()
    return headers, uuid.UUID((await client.get("/v1/me", headers=headers)).json()["id"])


async def grant(client: AsyncClient, operator: dict, user_id: uuid.UUID, amount: int, **extra):
    headers = {**operator, **extra.pop("headers", {})}
    body = {"amount": amount, "reason": extra.pop("reason", "goodwill after outage")}
    return await client.post(f"/v1/admin/users/{user_id}/credits", json=body, headers=headers)


async def debit(session_factory, user_id: uuid.UUID, amount: int, reference: str) -> None:
    """A purchase booked the way the verifications area will: through the service, in a transaction."""
    async with session_factory() as session:
        await WalletService(session=session).debit(user_id, amount, kind=EntryKind.PURCHASE, reference=reference)
        await session.commit()


async def create_key(client: AsyncClient, headers: dict, scopes: list[str]) -> dict[str, str]:
    response = await client.post("/v1/api-keys", json={"name": "shop", "scopes": scopes}, headers=headers)
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def test_a_new_account_has_an_empty_wallet(client: AsyncClient, session_factory) -> None:
    headers, _ = await customer(client, session_factory)
    assert (await client.get("/v1/wallet", headers=headers)).json() == {"balance": 0, "currency": "NGN"}
    assert (await client.get("/v1/wallet/transactions", headers=headers)).json() == {"items": [], "total": 0}
    exported = await client.get("/v1/wallet/transactions.csv", headers=headers)
    assert exported.status_code == 200
    assert exported.text.splitlines() == [
        "id,created_at,kind,reference,amount,amount_decimal,balance_after,balance_after_decimal,currency"
    ]
    me = (await client.get("/v1/me", headers=headers)).json()
    assert (me["balance"], me["currency"]) == (0, "NGN")


async def test_anonymous_callers_get_401(client: AsyncClient) -> None:
    for path in WALLET_ROUTES:
        response = await client.get(path)
        assert response.status_code == 401, path
    response = await client.post(f"/v1/admin/users/{uuid.uuid4()}/credits", json={"amount": 1, "reason": "x"})
    assert response.status_code == 401


async def test_operator_grant_credits_the_wallet_through_the_ledger_and_is_audited(
    client: AsyncClient, session_factory
) -> None:
    headers, user_id = await customer(client, session_factory)
    operator = await operator_headers(client, session_factory)
    operator_id = (await client.get("/v1/me", headers=operator)).json()["id"]

    response = await grant(client, operator, user_id, 5_000, reason="  welcome bonus ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "user_id",
        "amount",
        "currency",
        "balance_after",
        "kind",
        "reference",
        "reason",
        "created_at",
    }
    assert (body["user_id"], body["amount"], body["balance_after"], body["kind"], body["currency"]) == (
        str(user_id),
        5_000,
        5_000,
        "grant",
        "NGN",
    )
    assert (await grant(client, operator, user_id, 250)).json()["balance_after"] == 5_250

    assert (await client.get("/v1/wallet", headers=headers)).json() == {"balance": 5_250, "currency": "NGN"}
    assert (await client.get("/v1/me", headers=headers)).json()["balance"] == 5_250
    history = (await client.get("/v1/wallet/transactions", headers=headers)).json()
    assert history["total"] == 2
    assert history["items"][1] | {"created_at": None} == {
        "id": body["id"],
        "amount": 5_000,
        "currency": "NGN",
        "balance_after": 5_000,
        "kind": "grant",
        "reference": body["reference"],
        "created_at": None,
    }

    logs = await client.get("/v1/admin/audit-logs", params={"action": "wallet.credits.granted"}, headers=operator)
    entries = logs.json()["items"]
    assert [entry["after"]["amount"] for entry in entries] == [250, 5_000]
    first = entries[1]
    assert (first["actor_type"], first["actor_user_id"], first["subject_type"], first["subject_id"]) == (
        "user",
        operator_id,
        "user",
        str(user_id),
    )
    assert (first["after"]["reason"], body["reason"]) == ("welcome bonus", "welcome bonus")
    assert first["after"]["reference"] == body["reference"]
    assert first["request_id"] == response.headers["x-request-id"]

    async with session_factory() as session:
        sides = (
            await session.execute(
                select(LedgerEntry.account_id, LedgerEntry.amount)
                .join(LedgerTransaction)
                .where(LedgerTransaction.reference == body["reference"])
            )
        ).all()
    # Balanced: the grants account paid what the wallet received.
    assert sorted(amount for _, amount in sides) == [-5_000, 5_000]
    assert dict((amount, account) for account, amount in sides)[-5_000] == SYSTEM_ACCOUNT_IDS[SystemAccount.GRANTS]


async def test_a_repeated_idempotency_key_grants_once(client: AsyncClient, session_factory) -> None:
    headers, user_id = await customer(client, session_factory)
    operator = await operator_headers(client, session_factory)
    key = {"Idempotency-Key": "grant-2026-11-27-ada"}
    first = await grant(client, operator, user_id, 700, headers=key)
    again = await grant(client, operator, user_id, 700, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert (await client.get("/v1/wallet", headers=headers)).json()["balance"] == 700
    logs = await client.get("/v1/admin/audit-logs", params={"action": "wallet.credits.granted"}, headers=operator)
    assert logs.json()["total"] == 1

    changed = await grant(client, operator, user_id, 900, headers=key)
    assert changed.status_code == 409
    assert changed.json()["code"] == "reference_conflict"
    assert (await client.get("/v1/wallet", headers=headers)).json()["balance"] == 700
    # Without a key every grant is a new one.
    assert (await grant(client, operator, user_id, 700)).json()["balance_after"] == 1_400


async def test_only_operators_with_a_session_grant(client: AsyncClient, session_factory) -> None:
    headers, user_id = await customer(client, session_factory)
    refused = await grant(client, headers, user_id, 1_000)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"

    operator = await operator_headers(client, session_factory)
    key = await create_key(client, operator, ["wallet:read"])
    refused = await grant(client, {}, user_id, 1_000, headers=key)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert (await client.get("/v1/wallet", headers=headers)).json()["balance"] == 0
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0


async def test_a_grant_to_an_unknown_user_is_404(client: AsyncClient, session_factory) -> None:
    operator = await operator_headers(client, session_factory)
    response = await grant(client, operator, uuid.uuid4(), 1_000)
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "reason": "x"},
        {"amount": -500, "reason": "x"},
        {"amount": 10.5, "reason": "x"},
        {"amount": True, "reason": "x"},
        {"amount": MAX_GRANT + 1, "reason": "x"},
        {"amount": 500},
        {"amount": 500, "reason": ""},
        {"amount": 500, "reason": "   "},
        {"amount": 500, "reason": "x" * 501},
        {"amount": 500, "reason": "x", "currency": "USD"},
    ],
    ids=str,
)
async def test_bad_grants_are_refused(client: AsyncClient, session_factory, body: dict) -> None:
    _, user_id = await customer(client, session_factory)
    operator = await operator_headers(client, session_factory)
    response = await client.post(f"/v1/admin/users/{user_id}/credits", json=body, headers=operator)
    assert response.status_code in {400, 422}, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_largest_grant_is_accepted(client: AsyncClient, session_factory) -> None:
    headers, user_id = await customer(client, session_factory)
    operator = await operator_headers(client, session_factory)
    assert (await grant(client, operator, user_id, MAX_GRANT)).status_code == 201
    assert (await client.get("/v1/wallet", headers=headers)).json()["balance"] == MAX_GRANT


async def test_history_is_newest_first_paginated_and_only_the_callers(client: AsyncClient, session_factory) -> None:
    ada, ada_id = await customer(client, session_factory)
    grace, grace_id = await customer(client, session_factory, "grace@example.com")
    operator = await operator_headers(client, session_factory)
    await grant(client, operator, ada_id, 1_000)
    await debit(session_factory, ada_id, 150, "verification:one")
    await grant(client, operator, grace_id, 99)
    await debit(session_factory, ada_id, 300, "verification:two")

    history = (await client.get("/v1/wallet/transactions", headers=ada)).json()
    assert history["total"] == 3
    assert [(i["kind"], i["amount"], i["balance_after"]) for i in history["items"]] == [
        ("purchase", -300, 550),
        ("purchase", -150, 850),
        ("grant", 1_000, 1_000),
    ]
    assert history["items"][0]["reference"] == "verification:two"
    paged = (await client.get("/v1/wallet/transactions", params={"limit": 1, "offset": 1}, headers=ada)).json()
    assert (paged["total"], [i["reference"] for i in paged["items"]]) == (3, ["verification:one"])
    assert (await client.get("/v1/wallet/transactions", params={"limit": 0}, headers=ada)).status_code in {400, 422}

    theirs = (await client.get("/v1/wallet/transactions", headers=grace)).json()
    assert [(i["kind"], i["amount"]) for i in theirs["items"]] == [("grant", 99)]
    assert (await client.get("/v1/wallet", headers=grace)).json()["balance"] == 99
    assert (await client.get("/v1/me", headers=ada)).json()["balance"] == 550


async def test_csv_export_matches_the_history_and_disarms_formulas(client: AsyncClient, session_factory) -> None:
    headers, user_id = await customer(client, session_factory)
    operator = await operator_headers(client, session_factory)
    await grant(client, operator, user_id, 10_000)
    await debit(session_factory, user_id, 150, '=HYPERLINK("http://evil.example","x")')
    await debit(session_factory, user_id, 5, "@SUM(A1:A2)")

    response = await client.get("/v1/wallet/transactions.csv", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-total-count"] == "3"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    history = (await client.get("/v1/wallet/transactions", headers=headers)).json()["items"]
    assert [row["id"] for row in rows] == [item["id"] for item in history]
    assert [(row["amount"], row["amount_decimal"], row["balance_after_decimal"]) for row in rows] == [
        ("-5", "-0.05", "98.45"),
        ("-150", "-1.50", "98.50"),
        ("10000", "100.00", "100.00"),
    ]
    assert [row["reference"] for row in rows[:2]] == ["'@SUM(A1:A2)", '\'=HYPERLINK("http://evil.example","x")']
    assert all(row["currency"] == "NGN" and row["kind"] in {"grant", "purchase"} for row in rows)

    paged = await client.get("/v1/wallet/transactions.csv", params={"limit": 1, "offset": 2}, headers=headers)
    assert [row["kind"] for row in csv.DictReader(io.StringIO(paged.text))] == ["grant"]


async def test_api_keys_need_the_wallet_read_scope(client: AsyncClient, session_factory) -> None:
    headers, user_id = await customer(client, session_factory)
    operator = await operator_headers(client, session_factory)
    await grant(client, operator, user_id, 1_234)
    reader = await create_key(client, headers, ["wallet:read"])
    other = await create_key(client, headers, ["rentals:read", "verifications:write"])
    assert (await client.get("/v1/wallet", headers=reader)).json() == {"balance": 1_234, "currency": "NGN"}
    for path in WALLET_ROUTES:
        allowed = await client.get(path, headers=reader)
        assert allowed.status_code == 200, path
        refused = await client.get(path, headers=other)
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "insufficient_scope"
    assert (await client.get("/v1/wallet/transactions", headers=reader)).json()["total"] == 1
