"""Acknowledgements per second of our POST /v1/webhooks/paystack (source check, HMAC-SHA512 of the raw body in
constant time, the event stored once with its job in the outbox, committed on PostgreSQL, published to Redis)
against a bare Litestar app that reads the body and answers the same shape, via wrk with a Lua script."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import msgspec

import harness
from me_api_key import ADMIN_DSN, REDIS_URL, Backing, create_database, delete_redis_keys, drop_database, migrate
from namaskah.domain.billing.events import SIGNATURE_HEADER, sign
from namaskah.domain.billing.models import SandboxTransaction
from namaskah.domain.billing.sandbox_api import verify_data

ROUTE = "/v1/webhooks/paystack"
SECRET = "sk_test_bench_0123456789abcdef"  # not the sandbox's key: the receiver is the production one
TARGET_RATIO = 0.30
# wrk sends the events in this order, one per request, each run starting where the app's previous run stopped; past
# the end it starts again (redeliveries, which store nothing: the report says how many requests were fresh).
LUA = """
local events, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local space = line:find(" ", 1, true)
    events[#events + 1] = {line:sub(1, space - 1), line:sub(space + 1)}
  end
  i = tonumber(args[2]) % #events
end
function request()
  i = i % #events + 1
  local event = events[i]
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["HEADER"] = event[1]}, event[2])
end
""".replace("HEADER", SIGNATURE_HEADER)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--postgres", default=ADMIN_DSN, help=f"DSN allowed to create databases (default {ADMIN_DSN})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis our app publishes to (default {REDIS_URL})")
    parser.add_argument("--events", type=int, default=80_000, help="distinct signed events to send (default 80000)")


def charge_success(number: int) -> bytes:
    """A charge.success as Paystack sends it (about 1.3 KB), each with its own transaction id and reference."""
    tx = SandboxTransaction(
        paystack_id=4_000_000_000 + number,
        reference=f"tu-bench{number:024x}",
        access_code=f"{number:016x}",
        amount=500_000,
        currency="NGN",
        email="bench@example.com",
        metadata_={"user_id": "0190f3b2-7c4e-7a51-9d2f-3c8e5b1a6d40"},
        status="success",
        created_at=datetime.now(UTC),
        paid_at=datetime.now(UTC),
    )
    return msgspec.json.encode({"event": "charge.success", "data": verify_data(tx)})


def write_events(workdir: Path, count: int) -> tuple[Path, Path, int]:
    events = workdir / "events.txt"
    size = 0
    with events.open("wb") as out:
        for number in range(count):
            body = charge_success(number)
            size += len(body)
            out.write(sign(body, SECRET).encode() + b" " + body + b"\n")
    script = workdir / "events.lua"
    script.write_text(LUA, encoding="utf-8")
    return events, script, size // count


class Runner:
    """wrk with the events as bodies; each app's runs carry on through the events where its last run stopped."""

    def __init__(self, wrk: str, pin: list[str], args: argparse.Namespace, events: Path, script: Path) -> None:
        self.wrk, self.pin, self.args, self.events, self.script = wrk, pin, args, events, script
        self.offsets: dict[str, int] = {}

    def run(self, server: harness.Server, seconds: int) -> harness.WrkResult:
        args, name = self.args, server.target.name
        offset = self.offsets.get(name, 0)
        command = [*self.pin, self.wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
        command += ["-s", str(self.script), server.url(ROUTE), "--", str(self.events), str(offset)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        if done.returncode != 0:
            sys.exit(f"error: wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        result = harness.parse_wrk(done.stdout)
        # Requests still in flight when wrk stopped were built too: skip past them as well.
        self.offsets[name] = offset + result.requests + args.connections
        return result


def measure(runner: Runner, servers: list[harness.Server]) -> dict[str, list[harness.WrkResult]]:
    """As harness.measure (warm-up, then ABBA rounds), with the signed events as the request bodies."""
    args = runner.args
    for server in servers:
        if args.warmup:
            runner.run(server, args.warmup)
    results: dict[str, list[harness.WrkResult]] = {server.target.name: [] for server in servers}
    for index in range(args.rounds):
        for server in servers if index % 2 == 0 else servers[::-1]:
            result = runner.run(server, args.duration)
            results[server.target.name].append(result)
            print(f"round {index + 1}/{args.rounds}  {harness.describe(server.target.name, result)}", flush=True)
    return results


def check_once(server: harness.Server) -> None:
    """Both apps answer 200 to a signed event, and ours refuses a bad signature, before anything is measured."""
    body = charge_success(10**9)
    headers = {SIGNATURE_HEADER: sign(body, SECRET), "Content-Type": "application/json"}
    answer = httpx.post(server.url(ROUTE), content=body, headers=headers, timeout=10)
    if answer.status_code != 200:
        harness.fail_with_logs(server, f"answered {answer.status_code} to a signed event: {answer.text}")
    if server.target.name == "ours":
        forged = httpx.post(
            server.url(ROUTE), content=body, headers=headers | {SIGNATURE_HEADER: "0" * 128}, timeout=10
        )
        if forged.status_code != 401:
            harness.fail_with_logs(server, f"answered {forged.status_code} to a bad signature")


async def stored(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        events = await connection.fetchval("SELECT count(*) FROM paystack_events")
        jobs = await connection.fetchval(
            "SELECT count(*) FROM outbox_messages WHERE actor = 'billing.process_paystack_event'"
        )
        published = await connection.fetchval("SELECT count(*) FROM outbox_messages WHERE published_at IS NOT NULL")
        return {"events": events, "jobs": jobs, "published": published}
    finally:
        await connection.close()


def run(args: argparse.Namespace, workdir: Path) -> int:
    wrk = harness.ensure_wrk()
    backing = Backing(admin_dsn=args.postgres, redis_url=args.redis_url, pid=os.getpid())
    # The receiver leaves publishing its jobs to the outbox sweep: run the sweep as production does, so its cost
    # (one transaction and one broker round per batch) is in the figures.
    our_env = backing.our_env() | {"PAYSTACK_SECRET_KEY": SECRET, "OUTBOX_SWEEP_INTERVAL": "5"}
    ours = harness.Target("ours", harness.OUR_APP_ARGS, our_env, ready_path="/health/ready")
    bare = harness.Target("bare", harness.BARE_APP_ARGS)
    print(f"signing {args.events} events...", flush=True)
    events, script, body_size = write_events(workdir, args.events)
    server_pin, wrk_pin = harness.cpu_pins()
    create_database(backing)
    servers: list[harness.Server] = []
    try:
        migrate(ours, workdir)
        servers = [harness.start_server(target, workdir, server_pin) for target in (ours, bare)]
        for server in servers:
            harness.wait_ready(server)
            check_once(server)
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds, POST {ROUTE}")
        results = measure(Runner(wrk, wrk_pin, args, events, script), servers)
        counts = asyncio.run(stored(backing.dsn()))
    finally:
        for server in servers:
            harness.stop_server(server)
        drop_database(backing)
        delete_redis_keys(backing)
    run_info = harness.Run(wrk=wrk, pinned=bool(server_pin), servers=servers, results=results)
    return report(run_info, args, backing, counts, body_size, our_env)


def report(
    measured: harness.Run,
    args: argparse.Namespace,
    backing: Backing,
    counts: dict[str, int],
    body_size: int,
    our_env: dict[str, str],
) -> int:
    summary = harness.summarize(measured.results, TARGET_RATIO)
    ours = summary["median"]["ours"]
    sent = sum(r.requests for r in measured.results["ours"]) + 1  # the rounds (warm-up excluded) and the check
    failed = {
        name: sum(r.errors for r in rounds)
        for name, rounds in measured.results.items()
        if any(r.errors for r in rounds)
    }
    environment = harness.environment(
        measured, args, our_env={k: v for k, v in our_env.items() if k != "PAYSTACK_SECRET_KEY"}
    )
    extra: dict[str, Any] = {"stored": counts, "events_signed": args.events, "body_bytes": body_size, "failed": failed}
    path = harness.write_results("paystack_webhooks", {**summary, **extra, "environment": environment})
    harness.print_medians(summary)
    print(
        f"events stored {counts['events']} (jobs requested {counts['jobs']}, published {counts['published']}); "
        f"distinct signed events {args.events}, body {body_size} bytes; measured requests to ours {sent - 1}"
    )
    print(f"results: {harness.relative(path)}")
    if failed:
        print(f"paystack_webhooks FAILED: errors during the rounds {failed}")
        return 1
    bare = summary["median"]["bare"]
    print(
        f"paystack_webhooks ratio={summary['ratio']:.2f} (ours {ours['rps']:.0f} acks/s / bare {bare['rps']:.0f} rps)"
    )
    return 2 if args.strict and not summary["target_met"] else 0


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_args(
        __doc__, target=f"ratio < {TARGET_RATIO}", connections=32, argv=argv, add_arguments=add_arguments
    )
    return harness.in_workdir(args, run)


if __name__ == "__main__":
    sys.exit(main())
