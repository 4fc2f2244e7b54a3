"""The rate limiter's Redis path on a real Redis: batched scripts stay atomic, survive a script flush, fail open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Connection, Redis
from redis.exceptions import RedisError

from namaskah.lib.ratelimit import RateLimiter
from namaskah.lib.redis_client import HiredisConnection, async_redis
from namaskah.lib.script_batch import ScriptBatch
from tests.support.databases import REDIS_URL


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = async_redis(REDIS_URL)
    yield client
    await client.aclose()


async def test_concurrent_hits_are_counted_once_each(redis: Redis, redis_namespace: str) -> None:
    limiter = RateLimiter(redis, prefix=redis_namespace)
    tallies = await asyncio.gather(*(limiter.count("key:a") for _ in range(200)))
    assert sorted(t.count for t in tallies if t is not None) == list(range(1, 201))
    decisions = [limiter.decide(t, 150) for t in tallies]
    assert sum(d.allowed for d in decisions) == 150


async def test_stamps_are_created_once_and_read_with_the_count(redis: Redis, redis_namespace: str) -> None:
    limiter = RateLimiter(redis, prefix=redis_namespace)
    stamp_keys = [f"{redis_namespace}:stamp:a", f"{redis_namespace}:stamp:b"]
    first, second = await asyncio.gather(*(limiter.count("key:a", stamp_keys=stamp_keys) for _ in range(2)))
    assert first is not None
    assert second is not None
    assert first.stamps == second.stamps
    a, b = (first.stamps or "").split("|")
    assert a != b  # created in one call, still two different stamps
    await redis.set(stamp_keys[1], "renewed")
    third = await limiter.count("key:a", stamp_keys=stamp_keys)
    assert third is not None
    assert third.stamps == f"{a}|renewed"


async def test_a_flushed_script_cache_is_reloaded(redis: Redis, redis_namespace: str) -> None:
    limiter = RateLimiter(redis, prefix=redis_namespace)
    assert (await limiter.count("key:a")) is not None
    await redis.script_flush()
    tallies = await asyncio.gather(*(limiter.count("key:a") for _ in range(5)))
    assert sorted(t.count for t in tallies if t is not None) == [2, 3, 4, 5, 6]


async def test_every_waiting_caller_gets_the_failure() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    batch = ScriptBatch(unreachable, "return 1")
    results = await asyncio.gather(*(batch([], []) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RedisError) for r in results), results
    limiter = RateLimiter(unreachable, prefix="nowhere")
    assert all(t is None for t in await asyncio.gather(*(limiter.count("k") for _ in range(3))))
    await unreachable.aclose()


async def test_a_caller_that_went_away_does_not_break_the_others(redis: Redis, redis_namespace: str) -> None:
    batch = ScriptBatch(redis, "return redis.call('INCR', KEYS[1])")
    key = f"{redis_namespace}:n"
    doomed = asyncio.ensure_future(batch([key], []))
    kept = asyncio.ensure_future(batch([key], []))
    doomed.cancel()
    assert await kept in (1, 2)
    with pytest.raises(asyncio.CancelledError):
        await doomed


@pytest.mark.parametrize(
    "command",
    [
        ("EVALSHA", "abc", 2, "k1", "k2", 60000, 1, "stamp", 86400),
        ("SET", b"bytes", "caf\u00e9", 1.5),
        ("SCRIPT LOAD", "return 1"),
        ("GET", memoryview(b"view")),
    ],
)
def test_hiredis_packs_what_redis_py_packs(command: tuple[object, ...]) -> None:
    python = b"".join(Connection().pack_command(*command))
    assert b"".join(HiredisConnection().pack_command(*command)) == python
