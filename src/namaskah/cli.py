"""The `namaskah` command: dev server, production processes, migrations and admin tasks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from namaskah.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from namaskah.domain.catalog.schemas import SyncReport
    from namaskah.lib.dead_letters import DeadLetters

T = TypeVar("T")


def _with_sessions(settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run `work` on a fresh engine (the commands are one-shot processes), disposing of it afterwards."""
    from namaskah.db.engine import create_engine, create_session_factory

    async def run() -> T:
        engine = create_engine(settings)
        try:
            return await work(create_session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _settings() -> Settings:
    """Read settings or stop with one line naming the bad variable (no traceback)."""
    try:
        return get_settings()
    except SettingsError as exc:
        click.echo(f"namaskah: {exc}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="namaskah")
def main() -> None:
    """Namaskah SMS."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8000).")
@click.option("--data-dir", default=None, help="Where the SQLite database and dev files live (default ./var).")
def dev(host: str | None, port: int | None, data_dir: str | None) -> None:
    """Migrate the embedded SQLite database and serve with an in-process worker."""
    os.environ.setdefault("APP_ENV", "development")
    if data_dir:
        os.environ["DATA_DIR"] = data_dir
    if host or port:
        # Links in mails and the Paystack sandbox (its checkout page, its webhook) must point at this server.
        where = f"{host or os.environ.get('HOST', '127.0.0.1')}:{port or os.environ.get('PORT', '8000')}"
        os.environ.setdefault("PUBLIC_BASE_URL", f"http://{where}")
    settings = _settings()
    from namaskah.db.migrations import upgrade

    upgrade(settings)
    # Something to buy on a bare machine: the simulator's services, priced like any provider's.
    if settings.sms_provider == "simulator":
        _with_sessions(settings, partial(_sync_catalog, settings, None))
    _serve(settings, host or settings.host, port or settings.port, workers=1)


@main.command()
@click.option("--host", default=None, help="Interface to bind (default HOST).")
@click.option("--port", default=None, type=int, help="Port (default PORT).")
@click.option("--workers", default=None, type=int, help="Processes (default WEB_CONCURRENCY).")
def run(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the production API."""
    settings = _settings()
    _serve(settings, host or settings.host, port or settings.port, workers=workers or settings.web_concurrency)


def _serve(settings: Settings, host: str, port: int, *, workers: int) -> None:
    import uvicorn

    from namaskah.lib.logging import configure_logging

    if settings.prometheus_multiproc_dir or workers > 1:
        _prepare_metrics_dir(Path(settings.prometheus_multiproc_dir or Path(settings.data_dir) / "metrics"))
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "namaskah.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=20,
    )


def _prepare_metrics_dir(directory: Path) -> None:
    """Empty the shared counters folder before any process starts, and export it before prometheus_client is
    imported anywhere (it picks its storage at import time)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())


@main.command()
@click.option("--threads", default=None, type=int, help="Worker threads (default WORKER_THREADS).")
@click.option(
    "--queues",
    default=None,
    help="Comma-separated queues to consume (default all), e.g. a worker of its own for provider_events,webhooks "
    "with a lower WORKER_IDLE_POLL.",
)
def worker(threads: int | None, queues: str | None) -> None:
    """Consume jobs from Redis until SIGTERM."""
    serve_jobs(threads=threads, queues=queues)


def serve_jobs(*, threads: int | None, queues: str | None, declare: Callable[[], object] | None = None) -> None:
    """`namaskah worker`: the jobs package's broker, middleware and actors, consumed until SIGTERM. `declare` runs
    once `jobs` is imported, for actors of its own (bench/noop_worker.py's no-op, measured on this same entry)."""
    settings = _settings()
    if not settings.uses_redis:
        raise click.UsageError("REDIS_URL is not set: without Redis the API process runs the jobs itself")
    from namaskah.lib import worker_metrics

    if settings.worker_metrics_port:
        _prepare_metrics_dir(worker_metrics.metrics_dir(settings))
        worker_metrics.export_dir(worker_metrics.metrics_dir(settings))
    import dramatiq

    from namaskah.lib.logging import configure_logging, get_logger

    configure_logging(settings.log_level, settings.log_format)
    import jobs

    if declare is not None:
        declare()
    declared = jobs.broker.get_declared_queues()
    chosen = {name.strip() for name in queues.split(",") if name.strip()} if queues else set(declared)
    if unknown := chosen - declared:
        raise click.BadParameter(f"no such queue: {', '.join(sorted(unknown))} (known: {', '.join(sorted(declared))})")
    if settings.worker_metrics_port:
        worker_metrics.enable(jobs.broker, settings)
    log = get_logger("namaskah.worker")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    jobs.broker.emit_after("process_boot")
    consumer = dramatiq.Worker(
        jobs.broker,
        queues=chosen,
        worker_threads=threads or settings.worker_threads,
        worker_timeout=settings.worker_idle_poll,
    )
    consumer.start()
    log.info("worker_started", queues=sorted(chosen), threads=consumer.worker_threads)
    stop.wait()
    log.info("worker_stopping")
    consumer.stop(timeout=30_000)
    jobs.broker.emit_before("process_stop")
    jobs.broker.close()


def _redis_settings(without: str) -> Settings:
    settings = _settings()
    if not settings.uses_redis:
        raise click.UsageError(f"REDIS_URL is not set: {without}")
    return settings


@main.command()
def scheduler() -> None:
    """Send the periodic jobs while this process holds the leader lock (run two: the other takes over)."""
    settings = _redis_settings("without Redis the API process runs the scheduler itself")
    import logging

    from namaskah.domain.maintenance.schedule import periodic_tasks
    from namaskah.lib.logging import configure_logging
    from namaskah.lib.queue import build_broker, redis_client
    from namaskah.lib.scheduler import PeriodicScheduler, lock_key

    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # our line per tick instead of its two
    broker = build_broker(settings)
    client, key = redis_client(settings.redis_url), lock_key(settings.dramatiq_namespace)
    periodic = PeriodicScheduler.with_redis_lease(
        broker, periodic_tasks(settings), client, key, ttl=settings.scheduler_lock_ttl
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: periodic.stop())
    periodic.run()
    broker.close()


@main.group("jobs")
def jobs_group() -> None:
    """Jobs Dramatiq gave up on (dead letters, kept DRAMATIQ_DEAD_MESSAGE_TTL seconds)."""


@jobs_group.command("failed")
@click.option("--queue", default=None, help="Only this queue (default: every queue).")
@click.option("--limit", default=50, type=click.IntRange(1, 10_000), help="How many, most recent first.")
def jobs_failed(queue: str | None, limit: int) -> None:
    """List failed jobs: id, actor, queue, when, the error, and their arguments with secrets left out."""
    letters = _dead_letters()
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    with _redis_errors():
        found, total = letters.latest(queue=queue, limit=limit), letters.count(queue)
    if not found:
        click.echo("no failed jobs")
        return
    table = Table(title=f"failed jobs: {len(found)} of {total}, most recent first (times in UTC)")
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to paste into `namaskah jobs retry`
    for column in ("actor", "queue", "failed at", "attempts", "error", "args"):
        table.add_column(column, overflow="fold")
    for letter in found:
        failed_at, attempts = letter.failed_at.strftime("%Y-%m-%d %H:%M:%S"), str(letter.attempts)
        cells = (letter.id, letter.actor, letter.queue, failed_at, attempts, letter.error or "", letter.args)
        table.add_row(*(Text(cell) for cell in cells))  # Text: no rich markup read in errors and arguments
    Console().print(table)


@jobs_group.command("retry")
@click.argument("job_id")
def jobs_retry(job_id: str) -> None:
    """Requeue one failed job (JOB_ID from `namaskah jobs failed`) for one more attempt."""
    with _redis_errors():
        letter = _dead_letters().retry(job_id)
    if letter is None:
        click.echo(f"namaskah: no failed job {job_id}", err=True)
        sys.exit(1)
    click.echo(f"requeued {letter.id} ({letter.actor}) on {letter.queue}")


@contextlib.contextmanager
def _redis_errors() -> Iterator[None]:
    import redis

    try:
        yield
    except redis.RedisError as exc:
        click.echo(f"namaskah: Redis did not answer: {exc}", err=True)
        sys.exit(1)


def _dead_letters() -> DeadLetters:
    settings = _redis_settings("in dev mode failed jobs live in the API process's memory")
    import redis

    from namaskah.lib.dead_letters import DeadLetters
    from namaskah.lib.logging import configure_logging

    configure_logging("WARNING", settings.log_format, sys.stderr)
    # Not lib.queue's client: that module brings the database layer, seconds of start-up for two Redis commands.
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10)
    return DeadLetters(client, settings.dramatiq_namespace)


@main.group()
def database() -> None:
    """Schema migrations."""


@database.command("upgrade")
@click.argument("revision", default="heads")
def database_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: every head)."""
    from namaskah.db.migrations import upgrade

    upgrade(_settings(), revision)


@database.command("downgrade")
@click.argument("revision")
def database_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from namaskah.db.migrations import alembic_commands

    alembic_commands(_settings()).downgrade(revision)


@database.command("make-migration")
@click.option("-m", "--message", required=True, help="What the revision changes.")
def database_make_migration(message: str) -> None:
    """Autogenerate a revision from the difference between the models and the database."""
    from namaskah.db.migrations import alembic_commands

    alembic_commands(_settings()).revision(message=message, autogenerate=True)


@main.group()
def outbox() -> None:
    """The transactional outbox."""


@outbox.command("sweep")
@click.option("--older-than", default=0.0, type=float, help="Only rows at least this many seconds old.")
def outbox_sweep(older_than: float) -> None:
    """Publish every committed job still waiting (e.g. after a Redis outage) and exit."""
    settings = _settings()
    if not settings.uses_redis:
        raise click.UsageError("REDIS_URL is not set: in dev mode the API process sweeps by itself")

    from namaskah.lib.outbox.relay import OutboxRelay
    from namaskah.lib.queue import setup_jobs

    async def sweep(sessions: async_sessionmaker[AsyncSession]) -> int:
        relay, total = OutboxRelay(sessions, setup_jobs(settings).broker), 0
        while sent := await relay.sweep(older_than=timedelta(seconds=older_than), limit=settings.outbox_batch_size):
            total += sent
        return total

    click.echo(f"published {_with_sessions(settings, sweep)} job(s)")


@main.group()
def catalog() -> None:
    """The services for sale."""


@catalog.command("sync")
def catalog_sync() -> None:
    """Add the provider's services (SMS_PROVIDER), refresh their costs, retire those it dropped."""
    settings = _settings()
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from namaskah.lib.errors import DomainError

    with Progress(SpinnerColumn(), TextColumn("{task.description} ({task.completed} priced)"), transient=True) as bar:
        task = bar.add_task("pricing services")

        def priced(service: str) -> None:
            bar.update(task, advance=1, description=f"priced {service}")

        try:
            report = _with_sessions(settings, partial(_sync_catalog, settings, priced))
        except DomainError as exc:
            click.echo(f"namaskah: {exc.detail}", err=True)
            sys.exit(1)
    click.echo(f"catalog: {report.added} added, {report.updated} updated, {report.deactivated} retired")


