"""Reconciliation on PostgreSQL against the fake Paystack (held to its OpenAPI document): each kind of difference,
a clean match, reruns, pagination, Paystack failing, and the operators' route with its audited resolve."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from sqlalchemy import func, select
from structlog.testing import capture_logs

from namaskah.db.base import utcnow
from namaskah.domain.audit.models import AuditLog
from namaskah.domain.billing.errors import PaystackUnavailable
from namaskah.domain.billing.models import SandboxTransaction, Topup
from namaskah.domain.reconciliation.models import ReconciliationDifference
from namaskah.domain.reconciliation.worker import DIFFERENCES, reconcile
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.settings import Settings
from tests.integration.test_admin import headers_for, operator_headers
from tests.integration.test_verifications import new_user
from tests.support.fake_paystack import FakePaystack, client_for

# A day ahead of the real clock, so today's real ledger rows fall inside the run's window.
NOW = utcnow() + timedelta(days=1)


def paystack_tx(
    fake: FakePaystack, reference: str, amount: int, *, status: str = "success", currency: str = "NGN"
) -> None:
    fake.transactions[reference] = SandboxTransaction(
        paystack_id=3_000_000_000 + len(fake.transactions),
        reference=reference,
        access_code="ac",
        amount=amount,
        currency=currency,
        email="kit@example.com",
        metadata_=None,
        status=status,
        created_at=NOW - timedelta(days=1),
        paid_at=NOW - timedelta(days=1) if status == "success" else None,
    )


async def topup(
    sessions,
    user_id: uuid.UUID,
    reference: str,
    amount: int,
    *,
    status: str,
    credit: int | None = None,
    charged: int | None = None,
) -> None:
    """A top-up crediting `amount`; Paystack charged `charged` (the amount plus tax on top), by default the same."""
    async with sessions() as session:
        session.add(
            Topup(
                reference=reference,
                user_id=user_id,
                amount=amount,
                charged_amount=amount if charged is None else charged,
                currency="NGN",
                status=status,
            )
        )
        await session.flush()
        if credit is not None:
            await WalletService(session=session).credit(
                user_id, credit, kind=EntryKind.TOPUP, reference=f"paystack:{reference}"
            )
        await session.commit()


async def stored(sessions) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(select(ReconciliationDifference.reference, ReconciliationDifference.kind))
        return sorted((reference, kind) for reference, kind in rows)


async def run(sessions, fake: FakePaystack, now: datetime = NOW, **settings) -> int:
    """One run with pages of two; `settings` reach both the client (retries) and the job."""
    options = {"reconciliation_page_size": 2, **settings}
    client = client_for(fake, **options)
    try:
        return await reconcile(OutboxRelay(sessions, StubBroker()), client, Settings(**options), now=now)
    finally:
        await client.aclose()


async def crafted(sessions) -> tuple[FakePaystack, uuid.UUID]:
    user_id = (await new_user(sessions)).id
    fake = FakePaystack()
    paystack_tx(fake, "tu_clean", 50_000)
    await topup(sessions, user_id, "tu_clean", 50_000, status="success", credit=50_000)
    paystack_tx(fake, "tu_missed", 20_000)  # paid, never credited, no top-up known
    paystack_tx(fake, "tu_pending", 30_000)  # paid, our top-up still pending and uncredited
    await topup(sessions, user_id, "tu_pending", 30_000, status="pending")
    paystack_tx(fake, "tu_amount", 40_000)  # credited another amount than Paystack took
    await topup(sessions, user_id, "tu_amount", 45_000, status="success", credit=45_000)
    paystack_tx(fake, "tu_currency", 10_000, currency="USD")  # billing flagged it and credited nothing
    await topup(sessions, user_id, "tu_currency", 10_000, status="mismatch")
    paystack_tx(fake, "tu_abandoned", 15_000, status="abandoned")  # never paid, never credited: fine
    await topup(sessions, user_id, "tu_phantom", 25_000, status="success", credit=25_000)  # unknown at Paystack
    return fake, user_id


async def test_every_kind_is_found_once_logged_and_counted(session_factory) -> None:
    fake, _ = await crafted(session_factory)
    before = DIFFERENCES.labels("missed")._value.get()
    with capture_logs() as logs:
        assert await run(session_factory, fake) == 6
    assert await stored(session_factory) == [
        ("tu_amount", "amount"),
        ("tu_currency", "currency"),
        ("tu_missed", "missed"),
        ("tu_pending", "missed"),
        ("tu_pending", "status"),
        ("tu_phantom", "phantom"),
    ]
    warnings = [log for log in logs if log["event"] == "reconciliation_difference"]
    assert len(warnings) == 6
    assert all(log["log_level"] == "warning" for log in warnings)
    assert not any(fake.secret_key in str(log) for log in logs)
    assert DIFFERENCES.labels("missed")._value.get() == before + 2
    # The phantom was asked about by reference before being called one; pages of 2 covered all six listed.
    assert fake.calls("GET", "/transaction/verify/tu_phantom") == [404]
    assert fake.calls("GET", "/transaction") == [200, 200, 200]
    assert fake.violations == []
    # A rerun of the same day (a retry, a manual run) stores and counts nothing twice.
    with capture_logs() as logs:
        assert await run(session_factory, fake, NOW + timedelta(hours=3)) == 0
    assert len(await stored(session_factory)) == 6
    assert not [log for log in logs if log["event"] == "reconciliation_difference"]
    assert DIFFERENCES.labels("missed")._value.get() == before + 2


async def test_a_clean_match_reports_nothing(session_factory) -> None:
    user_id = (await new_user(session_factory)).id
    fake = FakePaystack()
    for n in range(5):  # three pages of two
        paystack_tx(fake, f"tu_ok{n}", 10_000 + n)
        await topup(session_factory, user_id, f"tu_ok{n}", 10_000 + n, status="success", credit=10_000 + n)
    assert await run(session_factory, fake) == 0
    assert await stored(session_factory) == []
    assert fake.calls("GET", "/transaction") == [200, 200, 200]


async def test_tax_charged_on_top_of_a_credit_is_no_difference(session_factory) -> None:
    """TAX_MODE=exclusive: Paystack took 53750 for a credit of 50000 (7.5% VAT on top); a wrong credit still shows."""
    user_id = (await new_user(session_factory)).id
    fake = FakePaystack()
    paystack_tx(fake, "tu_taxed", 53_750)
    await topup(session_factory, user_id, "tu_taxed", 50_000, status="success", credit=50_000, charged=53_750)
    paystack_tx(fake, "tu_short", 53_750)
    await topup(session_factory, user_id, "tu_short", 50_000, status="success", credit=45_000, charged=53_750)

    assert await run(session_factory, fake) == 1
    assert await stored(session_factory) == [("tu_short", "amount")]


async def test_a_credit_paid_outside_the_window_is_no_phantom(session_factory) -> None:
    user_id = (await new_user(session_factory)).id
    fake = FakePaystack()
    await topup(session_factory, user_id, "tu_late", 10_000, status="success", credit=10_000)
    paystack_tx(fake, "tu_late", 10_000)
    original = fake._list

    def without_late(params):  # Paystack's listing of the window lacks it (paid just before the window)
        status, body = original(params)
        body["data"] = [tx for tx in body["data"] if tx["reference"] != "tu_late"]
        body["meta"]["total"] = len(body["data"])
        return status, body

    fake._list = without_late  # type: ignore[method-assign]
    assert await run(session_factory, fake) == 0
    assert fake.calls("GET", "/transaction/verify/tu_late") == [200]


async def test_paystack_failing_stores_nothing_and_raises_for_a_retry(session_factory) -> None:
    fake, _ = await crafted(session_factory)
    fake.fail_next("GET", "/transaction", 503, times=100)
    with pytest.raises(PaystackUnavailable):
        await run(session_factory, fake, paystack_max_retries=1)
    assert await stored(session_factory) == []
    # Failing on the second page leaves nothing either: the report is all or nothing.
    fake.faults.clear()
    calls: list[int] = []
    original = fake._list

    def second_page_down(params):
        calls.append(int(params.get("page", "1")))
        if calls[-1] == 2:
            return 500, {"status": False, "message": "down"}
        return original(params)

    fake._list = second_page_down  # type: ignore[method-assign]
    with pytest.raises(PaystackUnavailable):
        await run(session_factory, fake, paystack_max_retries=0)
    assert await stored(session_factory) == []
    fake._list = original  # type: ignore[method-assign]
    assert await run(session_factory, fake) == 6


async def test_operators_list_and_resolve_once_audited(client: AsyncClient, session_factory) -> None:
    fake, _ = await crafted(session_factory)
    await run(session_factory, fake)
    user = await headers_for(client, "someone@example.com")
    assert (await client.get("/v1/admin/billing/reconciliation", headers=user)).status_code == 403
    ops = await operator_headers(client, session_factory)
    listed = await client.get("/v1/admin/billing/reconciliation?limit=4", headers=ops)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert (page["total"], len(page["items"])) == (6, 4)
    target = page["items"][0]["id"]
    path = f"/v1/admin/billing/reconciliation/{target}/resolve"
    assert (await client.post(path, json={"note": "x"}, headers=user)).status_code == 403
    assert (await client.post(path, json={"note": ""}, headers=ops)).status_code == 422
    done = await client.post(path, json={"note": "credited by hand after checking the bank"}, headers=ops)
    assert done.status_code == 200, done.text
    assert done.json()["resolution_note"] == "credited by hand after checking the bank"
    again = await client.post(path, json={"note": "again"}, headers=ops)
    assert (again.status_code, again.json()["code"]) == (409, "reconciliation_difference_resolved")
    missing = await client.post(
        f"/v1/admin/billing/reconciliation/{uuid.uuid4()}/resolve", json={"note": "n"}, headers=ops
    )
    assert missing.status_code == 404
    open_page = (await client.get("/v1/admin/billing/reconciliation?resolved=false", headers=ops)).json()
    assert open_page["total"] == 5
    async with session_factory() as session:
        audits = await session.scalar(
            select(func.count()).where(
                AuditLog.action == "billing.reconciliation.resolved", AuditLog.subject_id == target
            )
        )
    assert audits == 1
