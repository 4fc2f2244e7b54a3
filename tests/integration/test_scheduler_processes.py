"""`namaskah scheduler` as real processes: of two, exactly one sends; kill -9 the leader and the other takes over
once its lock expires; the ticks reach a real worker, which sweeps; `namaskah dev` runs the scheduler in process."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
from sqlalchemy.ext.asyncio import create_async_engine

from namaskah.db.engine import create_session_factory
from namaskah.domain.maintenance.schemas import PingRequested
from namaskah.lib.logging import bind_context, clear_context
from namaskah.lib.outbox.service import OutboxService
from namaskah.lib.scheduler import MAINTENANCE_QUEUE, lock_key
from tests.support.databases import REDIS_URL, query_value, settings_env
from tests.support.processes import Process, free_port, start_worker, wait_until

TTL = 2.0  # the lock: renewed every TTL/3, tried for every TTL/10 by a follower
SCHEDULER = [sys.executable, "-m", "namaskah", "scheduler"]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    connection.close()


def events(process: Process, event: str) -> list[dict]:
    return [line for line in process.json_lines() if line.get("event") == event]


def sent_ids(process: Process) -> list[str]:
    return [line["message_id"] for line in events(process, "periodic_task_sent")]


def test_of_two_schedulers_one_sends_and_the_other_takes_over_after_kill_9(
    redis_namespace: str, log_dir: Path, client: redis.Redis
) -> None:
    env = settings_env(
        REDIS_URL=REDIS_URL,
        DRAMATIQ_NAMESPACE=redis_namespace,
        SCHEDULER_LOCK_TTL=str(TTL),
        SCHEDULER_OUTBOX_SWEEP_INTERVAL="0.2",
        SCHEDULER_VERIFICATION_EXPIRY_INTERVAL="0",
        SCHEDULER_RENTAL_SWEEP_INTERVAL="0",
    )
    first, second = Process("scheduler-1", SCHEDULER, env, log_dir), Process("scheduler-2", SCHEDULER, env, log_dir)
    try:
        for process in (first, second):
            wait_until(lambda p=process: events(p, "scheduler_started"), 60, "the scheduler to start", process)
        leader, follower = (first, second) if events(first, "scheduler_leader_acquired") else (second, first)
        wait_until(lambda: len(sent_ids(leader)) >= 8, 10, "the leader to send", leader)
        # The follower only waits: the queue holds what the leader logged (it logs each message once it is sent).
        logged, in_queue = set(sent_ids(leader)), set(queued_ids(client, redis_namespace))
        assert logged <= in_queue <= set(sent_ids(leader))
        assert not events(follower, "scheduler_leader_acquired")
        assert sent_ids(follower) == []

        leader.popen.send_signal(signal.SIGKILL)
        leader.popen.wait(5)
        killed_at = time.monotonic()
        wait_until(lambda: events(follower, "scheduler_leader_acquired"), TTL + 5, "the takeover", follower)
        took = time.monotonic() - killed_at
        # Not before the dead leader's lock could expire (last renewed at most TTL/3 before the kill), and soon after.
        assert TTL - TTL / 3 - 0.2 <= took <= TTL + TTL / 10 + 1.0, took
        wait_until(lambda: len(sent_ids(follower)) >= 3, 5, "the new leader to send", follower)
        follower.stop()  # SIGTERM: it lets go of the lock on its way out
        assert follower.popen.returncode == 0, follower.output()[-2000:]

        # One sender at a time: the queue holds exactly what the two logged, the second after the first.
        before, after = sent_ids(leader), sent_ids(follower)
        assert sorted(queued_ids(client, redis_namespace)) == sorted(before + after)
        last_old = max(line["timestamp"] for line in events(leader, "periodic_task_sent"))
        assert min(line["timestamp"] for line in events(follower, "periodic_task_sent")) > last_old
        assert events(follower, "scheduler_stopped")
        assert client.exists(lock_key(redis_namespace)) == 0
    finally:
        first.stop()
        second.stop()


def queued_ids(client: redis.Redis, namespace: str) -> list[str]:
    messages = client.hvals(f"{namespace}:{MAINTENANCE_QUEUE}.msgs")
    return [dramatiq.Message.decode(data).message_id for data in messages]


def test_scheduled_sweeps_run_on_a_real_worker(isolated_database: str, redis_namespace: str, log_dir: Path) -> None:
    env = settings_env(
        DATABASE_URL=isolated_database,
        REDIS_URL=REDIS_URL,
        DRAMATIQ_NAMESPACE=redis_namespace,
        OUTBOX_SWEEP_AFTER="0",
        SCHEDULER_OUTBOX_SWEEP_INTERVAL="0.3",
        SCHEDULER_VERIFICATION_EXPIRY_INTERVAL="0.3",
        SCHEDULER_RENTAL_SWEEP_INTERVAL="0.3",
        WORKER_METRICS_PORT="0",
    )
    # A job committed by a process that died before publishing it; no API process sweeps (settings_env).
    token = f"swept-{uuid.uuid4().hex[:12]}"
    request_id = f"lost-request-{uuid.uuid4().hex[:8]}"
    asyncio.run(leave_unpublished(isolated_database, PingRequested(token=token), request_id))

    scheduler = Process("scheduler", SCHEDULER, env, log_dir)  # starts while the worker does
    try:
        worker = start_worker(env, log_dir)
        try:
            ping = f"SELECT count(*) FROM pings WHERE token = '{token}'"
            wait_until(lambda: query_value(isolated_database, ping) == 1, 60, "the swept ping", worker)
            tasks = {"maintenance.sweep_outbox", "maintenance.expire_verifications", "maintenance.sweep_rentals"}
            wait_until(lambda: tasks <= {line["task"] for line in events(worker, "periodic_task_done")}, 10, "each")
        finally:
            worker.stop()
    finally:
        scheduler.stop()
    sent = {line["request_id"]: line["task"] for line in events(scheduler, "periodic_task_sent")}
    for line in events(worker, "periodic_task_done"):
        assert sent[line["request_id"]] == line["task"] == line["job"]  # each tick's lines carry its request id
    [swept] = events(worker, "outbox_swept")
    [recorded] = events(worker, "ping_recorded")
    assert sent[swept["request_id"]] == "maintenance.sweep_outbox"
    # The swept job keeps the id of the request that asked for it, not the sweeper's.
    assert recorded["request_id"] == request_id
    assert query_value(isolated_database, f"SELECT request_id FROM pings WHERE token = '{token}'") == request_id


async def leave_unpublished(database: str, job: PingRequested, request_id: str) -> None:
    bind_context(request_id=request_id)
    engine = create_async_engine(database)
    async with create_session_factory(engine)() as session:
        await OutboxService(session=session).request(job)
        await session.commit()
    await engine.dispose()
    clear_context()


def test_dev_mode_runs_the_scheduler_in_process(log_dir: Path, tmp_path: Path) -> None:
    env = {
        "DATA_DIR": str(tmp_path / "var"),
        "LOG_FORMAT": "json",
        "OUTBOX_SWEEP_INTERVAL": "0",  # only the scheduled sweep runs
        "SCHEDULER_OUTBOX_SWEEP_INTERVAL": "0.3",
    }
    dev = Process("dev", [sys.executable, "-m", "namaskah", "dev", "--port", str(free_port())], env, log_dir)
    try:
        done = wait_until(lambda: events(dev, "periodic_task_done"), 90, "a scheduled sweep in namaskah dev", dev)
    finally:
        dev.stop()
    assert done[0]["task"] == "maintenance.sweep_outbox"
    assert done[0]["request_id"].startswith("tick-")