async def _sync_catalog(
    settings: Settings, progress: Callable[[str], None] | None, sessions: async_sessionmaker[AsyncSession]
) -> SyncReport:
    from namaskah.domain.catalog.pricing import ExchangeRates
    from namaskah.domain.catalog.service import CatalogService
    from namaskah.providers.factory import build_provider

    provider = build_provider(settings, sessions)
    try:
        async with sessions() as session:
            catalog = CatalogService(session=session, rates=ExchangeRates(rates=settings.exchange_rates))
            report = await catalog.sync(provider, progress=progress)
            await session.commit()
    finally:
        await provider.aclose()
    return report


@main.group()
def users() -> None:
    """Accounts."""


@users.command("create-admin")
@click.option("--email", required=True, help="The operator's email address.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The password (prompted for when left out, which keeps it out of shell history); the policy applies.",
)
def users_create_admin(email: str, password: str) -> None:
    """Create an operator account; the creation is audited with the actor "cli"."""
    settings = _settings()
    from namaskah.lib.errors import DomainError
    from namaskah.lib.logging import configure_logging

    configure_logging("WARNING", settings.log_format, sys.stderr)

    from namaskah.domain.accounts.service import AccountService
    from namaskah.domain.accounts.two_factor import TwoFactorService
    from namaskah.domain.admin.service import AdminUserService
    from namaskah.domain.audit.service import CLI_ACTOR
    from namaskah.lib.security.passwords import PasswordHasher

    async def create(sessions: async_sessionmaker[AsyncSession]) -> str:
        async with sessions() as session:
            accounts = AccountService(
                session=session,
                hasher=PasswordHasher.from_settings(settings),
                two_factor=TwoFactorService(session=session, issuer=settings.totp_issuer),
            )
            user = await AdminUserService(session=session).create_operator(accounts, email, password, actor=CLI_ACTOR)
            await session.commit()
            return f"created operator {user.email} ({user.id})"

    try:
        click.echo(_with_sessions(settings, create))
    except DomainError as exc:
        click.echo(f"namaskah: {exc.detail}", err=True)
        sys.exit(1)


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; exit 1 naming the first entry that does not fit."""
    settings = _settings()
    from namaskah.domain.audit.chain import ChainReport
    from namaskah.domain.audit.service import AuditService

    async def verify(sessions: async_sessionmaker[AsyncSession]) -> ChainReport:
        async with sessions() as session:
            return await AuditService(session).verify()

    report = _with_sessions(settings, verify)
    if report.ok:
        entries = "1 entry" if report.count == 1 else f"{report.count} entries"
        click.echo(f"audit chain OK: {entries}, head {report.head_hash}")
        return
    entry = f"sequence {report.broken_sequence}" + (f" (id {report.broken_id})" if report.broken_id else "")
    click.echo(f"audit chain broken at {entry}: {report.reason}")
    sys.exit(1)
