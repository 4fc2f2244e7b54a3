"""Real server, worker and Redis processes for end-to-end tests, with their JSON log lines at hand."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.databases import ROOT, clean_environ


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process whose stdout and stderr go to a file we can read while it runs."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{int(time.time() * 1000)}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv, env=clean_environ(env), cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return lines

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def assert_running(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, process: Process | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            process.assert_running()
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    detail = f"\n{process.name} log:\n{process.output()[-4000:]}" if process else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


# A loaded CI machine can take half a minute just to import the service; a crash is seen at once either way.
STARTUP_TIMEOUT = 60.0


def _started(process: Process, predicate: Callable[[], Any], what: str) -> None:
    """Wait for a child to come up; one that does not is stopped, not left running after the failed test."""
    try:
        wait_until(predicate, STARTUP_TIMEOUT, what, process)
    except BaseException:
        process.stop()
        raise


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(env: dict[str, str], log_dir: Path, *, argv: list[str] | None = None, workers: int = 1) -> Server:
    port = free_port()
    command = argv or [sys.executable, "-m", "namaskah", "run", "--port", str(port), "--workers", str(workers)]
    if argv:
        command = [*argv, "--port", str(port)]
    server = Server(Process("server", command, env, log_dir), f"http://127.0.0.1:{port}")
    _started(server.process, lambda: _answers(server.url + "/health/live"), "the server to answer")
    return server


class Server:
    def __init__(self, process: Process, url: str) -> None:
        self.process = process
        self.url = url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


def start_worker(env: dict[str, str], log_dir: Path) -> Process:
    worker = Process("worker", [sys.executable, "-m", "namaskah", "worker", "--threads", "2"], env, log_dir)
    _started(worker, lambda: any(line.get("event") == "worker_started" for line in worker.json_lines()), "the worker")
    return worker


def start_redis(port: int, log_dir: Path) -> Process:
    redis_server = Process(
        "redis",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        dict(os.environ),
        log_dir,
    )
    wait_until(lambda: "Ready to accept connections" in redis_server.output(), 15, "redis", redis_server)
    return redis_server
