"""A real `namaskah worker` killed with SIGKILL in the middle of a job, or of a webhook delivery: it runs again after a
restart (Redis requeues the unacked messages of a worker whose heartbeat stopped). And the worker's own Prometheus
port."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from namaskah.domain.maintenance.jobs import SlowPing
from namaskah.domain.maintenance.schemas import PingRequested
from namaskah.lib.outbox.jobs import Job
from namaskah.lib.queue import build_broker
from namaskah.settings import load_settings
from tests.e2e.test_dev_walkthrough import PASSWORD, sign_in
from tests.support.databases import query_value, run_cli
from tests.support.partners import RECEIVER_SETTINGS, grant, partner
from tests.support.processes import Process, free_port, start_server, start_worker, wait_until
from tests.support.webhook_receiver import receiving

PING = (("actor_name", PingRequested.actor_name), ("queue_name", "default"))  # the ping's labels, sorted


@pytest.fixture
def broker(service_env: dict[str, str]) -> Iterator[dramatiq.Broker]:
    """A producer on the workers' namespace, as an API process would be."""
    producer = build_broker(load_settings(service_env, env_file=None))
    yield producer
    producer.close()


def send(broker: dramatiq.Broker, job: Job, request_id: str) -> dramatiq.Message[object]:
    message: dramatiq.Message[object] = dramatiq.Message(
        queue_name=job.queue_name,
        actor_name=job.actor_name,
        args=(job.to_payload(),),
        kwargs={},
        options={"request_id": request_id},
    )
    return broker.enqueue(message)


def lines(process: Process, event: str) -> list[dict]:
    return [line for line in process.json_lines() if line.get("event") == event]


# A dead worker's jobs go back to their queue once its heartbeat is 2 s old; the clean-up that does it runs with
# every broker command here (1 in 1000 by default).
QUICK_REQUEUE = {
    "DRAMATIQ_HEARTBEAT_TIMEOUT": "2",
    "DRAMATIQ_MAINTENANCE_CHANCE": "1000000",
    "WORKER_METRICS_PORT": "0",
}


def test_a_job_cut_off_by_kill_9_runs_after_the_restart(
    service_env: dict[str, str], isolated_database: str, broker: dramatiq.Broker, log_dir: Path
) -> None:
    env = {**service_env, **QUICK_REQUEUE}
    token, request_id = f"slow-{uuid.uuid4().hex[:12]}", f"req-{uuid.uuid4().hex[:12]}"
    recorded = f"SELECT count(*) FROM pings WHERE token = '{token}'"

    first = start_worker(env, log_dir)
    try:
        send(broker, SlowPing(token=token, seconds=1.5), request_id)
        wait_until(lambda: lines(first, "slow_ping_started"), 20, "the job to start", first)
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait(5)
    finally:
        first.stop()
    assert query_value(isolated_database, recorded) == 0  # killed before it finished

    second = start_worker(env, log_dir)
    try:
        wait_until(lambda: query_value(isolated_database, recorded) == 1, 30, "the job to run again", second)
    finally:
        second.stop()
    [started] = lines(second, "slow_ping_started")
    [done] = lines(second, "ping_recorded")
    # The request id travels with the redelivered job too.
    assert started["request_id"] == done["request_id"] == request_id
    assert done["job"] == SlowPing.actor_name
    stored = f"SELECT request_id FROM pings WHERE token = '{token}'"
    assert query_value(isolated_database, stored) == request_id


def test_a_delivery_cut_off_by_kill_9_is_sent_after_the_restart(service_env: dict[str, str], log_dir: Path) -> None:
    """The worker dies while the partner's server holds the request: once the attempt's lease ends (timeout 2 s +
    margin) the requeued job sends it again with the same webhook-id, and the history shows both attempts."""
    env = {**service_env, **QUICK_REQUEUE, **RECEIVER_SETTINGS, "WEBHOOK_TIMEOUT": "2"}
    admin = run_cli("users", "create-admin", "--email", "ops@example.com", "--password", PASSWORD, env=env)
    assert admin.returncode == 0, admin.stderr
    server, first = start_server(env, log_dir), start_worker(env, log_dir)
    second: Process | None = None
    try:
        with receiving() as receiver, server.client() as client:
            operator = sign_in(client, "ops@example.com")
            them = partner(client, operator, receiver, ["wallet.credited"])
            receiver.delay = 1.5  # the first attempt is in flight for that long
            grant(client, operator, them.id, 500)
            wait_until(lambda: receiver.requests, 30, "the first attempt to reach the receiver", first)
            first.popen.send_signal(signal.SIGKILL)
            first.popen.wait(5)
            receiver.delay = 0
            assert [d["status"] for d in them.deliveries(client)] == ["pending"]

            second = start_worker(env, log_dir)
            wait_until(lambda: len(receiver.requests) == 2, 60, "the delivery after the restart", second)
            [delivery] = wait_until(
                lambda: [d for d in them.deliveries(client) if d["status"] == "succeeded"], 10, "its record", second
            )
            assert them.verified(receiver, 1)["type"] == "wallet.credited"
            assert them.verified(receiver, 1)["data"]["amount"] == 500
            ids = {request.headers["webhook-id"] for request in receiver.requests}
            assert ids == {delivery["webhook_id"]}  # the partner can tell it is the same message
            history = [(a["number"], a["status_code"], a["succeeded"]) for a in delivery["attempts"]]
            assert history == [(1, None, False), (2, 200, True)]
            assert delivery["attempts"][0]["error"].startswith("interrupted")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        server.process.stop()


def test_the_worker_serves_dramatiq_metrics_on_its_own_port(
    service_env: dict[str, str], isolated_database: str, broker: dramatiq.Broker, log_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**service_env, "WORKER_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    token = f"metrics-{uuid.uuid4().hex[:12]}"
    worker = start_worker(env, log_dir)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert "dramatiq_messages_total{" not in httpx.get(url, timeout=5).text  # nothing processed yet
        send(broker, PingRequested(token=token), "req-metrics")
        recorded = f"SELECT count(*) FROM pings WHERE token = '{token}'"
        wait_until(lambda: query_value(isolated_database, recorded) == 1, 20, "the ping", worker)
        samples = wait_until(lambda: ping_samples(url), 5, "the ping to be counted", worker)
    finally:
        worker.stop()
    assert samples["dramatiq_messages_total", PING] == 1
    assert samples["dramatiq_message_duration_milliseconds_count", PING] == 1
    assert ("dramatiq_message_errors_total", PING) not in samples
    assert lines(worker, "worker_metrics_serving")[0]["port"] == port
    assert (tmp_path / "prom" / f"worker-{port}").is_dir()


def ping_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    text = httpx.get(url, timeout=5).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("actor_name") == PingRequested.actor_name
    }
    return samples if samples.get(("dramatiq_messages_total", PING)) else None
