"""Requests/second of our GET /health/live against a bare Litestar app, same uvicorn settings, via wrk."""

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
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
ROUTE = "/health/live"
TARGET_RATIO = 0.8
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
# Identical for both apps: only the application differs.
UVICORN_SETTINGS = (
    "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
)  # fmt: skip
# Our production logging defaults (one JSON access line per request), dev mode without Redis or Postgres.
OUR_ENV = {"APP_ENV": "development", "OUTBOX_SWEEP_INTERVAL": "0", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
CLEARED_ENV = ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "LOG_QUIET_PATHS", "DB_ECHO")
NOISY_SPREAD = 0.2
TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class Target:
    name: str
    app_args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    target: Target
    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{ROUTE}"


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured round (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per app (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per app, not measured (default 2)")
    parser.add_argument("--strict", action="store_true", help=f"exit 2 when the ratio is below {TARGET_RATIO}")
    parser.add_argument(
        "--log-every-request",
        action="store_true",
        help="set LOG_QUIET_PATHS empty so each probe writes an access line (the worst case)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the server logs")
    args = parser.parse_args(argv)
    if min(args.duration, args.rounds, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error("--duration, --rounds, --connections and --threads must be >= 1, --warmup >= 0")
    if args.connections < args.threads:
        parser.error("--connections must be >= --threads (wrk needs one connection per thread)")
    return args


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


def answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=1) as response:
            body: dict[str, Any] = json.loads(response.read())
            return response.status == 200 and body.get("status") == "ok"
    except (OSError, ValueError):
        return False


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            fail_with_logs(server, f"exited with code {server.process.returncode} before answering")
        if answers(server.url):
            return
        time.sleep(0.1)
    fail_with_logs(server, f"did not answer 200 on {server.url} within {READY_TIMEOUT:.0f}s")


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
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    percentiles = {
        m[1]: to_ms(m[2], m[3]) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    }
    return WrkResult(
        rps=float(rps[1]),
        requests=int(total[1]),
        errors=errors + (int(non_2xx[1]) if non_2xx else 0),
        p50_ms=percentiles.get("50"),
        p99_ms=percentiles.get("99"),
    )


def run_wrk(wrk: str, pin: list[str], url: str, seconds: int, args: argparse.Namespace) -> WrkResult:
    command = [*pin, wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        sys.exit(f"error: wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def describe(name: str, result: WrkResult) -> str:
    p50 = f"{result.p50_ms:.2f}" if result.p50_ms is not None else "?"
    p99 = f"{result.p99_ms:.2f}" if result.p99_ms is not None else "?"
    errors = f"  ERRORS {result.errors}" if result.errors else ""
    return f"{name:<5} {result.rps:>9.0f} rps   p50 {p50:>6} ms   p99 {p99:>6} ms{errors}"


def measure(wrk: str, pin: list[str], servers: list[Server], args: argparse.Namespace) -> dict[str, list[WrkResult]]:
    """Warm each app up, then alternate them round by round (ABBA order, so drift hits both alike)."""
    for server in servers:
        if args.warmup:
            run_wrk(wrk, pin, server.url, args.warmup, args)
    results: dict[str, list[WrkResult]] = {server.target.name: [] for server in servers}
    for index in range(args.rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            result = run_wrk(wrk, pin, server.url, args.duration, args)
            results[server.target.name].append(result)
            print(f"round {index + 1}/{args.rounds}  {describe(server.target.name, result)}", flush=True)
    return results


def median_of(results: list[WrkResult], attribute: str) -> float | None:
    values = [getattr(r, attribute) for r in results if getattr(r, attribute) is not None]
    return statistics.median(values) if values else None


def spread(results: list[WrkResult]) -> float:
    """(max - min) / median of the rounds' rps: how much the machine's noise moved the figure."""
    values = [r.rps for r in results]
    return round((max(values) - min(values)) / statistics.median(values), 3)


def summarize(results: dict[str, list[WrkResult]]) -> dict[str, Any]:
    medians = {
        name: {key: median_of(rounds, key) for key in ("rps", "p50_ms", "p99_ms")} for name, rounds in results.items()
    }
    ratio = statistics.median(r.rps for r in results["ours"]) / statistics.median(r.rps for r in results["bare"])
    return {
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "median": medians,
        "spread": {name: spread(rounds) for name, rounds in results.items()},
        "errors": {name: sum(r.errors for r in rounds) for name, rounds in results.items()},
        "rounds": {name: [asdict(r) for r in rounds] for name, rounds in results.items()},
    }


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


def environment(wrk: str, pinned: bool, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "litestar": metadata.version("litestar"),
        "uvicorn": metadata.version("uvicorn"),
        "wrk": wrk_version(wrk),
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "pinned": pinned,
        "uvicorn_settings": list(UVICORN_SETTINGS),
        "our_env": OUR_ENV,
        "log_every_request": args.log_every_request,
        "wrk_args": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration},
        "rounds": args.rounds,
        "warmup_s": args.warmup,
    }


def write_results(report: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"health_live-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def print_summary(summary: dict[str, Any], access_lines: int, results_path: Path) -> None:
    ours, bare = summary["median"]["ours"], summary["median"]["bare"]
    print(f"\nmedians over {len(summary['rounds']['ours'])} rounds:")
    for name, median in (("ours", ours), ("bare", bare)):
        result = WrkResult(median["rps"], 0, summary["errors"][name], median["p50_ms"], median["p99_ms"])
        print(f"  {describe(name, result)}")
    for name, spread in summary["spread"].items():
        if spread > NOISY_SPREAD:
            print(f"warning: {name} varied {spread:.0%} across rounds; is something else loading the machine?")
    verdict = "met" if summary["target_met"] else "NOT met"
    print(f"target ratio >= {TARGET_RATIO}: {verdict};  our access log lines written: {access_lines}")
    print(f"results: {results_path.relative_to(BENCH_DIR.parent)}")
    print(f"health_live ratio={summary['ratio']:.2f} (ours {ours['rps']:.0f} rps / bare {bare['rps']:.0f} rps)")


def targets(args: argparse.Namespace) -> list[Target]:
    env = {**OUR_ENV, "LOG_QUIET_PATHS": ""} if args.log_every_request else OUR_ENV
    ours = Target("ours", ("--factory", "namaskah.app:create_app"), env)
    bare = Target("bare", ("--app-dir", str(BENCH_DIR), "bare_app:app"))
    return [ours, bare]


def run(args: argparse.Namespace, workdir: Path) -> int:
    wrk = ensure_wrk()
    server_pin, wrk_pin = cpu_pins()
    servers: list[Server] = []
    try:
        for target in targets(args):
            servers.append(start_server(target, workdir, server_pin))
        for server in servers:
            wait_ready(server)
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds, {ROUTE}")
        results = measure(wrk, wrk_pin, servers, args)
    finally:
        for server in servers:
            stop_server(server)
    summary = summarize(results)
    access_lines = count_lines(servers[0].stdout_path)
    report = {
        **summary,
        "our_log_lines": access_lines,
        "environment": environment(wrk, bool(server_pin), args),
    }
    print_summary(summary, access_lines, write_results(report))
    return 2 if args.strict and not summary["target_met"] else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="namaskah-bench-"))
    try:
        return run(args, workdir)
    finally:
        if args.keep_logs:
            print(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
