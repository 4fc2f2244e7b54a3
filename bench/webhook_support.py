"""What webhook_latency.py and webhook_throughput.py share: the processes they start (receiver, API, workers) with
their logs in the temp dir, the environment those get, a process's CPU time, and the Redis keys they clean up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
from redis.exceptions import RedisError

import harness
from me_api_key import Backing

BENCH_DIR = harness.BENCH_DIR
# The receivers are plain http on loopback: these two settings allow it (production refuses both).
RECEIVER_SETTINGS = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE_HOSTS": "true"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    """A process of the bench, its stdout and stderr in files of the temp dir (the receiver's stdout is a pipe)."""

    name: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def json_lines(self) -> list[dict[str, Any]]:
        lines = []
        text = self.stdout_path.read_text(encoding="utf-8", errors="replace") if self.stdout_path.exists() else ""
        for line in text.splitlines():
            try:
                decoded = json.loads(line)
            except ValueError:
                continue
            if isinstance(decoded, dict):
                lines.append(decoded)
        return lines

    def fail(self, reason: str) -> SystemExit:
        print(f"error: {self.name} {reason}", file=sys.stderr)
        print(f"--- {self.stderr_path.name} ---\n{harness.tail(self.stderr_path)}", file=sys.stderr)
        print(f"--- {self.stdout_path.name} ---\n{harness.tail(self.stdout_path)}", file=sys.stderr)
        return SystemExit(1)

    def as_server(self, port: int, ready_path: str) -> harness.Server:
        """The harness's view of it, for `harness.wait_ready`."""
        target = harness.Target(self.name, (), ready_path=ready_path)
        return harness.Server(target, port, self.process, self.stdout_path, self.stderr_path)


def start(name: str, command: list[str], env: dict[str, str], workdir: Path, *, pipe: bool = False) -> Proc:
    """Run `command` from the temp dir (no `.env` of the checkout is read); stdout piped when `pipe`."""
    stdout_path, stderr_path = workdir / f"{name}.stdout.log", workdir / f"{name}.stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else out,
            stderr=err,
        )
    return Proc(name, process, stdout_path, stderr_path)


def stop(proc: Proc | None, timeout: float = 30) -> None:
    if proc is None or proc.process.poll() is not None:
        return
    proc.process.terminate()
    try:
        proc.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.process.kill()
        proc.process.wait()


def wait_for_event(proc: Proc, event: str, timeout: float = 60) -> None:
    """Until the process logged the JSON line `{"event": event, ...}`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise proc.fail(f"exited with code {proc.process.returncode} before logging {event}")
        if any(line.get("event") == event for line in proc.json_lines()):
            return
        time.sleep(0.1)
    raise proc.fail(f"did not log {event} within {timeout:.0f}s")


def start_receiver(workdir: Path, *, record: bool) -> tuple[Proc, int, IO[bytes]]:
    """fast_receiver.py in its own process: the process, its port and its stdout (arrival lines when `record`)."""
    command = [sys.executable, str(BENCH_DIR / "fast_receiver.py"), *(["--record"] if record else [])]
    proc = start("receiver", command, {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, workdir, pipe=True)
    assert proc.process.stdout is not None
    first = proc.process.stdout.readline().decode().split()
    if len(first) != 2 or first[0] != "port":
        stop(proc)
        raise proc.fail(f"did not print its port (got {first!r})")
    return proc, int(first[1]), proc.process.stdout


def service_env(backing: Backing, workdir: Path, **extra: str) -> dict[str, str]:
    """Our processes' environment: the caller's without anything that would change them, production code paths
    (APP_ENV=test) on the throwaway database and Redis namespace, JSON logs, the receivers allowed."""
    env = {k: v for k, v in os.environ.items() if k not in harness.CLEARED_ENV}
    return {
        **env,
        **backing.our_env(),
        **RECEIVER_SETTINGS,
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATA_DIR": str(workdir),
        "WORKER_METRICS_PORT": str(harness.free_port()),
        **extra,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def delete_namespaces(redis_url: str, *namespaces: str) -> None:
    """Every key of each Dramatiq namespace (and the namespace's own key), also after a failed run."""
    client = redis.Redis.from_url(redis_url)
    try:
        for namespace in namespaces:
            keys = [namespace, *client.scan_iter(match=f"{namespace}:*", count=1000)]
            client.delete(*keys)
    except RedisError as exc:
        print(f"warning: could not delete the Redis keys of {namespaces}: {exc}", file=sys.stderr)
    finally:
        client.close()
