"""The renewal sweep end to end: `namaskah scheduler` sends `subscriptions.sweep`, a real `namaskah worker` runs it
on the real clock, renewing a paid-up subscription (charged, credited and invoiced once, the invoice mailed) and
lapsing one whose grace has run out."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.db.base import utcnow
from namaskah.db.engine import create_session_factory
from namaskah.domain.subscriptions.service import SubscriptionService
from tests.integration.test_subscriptions import PRO_CREDIT, PRO_PRICE, fund, user_id_of
from tests.integration.test_verifications import new_user
from tests.support.databases import REDIS_URL, make_settings, query_value, settings_env
from tests.support.processes import Process, start_worker, wait_until

SCHEDULER = [sys.executable, "-m", "namaskah", "scheduler"]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


async def subscribed_days_ago(database: str, email: str, days: int, funds: int) -> str:
    """A pro subscription started `days` ago (its first month ended already); answers its id."""
    engine = create_async_engine(database)
    sessions = create_session_factory(engine)
    await new_user(sessions, email)
    user_id = await user_id_of(sessions, email)
    await fund(sessions, user_id, funds)
    async with sessions() as session:
        service = SubscriptionService(session, settings=make_settings())
        await service.subscribe(user_id, "pro", now=utcnow() - timedelta(days=days))
        await session.commit()
        subscription_id = str((await service.latest(user_id)).id)
    await engine.dispose()
    return subscription_id


def test_the_scheduled_sweep_renews_and_lapses_on_a_real_worker(
    isolated_database: str, redis_namespace: str, log_dir: Path, tmp_path: Path
) -> None:
    paid = asyncio.run(subscribed_days_ago(isolated_database, "paid@example.com", 32, 2 * PRO_PRICE))
    unpaid = asyncio.run(subscribed_days_ago(isolated_database, "unpaid@example.com", 40, PRO_PRICE))
    env = settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=REDIS_URL,
        DRAMATIQ_NAMESPACE=redis_namespace,
        DATA_DIR=str(tmp_path),
        OUTBOX_SWEEP_AFTER="0",
        SCHEDULER_OUTBOX_SWEEP_INTERVAL="0.3",
        SCHEDULER_VERIFICATION_EXPIRY_INTERVAL="0",
        SCHEDULER_RENTAL_SWEEP_INTERVAL="0",
        SCHEDULER_SUBSCRIPTION_SWEEP_INTERVAL="0.3",
        WORKER_METRICS_PORT="0",
    )
    scheduler = Process("scheduler", SCHEDULER, env, log_dir)
    try:
        worker = start_worker(env, log_dir)
        try:
            status = "SELECT status || ':' || period FROM subscriptions WHERE id = '{}'"
            wait_until(lambda: query_value(isolated_database, status.format(paid)) == "active:2", 60, "renewal", worker)
            wait_until(lambda: query_value(isolated_database, status.format(unpaid)) == "lapsed:1", 10, "the lapse")
            # Each invoice (both first periods, the renewal) is mailed by its job (to DATA_DIR/mail without SMTP).
            mails = tmp_path / "mail"
            wait_until(lambda: len(list(mails.glob("*.eml"))) == 3, 30, "the invoice mails", worker)
            done = [line for line in worker.json_lines() if line.get("event") == "periodic_task_done"]
            assert any(line["task"] == "subscriptions.sweep" for line in done)
        finally:
            worker.stop()
    finally:
        scheduler.stop()

    charges = f"SELECT count(*) FROM ledger_transactions WHERE reference = 'subscription:{paid}:2'"
    assert query_value(isolated_database, charges) == 1
    invoices = f"SELECT count(*) FROM invoices WHERE source_reference LIKE 'subscription:{paid}:%'"
    assert query_value(isolated_database, invoices) == 2
    tiers = "SELECT string_agg(email || '=' || tier, ',' ORDER BY email) FROM users"
    assert query_value(isolated_database, tiers) == "paid@example.com=pro,unpaid@example.com=free"
    wallet = "SELECT balance FROM ledger_accounts a JOIN users u ON u.id = a.user_id WHERE u.email = '{}'"
    assert query_value(isolated_database, wallet.format("paid@example.com")) == 2 * PRO_CREDIT
    assert query_value(isolated_database, wallet.format("unpaid@example.com")) == PRO_CREDIT
