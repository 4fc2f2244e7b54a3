"""CPU per one-row read from PostgreSQL in this process: bare asyncpg against SQLAlchemy Core and an ORM session.

`GET /v1/me` reads the live balance on every request; this says what that read alone costs on this machine, to
set beside the bare app's whole request in me_api_key.py. Needs PostgreSQL; creates and drops its own table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import BigInteger, Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
wallets = Table("bench_read_cost", MetaData(), Column("owner", String, primary_key=True), Column("balance", BigInteger))
READ = "SELECT balance FROM bench_read_cost WHERE owner = $1"


async def cpu_per_call(work: Callable[[], Awaitable[object]], *, calls: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per call, `concurrency` callers at a time."""

    async def caller(n: int) -> None:
        for _ in range(n):
            await work()

    await asyncio.gather(*(caller(20) for _ in range(concurrency)))  # warm pools and statement caches
    started = time.process_time()
    await asyncio.gather(*(caller(calls // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / (calls // concurrency * concurrency) * 1e6


async def measure(dsn: str, calls: int, concurrency: int, pool_size: int) -> dict[str, float]:
    owner = f"bench-{os.getpid()}"
    admin = await asyncpg.connect(dsn)
    await admin.execute("CREATE TABLE IF NOT EXISTS bench_read_cost (owner text PRIMARY KEY, balance bigint)")
    await admin.execute("INSERT INTO bench_read_cost VALUES ($1, 100) ON CONFLICT DO NOTHING", owner)
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    query = select(wallets.c.balance).where(wallets.c.owner == owner)

    async def bare_read() -> object:
        async with pool.acquire() as connection:
            return await connection.fetchval(READ, owner)

    async def bare_transaction() -> object:
        async with pool.acquire() as connection, connection.transaction():
            return await connection.fetchval(READ, owner)

    async def core_autocommit() -> object:
        async with autocommit.connect() as connection:
            return await connection.scalar(query)

    async def orm_session() -> object:
        async with sessions() as session:  # what a request's db_session does: BEGIN, SELECT, COMMIT
            value = await session.scalar(query)
            await session.commit()
            return value

    try:
        ways = {
            "asyncpg, no transaction": bare_read,
            "asyncpg, in a transaction": bare_transaction,
            "SQLAlchemy Core, autocommit, pre-ping": core_autocommit,
            "SQLAlchemy ORM session + commit, pre-ping": orm_session,
        }
        return {name: await cpu_per_call(way, calls=calls, concurrency=concurrency) for name, way in ways.items()}
    finally:
        await pool.close()
        await engine.dispose()
        await admin.execute("DELETE FROM bench_read_cost WHERE owner = $1", owner)
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default=DSN, help=f"a database to create a scratch table in (default {DSN})")
    parser.add_argument("--calls", type=int, default=3200, help="reads per way (default 3200)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent readers (default 64)")
    parser.add_argument("--pool", type=int, default=10, help="connections per pool, as DB_POOL_SIZE (default 10)")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.postgres, args.calls, args.concurrency, args.pool))
    baseline = figures["asyncpg, no transaction"]
    for name, micros in figures.items():
        print(f"{name:<45} {micros:8.0f} us CPU per read   x{micros / baseline:4.1f} of bare asyncpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
