"""The commands operators run: several API processes share one set of metrics; `namaskah dev` works on its own."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.databases import run_cli
from tests.support.processes import Process, free_port, start_server, wait_until


def total_requests(metrics_text: str, route: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("route") == route
    )


def test_metrics_add_up_across_worker_processes(service_env: dict[str, str], log_dir: Path, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prometheus"
    env = {**service_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    server = start_server(env, log_dir, workers=2)
    try:
        before = httpx.get(server.url + "/metrics", timeout=5).text
        for _ in range(40):
            # A new connection each time, so both processes take requests.
            httpx.get(server.url + "/health/live", timeout=5).raise_for_status()
        text = httpx.get(server.url + "/metrics", timeout=5).text
    finally:
        server.process.stop()
    assert total_requests(text, "/health/live") - total_requests(before, "/health/live") == 40
    assert len({path.name.split("_")[-1] for path in metrics_dir.glob("counter_*.db")}) == 2


def test_dev_command_serves_and_runs_jobs_in_process(log_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {"DATA_DIR": str(tmp_path / "var"), "LOG_FORMAT": "json"}
    dev = Process("dev", [sys.executable, "-m", "namaskah", "dev", "--port", str(port)], env, log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until(lambda: _get(url + "/health/ready"), 60, "namaskah dev to be ready", dev)
        assert ready.json()["checks"] == {"database": "ok"}
        token = f"dev-{uuid.uuid4().hex[:12]}"
        assert httpx.post(url + "/v1/dev/pings", json={"token": token}, timeout=5).status_code == 202
        ping = wait_until(lambda: _get(f"{url}/v1/dev/pings/{token}"), 15, "the in-process worker", dev)
        assert ping.json()["received_at"]
    finally:
        dev.stop()
    assert (tmp_path / "var" / "namaskah.sqlite3").is_file()


def _get(url: str) -> httpx.Response | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response if response.status_code == 200 else None


def test_a_worker_of_its_own_for_the_latency_sensitive_queues(service_env: dict[str, str], log_dir: Path) -> None:
    """`--queues` picks what a worker consumes (a ping, on `default`, waits for another worker); an unknown name
    is refused before it starts."""
    unknown = run_cli("worker", "--queues", "webhooks,nope", env=service_env)
    assert unknown.returncode == 2
    assert "no such queue: nope" in unknown.stderr

    command = [sys.executable, "-m", "namaskah", "worker", "--queues", "provider_events, webhooks"]
    worker = Process("worker", command, {**service_env, "WORKER_IDLE_POLL": "20"}, log_dir)
    try:
        started = wait_until(
            lambda: [line for line in worker.json_lines() if line.get("event") == "worker_started"], 60, "it", worker
        )
    finally:
        worker.stop()
    assert started[0]["queues"] == ["provider_events", "webhooks"]
