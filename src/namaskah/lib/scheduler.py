"""The periodic scheduler: APScheduler fires each task on time and, only while this process holds the leader lease
(a Redis lock), sends the task's Dramatiq message.

Several schedulers may run for failover; one leads. The lease is `SET key token NX PX ttl`, renewed by a Lua
compare-and-extend and released by a compare-and-delete, so a scheduler never extends or drops another's lock.
A leader also keeps a local deadline (the moment before its last successful SET or extend, plus the TTL, on a
monotonic clock): it sends only before that deadline, so a renewal that fails, or does not come back, stops it
before the lock can expire in Redis and another take over. Around a takeover a tick may be sent twice, never
dropped for long; every periodic job is idempotent.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import dramatiq
import msgspec
import redis
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

from namaskah.db.base import utcnow
from namaskah.lib.logging import get_logger
from namaskah.lib.outbox.jobs import Job

logger = get_logger(__name__)

Clock = Callable[[], float]

# Periodic jobs have a queue of their own: a backlog of purchases never delays a sweep, and their dead letters
# and metrics stay apart.
MAINTENANCE_QUEUE = "maintenance"

_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def lock_key(namespace: str) -> str:
    """The leader lock's Redis key, beside the job queues of the same DRAMATIQ_NAMESPACE."""
    return f"{namespace}:scheduler:leader"


class Tick(Job, frozen=True, kw_only=True):
    """The payload of a periodic job; `sent_at` lets its actor log how long the tick waited in the queue."""

    queue_name = MAINTENANCE_QUEUE

    sent_at: datetime


class PeriodicTask(msgspec.Struct, frozen=True):
    """Send a `job` message every `every` seconds."""

    job: type[Tick]
    every: float

    @property
    def name(self) -> str:
        return self.job.actor_name


class Lease(Protocol):
    """Leadership: `keep` acquires or renews it, `held` says whether this process may send right now."""

    @property
    def held(self) -> bool: ...

    def keep(self) -> bool: ...

    def release(self) -> None: ...


class RedisLease:
    """The leader lock in Redis; `clock` is injectable so tests can move time."""

    def __init__(self, client: redis.Redis, key: str, *, ttl: float, clock: Clock = time.monotonic) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        self.token = secrets.token_hex(16)
        self._clock = clock
        self._valid_until = -math.inf
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        return self._clock() < self._valid_until

    def keep(self) -> bool:
        """Renew the lock if it is ours, otherwise try to take it; False (and `held` false at once) if neither
        works, Redis errors included."""
        started = self._clock()
        try:
            ours = self._extend_lock() or bool(self.client.set(self.key, self.token, nx=True, px=self._ttl_ms))
        except redis.RedisError as exc:
            logger.warning("scheduler_lock_error", error=type(exc).__name__)
            ours = False
        self._valid_until = started + self.ttl if ours else -math.inf
        return ours

    def release(self) -> None:
        """Drop the lock if it is still ours, so a waiting scheduler takes over at its next try."""
        self._valid_until = -math.inf
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError as exc:
            logger.warning("scheduler_lock_release_failed", error=type(exc).__name__)

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def _extend_lock(self) -> bool:
        return bool(self._extend(keys=[self.key], args=[self.token, self._ttl_ms]) == 1)


class LocalLease:
    """Dev mode: one process, no Redis, always the leader."""

    held = True

    def keep(self) -> bool:
        return True

    def release(self) -> None:
        return None


class PeriodicScheduler:
    """Runs until `stop()`: APScheduler's thread fires the ticks, the caller's thread keeps the lease."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        tasks: Sequence[PeriodicTask],
        lease: Lease,
        *,
        renew_every: float,
        retry_every: float,
    ) -> None:
        self.broker = broker
        self.tasks = list(tasks)
        self.lease = lease
        self.renew_every = renew_every
        self.retry_every = retry_every
        self._leading = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def with_redis_lease(
        cls, broker: dramatiq.Broker, tasks: Sequence[PeriodicTask], client: redis.Redis, key: str, *, ttl: float
    ) -> PeriodicScheduler:
        """Renew three times per TTL; a follower tries ten times per TTL, so it takes over soon after expiry."""
        lease = RedisLease(client, key, ttl=ttl)
        return cls(broker, tasks, lease, renew_every=ttl / 3, retry_every=ttl / 10)

    def tick(self, task: PeriodicTask) -> dramatiq.Message[object] | None:
        """Send the task's message if this process leads; None otherwise (or when the broker is unreachable)."""
        if not self.lease.held:
            return None
        # A request id of its own: the job's log lines, and those of every job it requests, carry it.
        request_id = f"tick-{uuid.uuid4().hex[:16]}"
        message: dramatiq.Message[object] = dramatiq.Message(
            queue_name=task.job.queue_name,
            actor_name=task.job.actor_name,
            args=(task.job(sent_at=utcnow()).to_payload(),),
            kwargs={},
            options={"request_id": request_id},
        )
        try:
            if message.queue_name not in self.broker.get_declared_queues():
                self.broker.declare_queue(message.queue_name)
            self.broker.enqueue(message)
        except Exception as exc:
            logger.warning("periodic_task_send_failed", task=task.name, error=type(exc).__name__)
            return None
        logger.info("periodic_task_sent", task=task.name, message_id=message.message_id, request_id=request_id)
        return message

    def keep_lease(self) -> bool:
        """One round of the election; logs when this process becomes or stops being the leader."""
        leading = self.lease.keep()
        if leading and not self._leading:
            logger.info("scheduler_leader_acquired")
        elif self._leading and not leading:
            logger.warning("scheduler_leader_lost")
        self._leading = leading
        return leading

    def run(self) -> None:
        """Block until `stop()`; the lease is released on the way out."""
        scheduler = BackgroundScheduler(
            timezone=UTC,
            # A late tick runs once, however late (the scheduler thread was starved); ticks never overlap.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for task in self.tasks:
            scheduler.add_job(self.tick, "interval", seconds=task.every, args=(task,), id=task.name, name=task.name)
        logger.info("scheduler_started", tasks={task.name: task.every for task in self.tasks})
        scheduler.start()
        try:
            while not self._stopping.is_set():
                leading = self.keep_lease()
                self._stopping.wait(self.renew_every if leading else self.retry_every)
        finally:
            scheduler.shutdown(wait=True)
            self.lease.release()
            logger.info("scheduler_stopped")

    def start(self) -> None:
        """Run in a background thread (dev mode's API process)."""
        self._thread = threading.Thread(target=self.run, name="periodic-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
