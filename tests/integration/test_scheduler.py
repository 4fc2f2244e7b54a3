"""The scheduler's leader lease on real Redis (one holder, expiry, compare-and-extend, compare-and-delete, a local
deadline on an injected clock) and the ticks it sends through a real Redis broker; the schedule table."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dramatiq
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from namaskah.domain.billing.jobs import SweepStuckTopups
from namaskah.domain.maintenance.jobs import ExpireVerifications, SweepOutbox, SweepRentals
from namaskah.domain.maintenance.schedule import periodic_tasks
from namaskah.domain.reconciliation.jobs import ReconcilePaystack
from namaskah.domain.subscriptions.jobs import SweepSubscriptions
from namaskah.domain.webhooks.jobs import SweepWebhookDeliveries
from namaskah.lib.queue import build_broker
from namaskah.lib.scheduler import MAINTENANCE_QUEUE, PeriodicScheduler, PeriodicTask, RedisLease, lock_key
from tests.support.databases import REDIS_URL, make_settings
from tests.support.processes import free_port

SWEEP = PeriodicTask(SweepOutbox, every=0.2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    connection.close()


@pytest.fixture
def broker(redis_namespace: str) -> Iterator[dramatiq.Broker]:
    queue_broker = build_broker(make_settings(REDIS_URL=REDIS_URL, DRAMATIQ_NAMESPACE=redis_namespace))
    yield queue_broker
    queue_broker.close()


def queued(client: redis.Redis, namespace: str) -> list[dramatiq.Message[object]]:
    """The messages waiting on the maintenance queue, oldest first."""
    ids = client.lrange(f"{namespace}:{MAINTENANCE_QUEUE}", 0, -1)
    return [dramatiq.Message.decode(client.hget(f"{namespace}:{MAINTENANCE_QUEUE}.msgs", i)) for i in ids]


def test_one_holder_at_a_time_until_its_lock_expires(client: redis.Redis, redis_namespace: str) -> None:
    key = lock_key(redis_namespace)
    first, second = RedisLease(client, key, ttl=0.4), RedisLease(client, key, ttl=0.4)
    assert first.keep()
    assert first.held
    assert not second.keep()
    assert not second.held
    assert client.get(key) == first.token.encode()
    time.sleep(0.25)
    assert first.keep()  # renewed: the lock outlives its first TTL
    assert 300 < client.pttl(key) <= 400
    time.sleep(0.25)
    assert not second.keep()
    time.sleep(0.45)  # the holder stopped renewing (a dead process): its lock expires in Redis
    assert second.keep()
    assert second.held
    # The old holder cannot extend what is no longer its lock, and knows it lost at once.
    assert not first.keep()
    assert not first.held
    assert client.get(key) == second.token.encode()


def test_release_deletes_only_its_own_lock(client: redis.Redis, redis_namespace: str) -> None:
    key = lock_key(redis_namespace)
    stale, current = RedisLease(client, key, ttl=5), RedisLease(client, key, ttl=5)
    assert stale.keep()
    client.set(key, current.token, px=5000)  # the stale holder paused past its TTL and another took over
    stale.release()
    assert client.get(key) == current.token.encode()
    assert current.keep()
    current.release()
    assert client.exists(key) == 0
    assert not current.held


def test_a_leader_whose_renewal_fails_stops_sending_at_once(
    client: redis.Redis, broker: dramatiq.Broker, redis_namespace: str
) -> None:
    key = lock_key(redis_namespace)
    scheduler = PeriodicScheduler(broker, [SWEEP], RedisLease(client, key, ttl=30), renew_every=10, retry_every=3)
    with capture_logs() as logs:
        assert scheduler.keep_lease()
        sent = scheduler.tick(SWEEP)
        client.set(key, "another-scheduler", px=30_000)  # its lock was taken while it could not renew
        assert not scheduler.keep_lease()
        assert scheduler.tick(SWEEP) is None
    assert sent is not None
    assert [m.message_id for m in queued(client, redis_namespace)] == [sent.message_id]
    events = [line["event"] for line in logs]
    assert events == ["scheduler_leader_acquired", "periodic_task_sent", "scheduler_leader_lost"]


def test_a_leader_stops_at_its_local_deadline_when_renewals_do_not_come_back(
    client: redis.Redis, broker: dramatiq.Broker, redis_namespace: str
) -> None:
    clock = FakeClock()
    lease = RedisLease(client, lock_key(redis_namespace), ttl=30, clock=clock)
    scheduler = PeriodicScheduler(broker, [SWEEP], lease, renew_every=10, retry_every=3)
    assert scheduler.keep_lease()
    clock.now += 29.9
    assert scheduler.tick(SWEEP) is not None
    clock.now += 0.2  # the renewal that was due is stuck: past the TTL, the lock may be someone else's
    assert client.pttl(lock_key(redis_namespace)) > 0  # Redis has not expired it yet (its own clock)
    assert scheduler.tick(SWEEP) is None
    assert len(queued(client, redis_namespace)) == 1


def test_an_unreachable_redis_is_no_leadership(broker: dramatiq.Broker) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    lease = RedisLease(dead, "nowhere:scheduler:leader", ttl=5)
    with capture_logs() as logs:
        assert not lease.keep()
    assert not lease.held
    assert logs[0]["event"] == "scheduler_lock_error"
    lease.release()  # logged, not raised


def test_the_scheduler_sends_each_task_on_its_interval_and_releases_on_stop(
    client: redis.Redis, broker: dramatiq.Broker, redis_namespace: str
) -> None:
    tasks = [SWEEP, PeriodicTask(SweepRentals, every=0.5)]
    scheduler = PeriodicScheduler.with_redis_lease(broker, tasks, client, lock_key(redis_namespace), ttl=3)
    started = time.monotonic()
    scheduler.start()
    time.sleep(1.15)
    scheduler.stop()
    elapsed = time.monotonic() - started
    messages = queued(client, redis_namespace)
    by_actor = {name: [m for m in messages if m.actor_name == name] for name in (SWEEP.name, SweepRentals.actor_name)}
    assert 4 <= len(by_actor[SWEEP.name]) <= int(elapsed / 0.2)
    assert len(by_actor[SweepRentals.actor_name]) == 2
    assert len(messages) == sum(len(sent) for sent in by_actor.values())
    for message in messages:
        assert message.queue_name == MAINTENANCE_QUEUE
        assert message.options["request_id"].startswith("tick-")
        assert SweepOutbox.decode(message.args[0]).sent_at.tzinfo is not None
    assert len({m.options["request_id"] for m in messages}) == len(messages)
    assert client.exists(lock_key(redis_namespace)) == 0


def test_the_schedule_takes_its_intervals_from_settings_and_leaves_out_a_zero() -> None:
    tasks = periodic_tasks(make_settings(SCHEDULER_OUTBOX_SWEEP_INTERVAL="2.5", SCHEDULER_RENTAL_SWEEP_INTERVAL="0"))
    assert [(task.job, task.every) for task in tasks] == [
        (SweepOutbox, 2.5),
        (ExpireVerifications, 30.0),
        (SweepWebhookDeliveries, 60.0),
        (SweepSubscriptions, 300.0),
        (ReconcilePaystack, 86_400.0),
        (SweepStuckTopups, 60.0),
    ]
    defaults = periodic_tasks(make_settings())
    assert [task.name for task in defaults] == [
        "maintenance.sweep_outbox",
        "maintenance.expire_verifications",
        "maintenance.sweep_rentals",
        "webhooks.sweep_due_deliveries",
        "subscriptions.sweep",
        "reconciliation.paystack",
        "billing.sweep_stuck_topups",
    ]
