"""Top-ups stuck in `initializing` (Paystack's initialize never answered, or the process died) are failed by the
sweep once TOPUP_INITIALIZING_TIMEOUT has passed, on an injected clock; the sweep and a late initialize answer race
for the row and exactly one of them wins; a success Paystack reports afterwards still credits once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from namaskah.domain.billing.checkout import Checkout
from namaskah.domain.billing.errors import PaystackUnavailable
from namaskah.domain.billing.models import Topup
from namaskah.domain.billing.paystack_schemas import InitializeData, InitializeRequest
from namaskah.domain.billing.service import STUCK_FAILURE, Settled, TopupService
from namaskah.domain.billing.worker import sweep_stuck_topups
from namaskah.domain.invoices.models import Invoice
from namaskah.settings import Settings, SettingsError
from tests.integration.test_billing_topups import (
    balance,
    committed,  # noqa: F401 - a fixture, used by name
    count,
)
from tests.integration.test_topup_invoices import Sessions, opened, paid, settle
from tests.integration.test_verifications import new_user, transactions
from tests.support.databases import make_settings
from tests.support.fake_paystack import SECRET_KEY

SETTINGS = make_settings(PAYSTACK_SECRET_KEY=SECRET_KEY)  # TOPUP_INITIALIZING_TIMEOUT=900
SECOND = timedelta(seconds=1)
CHECKOUT = InitializeData(authorization_url="https://checkout.paystack.com/late", access_code="late", reference="")


async def stuck(sessions: Sessions, settings: Settings = SETTINGS) -> Topup:
    """A top-up committed `initializing`, its initialize not answered (yet)."""
    return await opened(sessions, settings, (await new_user(sessions, f"{uuid.uuid4().hex[:8]}@example.com")).id)


async def reload(sessions: Sessions, topup: Topup) -> Topup:
    async with sessions() as session:
        return (await session.scalars(select(Topup).where(Topup.id == topup.id))).one()


async def answer_late(sessions: Sessions, topup: Topup) -> Topup:
    """Paystack's initialize answer arriving: what Checkout.start stores."""
    async with sessions() as session:
        row = await TopupService(session=session, settings=SETTINGS).opened(topup.id, CHECKOUT)
        await session.commit()
    return row


async def sweep(sessions: Sessions, now: datetime, settings: Settings = SETTINGS) -> int:
    return await sweep_stuck_topups(transactions(sessions), settings, now=now)


async def test_a_top_up_initializing_past_the_timeout_is_failed_and_not_before(session_factory: Sessions) -> None:
    topup = await stuck(session_factory)
    answered = await stuck(session_factory)
    await answer_late(session_factory, answered)  # pending: not the sweep's business
    timeout = topup.created_at + timedelta(seconds=900)

    assert await sweep(session_factory, timeout - SECOND) == 0
    assert (await reload(session_factory, topup)).status == "initializing"
    assert await sweep(session_factory, timeout + SECOND) == 1

    row = await reload(session_factory, topup)
    assert row.status == "failed"
    assert row.failure is not None
    assert row.failure.startswith(STUCK_FAILURE)
    assert (await reload(session_factory, answered)).status == "pending"
    assert await sweep(session_factory, timeout + 60 * SECOND) == 0  # failed once


async def test_the_timeout_comes_from_settings(session_factory: Sessions) -> None:
    quick = make_settings(PAYSTACK_SECRET_KEY=SECRET_KEY, TOPUP_INITIALIZING_TIMEOUT="120")
    topup = await stuck(session_factory, quick)

    assert await sweep(session_factory, topup.created_at + 119 * SECOND, quick) == 0
    assert await sweep(session_factory, topup.created_at + 121 * SECOND, quick) == 1
    with pytest.raises(SettingsError, match="TOPUP_INITIALIZING_TIMEOUT"):
        make_settings(TOPUP_INITIALIZING_TIMEOUT="59")


async def test_a_late_answer_after_the_sweep_leaves_the_top_up_failed(session_factory: Sessions) -> None:
    topup = await stuck(session_factory)
    await sweep(session_factory, topup.created_at + 901 * SECOND)

    late = await answer_late(session_factory, topup)

    assert (late.status, late.authorization_url) == ("failed", None)  # final, as its owner has seen it


async def test_an_answer_before_the_sweep_keeps_the_top_up_pending(session_factory: Sessions) -> None:
    topup = await stuck(session_factory)
    await answer_late(session_factory, topup)

    assert await sweep(session_factory, topup.created_at + 901 * SECOND) == 0
    assert (await reload(session_factory, topup)).status == "pending"


async def test_a_success_reported_after_the_sweep_still_credits_and_invoices_once(session_factory: Sessions) -> None:
    topup = await stuck(session_factory)
    await sweep(session_factory, topup.created_at + 901 * SECOND)

    assert await settle(session_factory, SETTINGS, paid(topup)) is Settled.CREDITED
    assert await settle(session_factory, SETTINGS, paid(topup)) is Settled.ALREADY

    assert await balance(session_factory, topup.user_id) == topup.amount
    assert await count(session_factory, Invoice, Invoice.source_reference == topup.reference) == 1


async def test_the_sweep_and_a_late_answer_racing_leave_one_final_state(
    committed: Sessions,  # noqa: F811 - the imported fixture
) -> None:
    topups = [await stuck(committed) for _ in range(10)]
    later = max(t.created_at for t in topups) + 901 * SECOND

    outcomes = await asyncio.gather(
        sweep(committed, later), *(answer_late(committed, topup) for topup in topups), sweep(committed, later)
    )

    swept = outcomes[0] + outcomes[-1]  # type: ignore[operator]
    rows = [await reload(committed, topup) for topup in topups]
    failed = [row for row in rows if row.status == "failed"]
    pending = [row for row in rows if row.status == "pending"]
    assert len(failed) + len(pending) == 10
    assert swept == len(failed)  # each failed by one sweep, never twice
    assert all(row.authorization_url is None for row in failed)
    assert all(row.authorization_url == CHECKOUT.authorization_url for row in pending)


class SlowPaystack:
    """Initialize that answers only after the sweep (run meanwhile, on a clock past the timeout) failed the row."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def initialize(self, request: InitializeRequest) -> InitializeData:
        async with self.sessions() as session:
            row = (await session.scalars(select(Topup).where(Topup.reference == request.reference))).one()
        assert await sweep(self.sessions, row.created_at + 901 * SECOND) == 1
        return InitializeData(
            authorization_url=CHECKOUT.authorization_url, access_code="x", reference=request.reference
        )


async def test_checkout_answers_503_when_the_sweep_failed_the_top_up_first(session_factory: Sessions) -> None:
    user = await new_user(session_factory)
    checkout = Checkout(transactions(session_factory), SlowPaystack(session_factory), SETTINGS)  # type: ignore[arg-type]

    with pytest.raises(PaystackUnavailable, match="too late"):
        await checkout.start(user.id, user.email, 500_000, "NGN")

    async with session_factory() as session:
        row = (await session.scalars(select(Topup).where(Topup.user_id == user.id))).one()
    assert (row.status, row.authorization_url) == ("failed", None)
