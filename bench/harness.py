"""What every benchmark here shares: wrk, CPU pinning, uvicorn servers, alternating rounds, medians, results.

A script describes its two apps as `Target`s, calls `run_rounds` and then reports with `summarize`,
`print_medians` and `write_results`. Both apps always run under the same `UVICORN_SETTINGS`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
# Identical for both apps: only the application differs.
UVICORN_SETTINGS = (
    "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
)  # fmt: skip
# Never inherited from the caller's shell: a target sets what it needs in `Target.env`.
CLEARED_ENV = ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "LOG_QUIET_PATHS", "DB_ECHO")
NOISY_SPREAD = 0.2
TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
# The bare app of `bare_app.py`, served next to ours in every script.
BARE_APP_ARGS = ("--app-dir", str(BENCH_DIR), "bare_app:app")
OUR_APP_ARGS = ("--factory", "namaskah.app:create_app")


@dataclass(frozen=True)
class Target:
    name: str
    app_args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # Answers 200 {"status": "ok", ...} once the app can serve the measured route.
    ready_path: str = "/health/live"


@dataclass
class Server:
    target: Target
    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    errors: int  # socket errors plus non-2xx/3xx answers
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int = 0


@dataclass
class Run:
    """What `run_rounds` measured, and with what."""

    wrk: str
    pinned: bool
    servers: list[Server]
    results: dict[str, list[WrkResult]]


# A hook run once every server answers, before the warm-up: returns the headers wrk sends in every request.
Prepare = Callable[[list[Server]], Sequence[str]]


def parse_args(
    description: str | None,
    *,
    target: str,
    connections: int,
    argv: list[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The flags every script takes; `add_arguments` adds a script's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured round (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per app (default 3)")
    parser.add_argument("--connections", type=int, default=connections, help=f"wrk connections (default {connections})")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per app, not measured (default 2)")
    parser.add_argument("--strict", action="store_true", help=f"exit 2 when {target}")
    if add_arguments is not None:
        add_arguments(parser)
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the server logs")
    args = parser.parse_args(argv)
    if min(args.duration, args.rounds, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error("--duration, --rounds, --connections and --threads must be >= 1, --warmup >= 0")
    if args.connections < args.threads:
        parser.error("--connections must be >= --threads (wrk needs one connection per thread)")
    return args


def in_workdir(args: argparse.Namespace, run: Callable[[argparse.Namespace, Path], int]) -> int:
    """`run(args, workdir)` with a fresh temp dir, removed afterwards unless --keep-logs."""
    workdir = Path(tempfile.mkdtemp(prefix="namaskah-bench-"))
    try:
        return run(args, workdir)
    finally:
        if args.keep_logs:
            print(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def ensure_wrk() -> str:
    """wrk's path; installed from Debian when missing and we are root, otherwise a clear exit."""
    found = shutil.which("wrk")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found; installing it with apt-get (Debian package 'wrk')...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
            subprocess.run(install, env=env, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit(
        "error: this benchmark needs the HTTP load generator wrk, which is not installed.\n"
        "  Debian/Ubuntu: sudo apt-get install -y wrk    macOS: brew install wrk\n"
        "  (run this script as root on Debian and it installs wrk itself)"
    )


def cpu_pins() -> tuple[list[str], list[str]]:
    """Command prefixes pinning the server to one CPU and wrk to another, when taskset and 2 CPUs exist."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not shutil.which("taskset") or len(cpus) < 2:
        print("note: no CPU pinning (needs taskset and 2 CPUs); server and wrk share the CPUs", flush=True)
        return [], []
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(target: Target, data_dir: Path) -> dict[str, str]:
    """The parent's environment minus anything that would change either app or uvicorn, plus the target's."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV and not k.startswith("UVICORN_")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", "DATA_DIR": str(data_dir), **target.env}


