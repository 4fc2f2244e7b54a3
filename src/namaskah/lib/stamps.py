"""Stamps: random tokens in Redis that every process compares to tell whether its cached copy of something is stale.

A process caches a value together with the stamp it read *before* loading the value; whoever changes the value
renews the stamp after committing, so the next comparison anywhere fails and the value is loaded again. Sessions
collect the names to renew while they work (`mark_stale`), and the relay renews them once the commit succeeded.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.orm import Session

from namaskah.lib.logging import get_logger

logger = get_logger(__name__)
STALE_KEY = "namaskah.stamps.stale"
# A stamp nobody renews expires; the next reader creates a new one, which only costs one reload.
STAMP_TTL_SECONDS = 86_400
STAMP_RENEW_FAILURES = Counter(
    "stamp_renew_failures_total",
    "Stamps that could not be renewed in Redis after a commit (caches then expire by age alone).",
)


def new_stamp() -> str:
    return secrets.token_hex(8)


def mark_stale(session: AsyncSession | async_scoped_session[AsyncSession] | Session, *names: str) -> None:
    """Renew these stamps when this session commits (nothing happens if it rolls back)."""
    if isinstance(session, async_scoped_session):
        session = session()
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(STALE_KEY, set()).update(names)


def take_stale(session: AsyncSession) -> set[str]:
    stale: set[str] = session.sync_session.info.pop(STALE_KEY, set())
    return stale


def drop_stale(session: AsyncSession) -> None:
    """A rolled-back session renews nothing."""
    session.sync_session.info.pop(STALE_KEY, None)


class StampBook:
    """Where stamps live: `key(name)` for readers (the admission script reads them in its own round trip),
    `renew(names)` for writers. Without Redis (dev mode) there are no stamps and nothing may trust a cache."""

    def __init__(self, redis: Redis | None, *, namespace: str) -> None:
        self.redis = redis
        self.prefix = f"{namespace}:stamps"  # every process of one deployment must agree on it

    @property
    def enabled(self) -> bool:
        return self.redis is not None

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    async def renew(self, names: Iterable[str]) -> None:
        """Give each name a fresh stamp; a failure is logged and counted, never raised: the change is committed."""
        keys = [self.key(name) for name in sorted(names)]
        if not keys or self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, new_stamp(), ex=STAMP_TTL_SECONDS)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            STAMP_RENEW_FAILURES.inc(len(keys))
            logger.error("stamp_renew_failed", count=len(keys), error=type(exc).__name__)
