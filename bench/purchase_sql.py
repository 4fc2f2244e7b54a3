"""The writes of one verification purchase as bare SQL over a raw asyncpg pool: the same rows, statements and
transaction as ours, with no SQLAlchemy, services or logging. It shows how much of the gap to pgbench is the
database's work for our rows and how much is our Python stack."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from uuid_utils.compat import uuid7

from namaskah.domain.wallet.models import SYSTEM_ACCOUNT_IDS, SystemAccount

QUOTE = """SELECT s.slug, s.name, s.provider, s.provider_service, s.cost, s.markup_bps,
  (SELECT t.discount_bps FROM tiers t WHERE t.name = $2) FROM services s WHERE s.slug = $1 AND s.active"""
VERIFICATION = """INSERT INTO verifications (id, user_id, service, service_name, provider, provider_service, status,
  price, currency, request_fingerprint, expires_at, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, 'NGN', $8, $9, $10, $10)
  ON CONFLICT (user_id, idempotency_key) DO NOTHING"""
TRANSACTION = """INSERT INTO ledger_transactions (id, reference, kind, amount, currency, created_at)
  VALUES ($1, $2, 'purchase', $3, 'NGN', $4) ON CONFLICT (reference) DO NOTHING"""
DEBIT = """UPDATE ledger_accounts SET balance = balance - $2, last_sequence = last_sequence + 1
  WHERE user_id = $1 AND balance - $2 >= 0 RETURNING id, last_sequence, balance"""
ENTRIES = """INSERT INTO ledger_entries (id, transaction_id, account_id, amount, sequence, balance_after, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7)"""
OUTBOX = """INSERT INTO outbox_messages (id, actor, queue, payload, request_id, created_at, publish_attempts)
  VALUES ($1, 'verifications.acquire', 'default', $2, NULL, $3, 0)"""
REVENUE = SYSTEM_ACCOUNT_IDS[SystemAccount.REVENUE]
PRICE = 1_000  # the price is not what is measured; ours computes it from the quote, this side takes a constant


class BareSql:
    def __init__(self, dsn: str, users: list[Any], service: str, tier: str) -> None:
        self.dsn, self.users, self.service, self.tier = dsn, users, service, tier
        self.pool: Any = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=len(self.users), max_size=len(self.users))

    async def purchase(self, connection: Any, user_id: Any) -> None:
        now, verification_id, transaction_id = datetime.now(UTC), uuid7(), uuid7()
        async with connection.transaction():
            quote = await connection.fetchrow(QUOTE, self.service, self.tier)
            await connection.execute(
                VERIFICATION, verification_id, user_id, *quote[:4], PRICE, "0" * 64, now + timedelta(minutes=15), now
            )
            await connection.execute(TRANSACTION, transaction_id, f"verification:{verification_id}", PRICE, now)
            wallet_id, sequence, balance = await connection.fetchrow(DEBIT, user_id, PRICE)
            await connection.executemany(
                ENTRIES,
                [
                    (uuid7(), transaction_id, wallet_id, -PRICE, sequence, balance, now),
                    (uuid7(), transaction_id, REVENUE, PRICE, None, None, now),
                ],
            )
            await connection.execute(OUTBOX, uuid7(), json.dumps({"verification_id": str(verification_id)}), now)

    async def round(self, duration: float) -> tuple[int, float, float]:
        """(purchases, elapsed seconds, this process's CPU seconds) of one round."""
        deadline = time.perf_counter() + duration
        counts = [0] * len(self.users)

        async def buyer(index: int) -> None:
            async with self.pool.acquire() as connection:
                while time.perf_counter() < deadline:
                    await self.purchase(connection, self.users[index])
                    counts[index] += 1

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(buyer(n) for n in range(len(self.users))))
        return sum(counts), time.perf_counter() - started, time.process_time() - cpu_started

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
