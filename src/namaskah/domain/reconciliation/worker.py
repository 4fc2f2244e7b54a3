"""One reconciliation run: Paystack's transactions of a window (every page) against our top-ups and ledger, the
differences stored once, logged and counted. It reports only: it never credits or debits anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge

from namaskah.db.base import utcnow
from namaskah.domain.billing.errors import PaystackBadResponse
from namaskah.domain.billing.paystack import PaystackClient
from namaskah.domain.billing.paystack_schemas import Transaction
from namaskah.domain.reconciliation.compare import compare
from namaskah.domain.reconciliation.service import ReconciliationService
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.settings import Settings

logger = get_logger(__name__)

DIFFERENCES = Counter(
    "reconciliation_differences_total", "Differences between Paystack and our ledger, first found.", ("kind",)
)
OPEN_DIFFERENCES = Gauge(
    "reconciliation_open_differences", "Differences no operator has resolved yet.", multiprocess_mode="mostrecent"
)


def window(now: datetime, lookback: float) -> tuple[datetime, datetime]:
    """The window ends at the start of `now`'s UTC day: every run (and rerun) of a day compares the same closed
    span, so what it finds is stored once, and payments still in flight today are left for tomorrow's run."""
    end = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(seconds=lookback), end


async def list_window(
    paystack: PaystackClient, since: datetime, until: datetime, *, per_page: int, max_pages: int
) -> dict[str, Transaction]:
    """Every page of GET /transaction for the window, by reference. Raises (PaystackUnavailable after the client's
    retries) rather than answer part of the window."""
    found: dict[str, Transaction] = {}
    page = 1
    while True:
        answer = await paystack.list_transactions(page=page, per_page=per_page, since=since, until=until)
        found.update((tx.reference, tx) for tx in answer.data)
        if not answer.data or page >= answer.meta.page_count:
            return found
        if page >= max_pages:
            raise PaystackBadResponse(f"Paystack's transaction list goes past {max_pages} pages; raise the page size")
        page += 1


async def reconcile(
    relay: OutboxRelay, paystack: PaystackClient, settings: Settings, *, now: datetime | None = None
) -> int:
    """Run once for the window ending today; answers how many differences were new. Paystack is called with no
    database transaction open, and findings are written in one transaction only after every call succeeded."""
    start, end = window(now or utcnow(), settings.reconciliation_lookback)
    listed = await list_window(
        paystack, start, end, per_page=settings.reconciliation_page_size, max_pages=settings.reconciliation_max_pages
    )
    async with relay.sessions() as session:
        credits = await ReconciliationService(session=session).credits(listed.keys(), start, end)
    # A credit the listing lacks may be paid just outside the window: ask Paystack about it before calling it phantom.
    for reference in credits.keys() - listed.keys():
        tx = await paystack.verify(reference)
        if tx is not None:
            listed[reference] = tx
    async with relay.transaction() as session:
        service = ReconciliationService(session=session)
        findings = compare(listed, await service.topups(listed.keys() | credits.keys()), credits)
        stored = await service.store(start, end, findings)
        open_now = await service.open_count()
    for finding in stored:
        DIFFERENCES.labels(finding.kind.value).inc()
        logger.warning(
            "reconciliation_difference",
            kind=finding.kind.value,
            reference=finding.reference,
            detail=finding.detail,
            window_start=start.isoformat(),
            window_end=end.isoformat(),
        )
    OPEN_DIFFERENCES.set(open_now)
    logger.info(
        "reconciliation_done",
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        transactions=len(listed),
        credits=len(credits),
        differences=len(findings),
        new=len(stored),
    )
    return len(stored)
