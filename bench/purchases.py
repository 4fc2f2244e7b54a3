"""Purchases/second of our verification purchase (debit + verification row + outbox row, committed) against
pgbench's built-in tpcb-like script, on the same PostgreSQL server and the same throwaway database.

Ours is driven in-process (asyncio, uvloop when installed, no HTTP): `concurrency` tasks, each buying on its own
funded user for `--duration` seconds. pgbench runs `-b tpcb-like` with as many clients. A third side, bare_sql,
writes the same rows with the same statements over raw asyncpg (purchase_sql.py). The rounds rotate the order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import harness
from namaskah.db.engine import create_session_factory
from namaskah.domain.accounts.models import User
from namaskah.domain.catalog.pricing import ExchangeRates
from namaskah.domain.verifications.schemas import VerificationCreate
from namaskah.domain.verifications.service import VerificationService
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.lib.logging import configure_logging
from purchase_sql import BareSql

TARGET_RATIO = 0.50
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PGBENCH_SCALE = 10
PGBENCH_THREADS = 2
SERVICE = "whatsapp"
TIER = "free"
RATES = ExchangeRates(rates={"USD": Decimal(1600)})
WINDOW = timedelta(seconds=900)
FUNDS = 10**15  # no user runs dry during any run
TPS_LINE = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)


@dataclass(frozen=True)
class Round:
    tps: float
    transactions: int
    elapsed_s: float
    failed: int = 0
    cpu_ms_per_transaction: float | None = None  # this process's CPU (ours only; pgbench's is its own process)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (default 3)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round and side (default 8)")
    parser.add_argument("--concurrency", type=int, default=16, help="our tasks and pgbench clients (default 16)")
    parser.add_argument(
        "--postgres", default=ADMIN_DSN, help=f"DSN allowed to create and drop databases (default {ADMIN_DSN})"
    )
    parser.add_argument(
        "--strict", action="store_true", help=f"exit 2 when the target is missed (ratio >= {TARGET_RATIO})"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.concurrency < 1:
        parser.error("--rounds, --duration and --concurrency must be positive")
    return args


# --- the throwaway database -------------------------------------------------------------------------------


def database_name() -> str:
    return f"namaskah_bench_{os.getpid()}"


def dsn_for(admin_dsn: str, database: str, scheme: str = "postgresql") -> str:
    return urlsplit(admin_dsn)._replace(scheme=scheme, path=f"/{database}").geturl()


async def execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def drop_database(admin_dsn: str, database: str) -> None:
    try:
        asyncio.run(execute(admin_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"warning: could not drop database {database}: {exc}", file=sys.stderr)


def namaskah_cli(env: dict[str, str], workdir: Path, *command: str) -> None:
    """`python -m namaskah <command>` on the bench database, from the temp dir (no `.env` of the checkout)."""
    done = subprocess.run(
        [sys.executable, "-m", "namaskah", *command],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"error: `namaskah {' '.join(command)}` failed ({done.returncode}):\n{done.stderr or done.stdout}")


def our_env(admin_dsn: str, database: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in harness.CLEARED_ENV}
    return {
        **env,
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATA_DIR": str(workdir),
        "APP_ENV": "test",
        "DATABASE_URL": dsn_for(admin_dsn, database, "postgresql+asyncpg"),
        "OUTBOX_SWEEP_INTERVAL": "0",
    }


# --- pgbench ----------------------------------------------------------------------------------------------


def pgbench_connection(admin_dsn: str) -> tuple[list[str], dict[str, str]]:
    parts = urlsplit(admin_dsn)
    options = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": parts.password} if parts.password else {})}
    return options, env


def pgbench_path() -> str:
    found = shutil.which("pgbench") or ("/usr/bin/pgbench" if Path("/usr/bin/pgbench").exists() else None)
    if found is None:
        sys.exit("error: pgbench not found (Debian: apt-get install postgresql-client / postgresql-contrib)")
    return found


def pgbench_init(pgbench: str, admin_dsn: str, database: str) -> None:
    options, env = pgbench_connection(admin_dsn)
    command = [pgbench, *options, "-i", "-s", str(PGBENCH_SCALE), "-q", database]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        sys.exit(f"error: pgbench -i failed ({done.returncode}):\n{done.stderr or done.stdout}")


def pgbench_round(pgbench: str, admin_dsn: str, database: str, args: argparse.Namespace) -> Round:
    options, env = pgbench_connection(admin_dsn)
    clients = str(args.concurrency)
    threads = str(min(PGBENCH_THREADS, args.concurrency))
    duration = str(max(1, round(args.duration)))
    command = [pgbench, *options, "-n", "-c", clients, "-j", threads, "-T", duration, "-b", "tpcb-like", database]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.duration + 120, check=False)
    elapsed = time.perf_counter() - started
    found = TPS_LINE.search(done.stdout)
    if done.returncode != 0 or found is None:
        sys.exit(f"error: pgbench failed ({done.returncode}):\n{done.stderr}\n{done.stdout}")
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    return Round(
        tps=float(found.group(1)),
        transactions=int(processed.group(1)) if processed else 0,
        elapsed_s=round(elapsed, 2),
        failed=int(failed.group(1)) if failed else 0,
    )


# --- ours -------------------------------------------------------------------------------------------------


class Ours:
    """The engine, session factory and funded users of our side; one per run, on this process's event loop."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.engine: AsyncEngine = create_async_engine(url, pool_size=concurrency, max_overflow=0)
        self.sessions: async_sessionmaker[Any] = create_session_factory(self.engine)
        self.concurrency = concurrency
        self.users: list[Any] = []

    async def provision(self) -> None:
        async with self.sessions() as session:
            users = [
                User(email=f"bench-{os.getpid()}-{n}@example.com", password_hash="bench-not-a-hash", is_active=True)
                for n in range(self.concurrency)
            ]
            session.add_all(users)
            await session.flush()
            self.users = [user.id for user in users]
            wallet = WalletService(session=session)
            for user_id in self.users:
                await wallet.credit(user_id, FUNDS, kind=EntryKind.TOPUP, reference=f"bench-fund:{user_id}")
            await session.commit()

    async def purchase(self, user_id: Any) -> None:
        async with self.sessions() as session:
            service = VerificationService(session=session, rates=RATES, window=WINDOW)
            await service.purchase(user_id, TIER, VerificationCreate(service=SERVICE), None)
            await session.commit()

    async def statements_per_purchase(self) -> int:
        """SQL statements sent to the driver during one purchase and its commit (BEGIN and COMMIT excluded:
        the asyncpg dialect issues them outside the cursor events)."""
        counted = 0

        def count(*_: object) -> None:
            nonlocal counted
            counted += 1

        event.listen(self.engine.sync_engine, "before_cursor_execute", count)
        try:
            await self.purchase(self.users[0])
        finally:
            event.remove(self.engine.sync_engine, "before_cursor_execute", count)
        return counted

    async def round(self, duration: float) -> Round:
        deadline = time.perf_counter() + duration
        counts = [0] * len(self.users)

        async def buyer(index: int) -> None:
            user_id = self.users[index]
            while time.perf_counter() < deadline:
                await self.purchase(user_id)
                counts[index] += 1

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(buyer(n) for n in range(len(self.users))))
        return in_process_round(sum(counts), time.perf_counter() - started, time.process_time() - cpu_started)

    async def close(self) -> None:
        await self.engine.dispose()


