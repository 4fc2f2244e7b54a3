"""This process's copy of recently seen callers, trusted only while their stamps in Redis are unchanged.

Every change to a user, one of their API keys or the tiers renews a stamp after commit (marked here by a flush
listener, or by hand for bulk UPDATEs); the rate-limit script reads the caller's stamps in the round trip it makes
anyway, so a revoked key or a new tier is seen by every process at its next request, without a query per request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from namaskah.domain.accounts.models import User
from namaskah.domain.apikeys.models import ApiKey
from namaskah.domain.tiers.models import TierPlan
from namaskah.lib.stamps import mark_stale

if TYPE_CHECKING:
    from namaskah.domain.accounts.caller import Caller

TIERS_STAMP = "caller:tiers"
# How often this process records an API key's use in the database (`last_used_at` is a hint, not a trail).
TOUCH_EVERY_SECONDS = 60.0
V = TypeVar("V")


def user_stamp(user_id: uuid.UUID) -> str:
    return f"caller:user:{user_id}"


def stamps_of(user_id: uuid.UUID) -> tuple[str, str]:
    """The stamps a cached caller depends on: its user's (their keys included) and the tiers'."""
    return user_stamp(user_id), TIERS_STAMP


@dataclass(frozen=True, slots=True)
class Identity:
    """What never changes about a credential: whose it is and which bucket it counts in."""

    rate_key: str
    user_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class _Entry:
    caller: Caller
    stamps: str
    loaded_at: float


class _Bounded(Generic[V]):
    """A dict that forgets its oldest insertions past `size` (a key guessed at random never gets in: only
    credentials that matched a row are remembered)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: dict[str, V] = {}

    def get(self, key: str) -> V | None:
        return self.items.get(key)

    def put(self, key: str, value: V) -> None:
        self.items.pop(key, None)
        self.items[key] = value
        while len(self.items) > self.size:
            del self.items[next(iter(self.items))]


class CallerCache:
    """`max_age` bounds how long an entry lives even if a stamp renewal was lost (Redis down at that moment)."""

    def __init__(self, *, max_age: float, size: int) -> None:
        self.max_age = max_age
        self._identities: _Bounded[Identity] = _Bounded(size)
        self._entries: _Bounded[_Entry] = _Bounded(size)
        self._touched: _Bounded[float] = _Bounded(size)

    def identity(self, credential: str) -> Identity | None:
        return self._identities.get(credential)

    def remember(self, credential: str, identity: Identity) -> None:
        self._identities.put(credential, identity)

    def fresh(self, credential: str, stamps: str) -> Caller | None:
        """The cached caller if it was loaded under exactly these stamps, and not too long ago."""
        entry = self._entries.get(credential)
        if entry is None or entry.stamps != stamps or time.monotonic() - entry.loaded_at > self.max_age:
            return None
        return entry.caller

    def store(self, credential: str, caller: Caller, stamps: str) -> None:
        """`stamps` must have been read before `caller` was loaded, or a change in between would go unseen."""
        if self.max_age > 0:
            self._entries.put(credential, _Entry(caller, stamps, time.monotonic()))

    def should_touch(self, api_key_id: uuid.UUID) -> bool:
        """True at most once per TOUCH_EVERY_SECONDS per key in this process."""
        now, key = time.monotonic(), str(api_key_id)
        last = self._touched.get(key)
        if last is not None and now - last < TOUCH_EVERY_SECONDS:
            return False
        self._touched.put(key, now)
        return True


@event.listens_for(Session, "before_flush")
def _mark_changed_callers(session: Session, _context: Any, _instances: Any) -> None:
    # Any ORM change to a user or key, or to a tier, makes cached callers stale once it commits.
    changed: Iterable[object] = [*session.dirty, *session.deleted, *session.new]
    for instance in changed:
        if isinstance(instance, User) and instance not in session.new:
            mark_stale(session, user_stamp(instance.id))
        elif isinstance(instance, ApiKey) and instance not in session.new:
            mark_stale(session, user_stamp(instance.user_id))
        elif isinstance(instance, TierPlan):
            mark_stale(session, TIERS_STAMP)
