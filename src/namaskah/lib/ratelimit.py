"""Atomic fixed-window counters in Redis (one Lua call per hit), shared by every API process; fail open."""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from namaskah.lib.logging import get_logger

logger = get_logger(__name__)
LIMITER_ERRORS = Counter(
    "rate_limiter_errors_total", "Rate-limit checks that could not reach Redis and were allowed (fail open)."
)

# INCR the window's counter, give it a TTL on first use, answer (count, milliseconds left in the window).
_HIT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window starts again

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """`hit(key, limit)` counts one event in the current window of `window` seconds and says if it is allowed.

    Without Redis (dev mode) the counters live in this process, which is right for a single process."""

    def __init__(self, redis: Redis | None, *, prefix: str, window: int = 60) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window = window
        self._script: Any = redis.register_script(_HIT) if redis is not None else None
        self._local: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str, limit: int, *, cost: int = 1) -> Decision:
        try:
            count, ms_left = await self._count(key, cost)
        except (RedisError, OSError) as exc:
            LIMITER_ERRORS.inc()
            logger.warning("rate_limiter_unavailable", error=type(exc).__name__)
            return Decision(allowed=True, limit=limit, remaining=limit, reset=self.window)
        return Decision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(limit - count, 0),
            reset=max(math.ceil(ms_left / 1000), 1),
        )

    async def peek(self, key: str, limit: int) -> Decision:
        """The state of the window without counting an event."""
        return await self.hit(key, limit, cost=0)

    async def reset(self, key: str) -> None:
        try:
            if self.redis is not None:
                await self.redis.delete(self._key(key))
            else:
                self._local.pop(key, None)
        except (RedisError, OSError):
            LIMITER_ERRORS.inc()

    async def _count(self, key: str, cost: int) -> tuple[int, int]:
        if self._script is None:
            return self._count_locally(key, cost)
        count, ms_left = await self._script(keys=[self._key(key)], args=[self.window * 1000, cost])
        return int(count), int(ms_left)

    def _count_locally(self, key: str, cost: int) -> tuple[int, int]:
        now = time.monotonic()
        count, ends = self._local.get(key, (0, now + self.window))
        if ends <= now:
            count, ends = 0, now + self.window
        self._local[key] = (count + cost, ends)
        return count + cost, int((ends - now) * 1000)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"