def in_process_round(total: int, elapsed: float, cpu: float) -> Round:
    cpu_ms = round(cpu / total * 1000, 2) if total else None
    return Round(
        tps=round(total / elapsed, 1), transactions=total, elapsed_s=round(elapsed, 2), cpu_ms_per_transaction=cpu_ms
    )


# --- the run ----------------------------------------------------------------------------------------------


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415 - optional

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def spread(rounds: list[Round]) -> float:
    values = [r.tps for r in rounds]
    return round((max(values) - min(values)) / statistics.median(values), 3)


def measure(args: argparse.Namespace, pgbench: str, database: str, workdir: Path) -> dict[str, Any]:
    log_path = workdir / "ours.log"
    loop = new_loop()
    sides = ["ours", "bare_sql", "pgbench"]
    results: dict[str, list[Round]] = {side: [] for side in sides}
    with log_path.open("w", encoding="utf-8") as log:
        configure_logging("INFO", "json", stream=log)  # the app's production logging: one line per purchase
        ours = Ours(dsn_for(args.postgres, database, "postgresql+asyncpg"), args.concurrency)
        bare = BareSql(dsn_for(args.postgres, database), [], SERVICE, TIER)
        try:
            loop.run_until_complete(ours.provision())
            bare.users = ours.users
            loop.run_until_complete(bare.open())
            statements = loop.run_until_complete(ours.statements_per_purchase())
            # Warm the sides: pools and statement caches, the tables in shared buffers.
            loop.run_until_complete(ours.round(min(2.0, args.duration)))
            loop.run_until_complete(bare.round(min(2.0, args.duration)))
            print(f"{args.concurrency} clients, {args.rounds} rounds of {args.duration:g} s per side, ", end="")
            print(f"pgbench -s {PGBENCH_SCALE} -j {min(PGBENCH_THREADS, args.concurrency)} -b tpcb-like")
            for n in range(args.rounds):
                for side in sides[n % 3 :] + sides[: n % 3]:
                    if side == "ours":
                        result = loop.run_until_complete(ours.round(args.duration))
                    elif side == "bare_sql":
                        result = in_process_round(*loop.run_until_complete(bare.round(args.duration)))
                    else:
                        result = pgbench_round(pgbench, args.postgres, database, args)
                    results[side].append(result)
                    failed = f", {result.failed} failed" if result.failed else ""
                    if result.cpu_ms_per_transaction is not None:
                        failed += f", {result.cpu_ms_per_transaction:.2f} ms CPU of this process each"
                    print(f"  round {n + 1} {side:9} {result.tps:9.1f} tps ({result.transactions} in ", end="")
                    print(f"{result.elapsed_s:.1f} s{failed})", flush=True)
        finally:
            loop.run_until_complete(bare.close())
            loop.run_until_complete(ours.close())
            loop.close()
    return {"results": results, "statements": statements, "log_lines": harness.count_lines(log_path)}