def start_server(target: Target, workdir: Path, pin: list[str]) -> Server:
    """Run uvicorn from the temp dir (so no `.env` of the checkout is read), logs to files there."""
    port = free_port()
    data_dir = workdir / f"{target.name}-data"
    data_dir.mkdir()
    stdout_path, stderr_path = workdir / f"{target.name}.stdout.log", workdir / f"{target.name}.stderr.log"
    command = [*pin, sys.executable, "-m", "uvicorn", *target.app_args, "--host", HOST, "--port", str(port)]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*command, *UVICORN_SETTINGS],
            cwd=workdir,
            env=server_env(target, data_dir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return Server(target, port, process, stdout_path, stderr_path)


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """(status, decoded JSON body or None) of one request, error statuses included; never via a proxy."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def answers(url: str) -> bool:
    try:
        status, body = http_json("GET", url, timeout=1)
    except OSError:
        return False
    return status == 200 and isinstance(body, dict) and body.get("status") == "ok"


def wait_ready(server: Server) -> None:
    url = server.url(server.target.ready_path)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            fail_with_logs(server, f"exited with code {server.process.returncode} before answering")
        if answers(url):
            return
        time.sleep(0.1)
    fail_with_logs(server, f"did not answer 200 on {url} within {READY_TIMEOUT:.0f}s")


def tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def fail_with_logs(server: Server, reason: str) -> NoReturn:
    print(f"error: server '{server.target.name}' {reason}", file=sys.stderr)
    print(f"--- {server.stderr_path.name} ---\n{tail(server.stderr_path)}", file=sys.stderr)
    print(f"--- {server.stdout_path.name} ---\n{tail(server.stdout_path)}", file=sys.stderr)
    raise SystemExit(1)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def to_ms(value: str, unit: str) -> float:
    return float(value) * TIME_UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx_match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(non_2xx_match[1]) if non_2xx_match else 0
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    percentiles = {
        m[1]: to_ms(m[2], m[3]) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    }
    return WrkResult(
        rps=float(rps[1]),
        requests=int(total[1]),
        errors=errors + non_2xx,
        p50_ms=percentiles.get("50"),
        p99_ms=percentiles.get("99"),
        non_2xx=non_2xx,
    )


def run_wrk(
    wrk: str, pin: list[str], url: str, seconds: int, args: argparse.Namespace, headers: Sequence[str] = ()
) -> WrkResult:
    header_args = [arg for header in headers for arg in ("-H", header)]
    command = [*pin, wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency", *header_args]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        sys.exit(f"error: wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def describe(name: str, result: WrkResult) -> str:
    p50 = f"{result.p50_ms:.2f}" if result.p50_ms is not None else "?"
    p99 = f"{result.p99_ms:.2f}" if result.p99_ms is not None else "?"
    errors = f"  ERRORS {result.errors}" if result.errors else ""
    return f"{name:<5} {result.rps:>9.0f} rps   p50 {p50:>6} ms   p99 {p99:>6} ms{errors}"


def measure(
    wrk: str,
    pin: list[str],
    servers: list[Server],
    path: str,
    args: argparse.Namespace,
    headers: Sequence[str] = (),
) -> dict[str, list[WrkResult]]:
    """Warm each app up, then alternate them round by round (ABBA order, so drift hits both alike)."""
    for server in servers:
        if args.warmup:
            run_wrk(wrk, pin, server.url(path), args.warmup, args, headers)
    results: dict[str, list[WrkResult]] = {server.target.name: [] for server in servers}
    for index in range(args.rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            result = run_wrk(wrk, pin, server.url(path), args.duration, args, headers)
            results[server.target.name].append(result)
            print(f"round {index + 1}/{args.rounds}  {describe(server.target.name, result)}", flush=True)
    return results


def run_rounds(
    wrk: str,
    targets: list[Target],
    args: argparse.Namespace,
    workdir: Path,
    path: str,
    prepare: Prepare | None = None,
) -> Run:
    """Start every target, wait until each answers, run `prepare`, measure `path` on each; always stop them."""
    server_pin, wrk_pin = cpu_pins()
    servers: list[Server] = []
    try:
        for target in targets:
            servers.append(start_server(target, workdir, server_pin))
        for server in servers:
            wait_ready(server)
        headers = prepare(servers) if prepare is not None else ()
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds, {path}")
        results = measure(wrk, wrk_pin, servers, path, args, headers)
    finally:
        for server in servers:
            stop_server(server)
    return Run(wrk=wrk, pinned=bool(server_pin), servers=servers, results=results)


def median_of(results: list[WrkResult], attribute: str) -> float | None:
    values = [getattr(r, attribute) for r in results if getattr(r, attribute) is not None]
    return statistics.median(values) if values else None


def spread(results: list[WrkResult]) -> float:
    """(max - min) / median of the rounds' rps: how much the machine's noise moved the figure."""
    values = [r.rps for r in results]
    return round((max(values) - min(values)) / statistics.median(values), 3)


def summarize(results: dict[str, list[WrkResult]], target_ratio: float) -> dict[str, Any]:
    """Medians, spread and errors per app, and ours/bare of the median rps against `target_ratio`."""
    medians = {
        name: {key: median_of(rounds, key) for key in ("rps", "p50_ms", "p99_ms")} for name, rounds in results.items()
    }
    ratio = statistics.median(r.rps for r in results["ours"]) / statistics.median(r.rps for r in results["bare"])
    return {
        "ratio": round(ratio, 3),
        "target_ratio": target_ratio,
        "target_met": ratio >= target_ratio,
        "median": medians,
        "spread": {name: spread(rounds) for name, rounds in results.items()},
        "errors": {name: sum(r.errors for r in rounds) for name, rounds in results.items()},
        "rounds": {name: [asdict(r) for r in rounds] for name, rounds in results.items()},
    }


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


def environment(run: Run, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """Versions and settings of a run, for the results file; `extra` adds a script's own."""
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "litestar": metadata.version("litestar"),
        "uvicorn": metadata.version("uvicorn"),
        "wrk": wrk_version(run.wrk),
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "pinned": run.pinned,
        "uvicorn_settings": list(UVICORN_SETTINGS),
        **extra,
        "wrk_args": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration},
        "rounds": args.rounds,
        "warmup_s": args.warmup,
    }


def write_results(name: str, report: dict[str, Any]) -> Path:
    """`bench/results/<name>-<UTC time>.json`."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def relative(path: Path) -> Path:
    return path.relative_to(BENCH_DIR.parent)


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def print_medians(summary: dict[str, Any]) -> None:
    """The median of each app, then a warning for any app whose rps moved too much across rounds."""
    print(f"\nmedians over {len(summary['rounds']['ours'])} rounds:")
    for name, median in summary["median"].items():
        result = WrkResult(median["rps"], 0, summary["errors"][name], median["p50_ms"], median["p99_ms"])
        print(f"  {describe(name, result)}")
    for name, moved in summary["spread"].items():
        if moved > NOISY_SPREAD:
            print(f"warning: {name} varied {moved:.0%} across rounds; is something else loading the machine?")
