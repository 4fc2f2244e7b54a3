"""The invoice mail through the real path: the payment's transaction commits the invoice and its job, the outbox
publishes it to Redis, a `namaskah worker` renders the PDF and writes the mail with it attached."""

from __future__ import annotations

import asyncio
import email
import io
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pypdf
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.accounts.models import User
from namaskah.domain.invoices.service import InvoiceService, LineItem
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.lib.queue import build_broker
from tests.support.databases import REDIS_URL, make_settings, settings_env
from tests.support.processes import start_worker, wait_until


async def pay_and_invoice(database: str, namespace: str) -> str:
    engine = create_async_engine(database)
    broker = build_broker(make_settings(REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=namespace))
    relay = OutboxRelay(create_session_factory(engine), broker)
    try:
        async with relay.transaction() as session:
            user = User(email="ada@example.com", password_hash="not-a-real-hash")
            session.add(user)
            await session.flush()
            invoice = await InvoiceService(session, settings=make_settings()).issue(
                user_id=user.id,
                kind="subscription",
                source_reference="sub:pro:2026-03",
                lines=[LineItem("Pro plan, March 2026", 1_075_000)],
                currency="NGN",
            )
            return invoice.number
    finally:
        broker.close()
        await engine.dispose()


def test_a_worker_mails_the_invoice_pdf(isolated_database: str, redis_namespace: str, tmp_path: Path) -> None:
    data_dir, log_dir = tmp_path / "data", tmp_path / "logs"
    log_dir.mkdir()
    env = settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=REDIS_URL,
        DRAMATIQ_NAMESPACE=redis_namespace,
        DATA_DIR=str(data_dir),
        WORKER_METRICS_PORT="0",
    )
    number = asyncio.run(pay_and_invoice(isolated_database, redis_namespace))
    worker = start_worker(env, log_dir)
    try:
        [path] = wait_until(lambda: list((data_dir / "mail").glob("*.eml")), 60, "the invoice mail", worker)
        wait_until(
            lambda: any(line.get("event") == "invoice_emailed" for line in worker.json_lines()), 10, "its log line"
        )
    finally:
        worker.stop()
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert (message["To"], message["Subject"]) == ("ada@example.com", f"Your Namaskah SMS invoice {number}")
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == f"{number}.pdf"
    text = pypdf.PdfReader(io.BytesIO(attachment.get_content())).pages[0].extract_text()
    for expected in (number, "Pro plan, March 2026", "VAT 7.5%", "NGN 10,000.00", "NGN 750.00", "NGN 10,750.00"):
        assert expected in text, expected
    [sent] = [line for line in worker.json_lines() if line.get("event") == "invoice_emailed"]
    assert (sent["invoice"], sent["via"], sent["job"]) == (number, "file", "invoices.email")
    assert "ada@example.com" not in worker.output()  # the address stays out of the logs