def report(measured: dict[str, Any], args: argparse.Namespace) -> int:
    results: dict[str, list[Round]] = measured["results"]
    medians = {side: statistics.median(r.tps for r in rounds) for side, rounds in results.items()}
    ratio = medians["ours"] / medians["pgbench"]
    met = ratio >= TARGET_RATIO
    spreads = {side: spread(rounds) for side, rounds in results.items()}
    path = harness.write_results(
        "purchases",
        {
            "ratio": round(ratio, 3),
            # How far the database itself is from pgbench for our rows, and how far our stack is from bare SQL.
            "bare_sql_vs_pgbench": round(medians["bare_sql"] / medians["pgbench"], 3),
            "ours_vs_bare_sql": round(medians["ours"] / medians["bare_sql"], 3),
            "target_ratio": TARGET_RATIO,
            "target_met": met,
            "median_tps": medians,
            "spread": spreads,
            "statements_per_purchase": measured["statements"],
            "our_log_lines": measured["log_lines"],
            "rounds": {side: [asdict(r) for r in rounds] for side, rounds in results.items()},
            "environment": {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": sys.version.split()[0],
                "sqlalchemy": metadata.version("sqlalchemy"),
                "asyncpg": metadata.version("asyncpg"),
                "pgbench": subprocess.run(
                    [pgbench_path(), "--version"], capture_output=True, text=True, check=False
                ).stdout.strip(),
                "cpus": os.cpu_count(),
                "loadavg_at_end": os.getloadavg(),
                "concurrency": args.concurrency,
                "duration_s": args.duration,
                "rounds": args.rounds,
                "pgbench_scale": PGBENCH_SCALE,
                "pgbench_threads": min(PGBENCH_THREADS, args.concurrency),
            },
        },
    )
    print(f"\nmedians over {args.rounds} rounds:")
    for side, value in medians.items():
        print(f"  {side:9} {value:9.1f} tps")
    for side, moved in spreads.items():
        if moved > harness.NOISY_SPREAD:
            print(f"warning: {side} varied {moved:.0%} across rounds; is something else loading the machine?")
    print(f"target ratio >= {TARGET_RATIO}: {'met' if met else 'NOT met'}")
    print(f"SQL statements per purchase: {measured['statements']} (+ BEGIN and COMMIT); ", end="")
    print("pgbench tpcb-like: 5 (+ BEGIN and END)")
    print(f"our log lines written: {measured['log_lines']}")
    bare_ratio, stack_ratio = medians["bare_sql"] / medians["pgbench"], medians["ours"] / medians["bare_sql"]
    print(f"bare_sql / pgbench = {bare_ratio:.2f} (the database's work for our rows); ", end="")
    print(f"ours / bare_sql = {stack_ratio:.2f} (our Python stack)")
    print(f"results: {harness.relative(path)}")
    print(f"purchases ratio={ratio:.2f} (ours {medians['ours']:.0f} tps / pgbench {medians['pgbench']:.0f} tps)")
    return 2 if args.strict and not met else 0


def run(args: argparse.Namespace, workdir: Path) -> int:
    pgbench = pgbench_path()
    database = database_name()
    env = our_env(args.postgres, database, workdir)
    asyncio.run(execute(args.postgres, f'CREATE DATABASE "{database}"'))
    try:
        namaskah_cli(env, workdir, "database", "upgrade")
        namaskah_cli(env, workdir, "catalog", "sync")
        pgbench_init(pgbench, args.postgres, database)
        measured = measure(args, pgbench, database, workdir)
    finally:
        drop_database(args.postgres, database)
    return report(measured, args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="namaskah-bench-"))
    try:
        return run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
