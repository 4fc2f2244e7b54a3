"""Atomic fixed-window counters in Redis (one Lua call per hit), shared by every API process; fail open."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import msgspec
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from namaskah.lib.logging import get_logger
from namaskah.lib.script_batch import ScriptBatch
from namaskah.lib.stamps import STAMP_TTL_SECONDS, new_stamp

logger = get_logger(__name__)
LIMITER_ERRORS = Counter(
    "rate_limiter_errors_total", "Rate-limit checks that could not reach Redis and were allowed (fail open)."
)

# INCR the window's counter, give it a TTL on first use, answer (count, milliseconds left in the window, stamps).
# KEYS[2..] are stamps (see namaskah.lib.stamps) read in the same round trip, created from ARGV[3] when missing:
# the caller's cache check then costs nothing more than the count every request pays anyway.
_HIT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
local stamps = {}
for i = 2, #KEYS do
  local stamp = redis.call('GET', KEYS[i])
  if not stamp then
    stamp = ARGV[3] .. i
    redis.call('SET', KEYS[i], stamp, 'EX', ARGV[4])
  end
  stamps[#stamps + 1] = stamp
end
return {count, ttl, table.concat(stamps, '|')}
"""


class Tally(msgspec.Struct, frozen=True):
    """The window's count after this hit, and the stamps read with it ("" without any; None when unknown)."""

    count: int
    ms_left: int
    stamps: str | None = None


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
        self._hit = ScriptBatch(redis, _HIT) if redis is not None else None
        self._local: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str, limit: int, *, cost: int = 1) -> Decision:
        return self.decide(await self.count(key, cost=cost), limit)

    async def count(self, key: str, *, cost: int = 1, stamp_keys: Sequence[str] = ()) -> Tally | None:
        """Count the event and read the stamps; None when Redis is unreachable (logged, counted)."""
        try:
            if self._hit is None:
                return self._count_locally(key, cost)
            keys = [self._key(key), *stamp_keys]
            args: list[str | int] = [self.window * 1000, cost, new_stamp(), STAMP_TTL_SECONDS]
            count, ms_left, stamps = await self._hit(keys, args)
        except (RedisError, OSError) as exc:
            LIMITER_ERRORS.inc()
            logger.warning("rate_limiter_unavailable", error=type(exc).__name__)
            return None
        return Tally(int(count), int(ms_left), stamps.decode() if isinstance(stamps, bytes) else str(stamps))

    def decide(self, tally: Tally | None, limit: int) -> Decision:
        """Allowed or not under `limit`; a failed count allows (fail open)."""
        if tally is None:
            return Decision(allowed=True, limit=limit, remaining=limit, reset=self.window)
        return Decision(
            allowed=tally.count <= limit,
            limit=limit,
            remaining=max(limit - tally.count, 0),
            reset=max(math.ceil(tally.ms_left / 1000), 1),
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

    def _count_locally(self, key: str, cost: int) -> Tally:
        now = time.monotonic()
        count, ends = self._local.get(key, (0, now + self.window))
        if ends <= now:
            count, ends = 0, now + self.window
        self._local[key] = (count + cost, ends)
        # No stamps without Redis: nothing may trust a cache.
        return Tally(count + cost, int((ends - now) * 1000))

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"
