"""Milliseconds from a provider's event to the partner receiving our webhook, at a steady rate of signed TextVerified
pushes: `namaskah run` stores each `v2.sms.received` for a rented number, `namaskah worker` turns it into a rental
message and a `rental.message` event, and delivers that to the partner's endpoint (fast_receiver.py).

Open loop: push n is sent at start + n / rate over a few keep-alive connections, whatever the answers do; t0 is
taken just before its bytes are written, t1 when the receiver has read the webhook whose body carries `#seq:<n>#`.
The baseline sends the same pushes at the same rate to bare_app.py's route of the same path, which enqueues each
body for bare_queue.py's actor (its own Redis namespace and worker process) that POSTs it to the receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg  # type: ignore[import-untyped]
import httpx

import harness
import webhook_support as support
from me_api_key import ADMIN_DSN, PASSWORD, REDIS_URL, Backing, create_database, drop_database, migrate
from namaskah.settings import load_settings
from purchases import namaskah_cli

TARGET_P50_MS, TARGET_P99_MS = 30.0, 150.0
PATH = "/v1/providers/textverified/events"
SECRET = "whsec_bench_push_secret_0123456789abcdef"
SIDES = ("ours", "bare")
RENTAL = {"service": "whatsapp", "days": 7}
CREDITS = 100_000_000  # minor units: far more than one rental costs
OPERATOR = "ops@example.com"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="pushes per second (default 200)")
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per round and side (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds sent first and not measured (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per side, ABBA order (default 1)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the sender (default 8)")
    parser.add_argument("--drain", type=float, default=60, help="seconds to wait for the last webhooks (default 60)")
    parser.add_argument("--threads", type=int, default=None, help="threads of both workers (default WORKER_THREADS)")
    parser.add_argument("--postgres", default=ADMIN_DSN, help=f"DSN allowed to create databases (default {ADMIN_DSN})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis of both brokers (default {REDIS_URL})")
    parser.add_argument(
        "--strict", action="store_true", help=f"exit 2 unless p50 < {TARGET_P50_MS:g} ms and p99 < {TARGET_P99_MS:g} ms"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the process logs")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.connections < 1:
        parser.error("--rate, --duration, --rounds and --connections must be positive, --warmup >= 0")
    return args


# --- the pushes, signed as TextVerified's document says (HMAC-SHA512 of the raw body, Base64, prefixed) ------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def signature(body: bytes) -> str:
    return "HMAC-SHA512=" + base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha512).digest()).decode()


def push(seq: int, reservation_id: str, to: str) -> bytes:
    """One `v2.sms.received` for the rental's reservation, its own event id, the sequence number in the text."""
    now, event_id, code = iso(datetime.now(UTC)), f"evt_bench_{os.getpid()}_{seq}", f"{seq % 1_000_000:06d}"
    data = {
        "from": "22000",
        "to": to,
        "createdAt": now,
        "smsContent": f"Your code is {code} #seq:{seq}#",
        "parsedCode": code,
        "encrypted": False,
        "reservationId": reservation_id,
    }
    payload = {
        "attempt": 1,
        "occurredAt": now,
        "data": data,
        "event": "v2.sms.received",
        "id": event_id,
        "idempotencyKey": f"idem_{event_id}",
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nhost: {harness.HOST}:{port}\r\ncontent-type: application/json\r\n"
        f"x-webhook-signature: {signature(body)}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --- the receiver's arrivals, read from its stdout by a thread -----------------------------------------------------


class Arrivals(threading.Thread):
    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.seen: dict[tuple[str, int], int] = {}
        self.duplicates = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        for line in self.stream:
            path, seq, received = line.decode().split()
            with self.lock:
                if (path, int(seq)) in self.seen:
                    self.duplicates += 1
                else:
                    self.seen[path, int(seq)] = int(received)

    def of(self, path: str, seqs: list[int]) -> dict[int, int]:
        with self.lock:
            return {seq: self.seen[path, seq] for seq in seqs if (path, seq) in self.seen}

    def wait(self, path: str, seqs: list[int], timeout: float) -> dict[int, int]:
        deadline = time.monotonic() + timeout
        while len(found := self.of(path, seqs)) < len(seqs) and time.monotonic() < deadline:
            time.sleep(0.05)
        return found


# --- the open-loop sender ------------------------------------------------------------------------------------------


@dataclass
class Sent:
    t0: dict[int, int] = field(default_factory=dict)  # seq -> monotonic ns just before the write
    lag_ms: list[float] = field(default_factory=list)  # how late each send was against its schedule
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


async def send_all(port: int, pushes: list[tuple[int, bytes]], rate: float, connections: int) -> Sent:
    sent = Sent()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(harness.HOST, port))

    async def one(seq: int, raw: bytes, due: float) -> None:
        reader, writer = await idle.get()  # waits only when every connection is busy: that shows as lag
        sent.t0[seq] = time.monotonic_ns()
        sent.lag_ms.append((time.monotonic() - due) * 1000)
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            status = int(head.split(b" ", 2)[1])
            sent.statuses[status] = sent.statuses.get(status, 0) + 1
            idle.put_nowait((reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            sent.errors += 1
            writer.close()
            idle.put_nowait(await asyncio.open_connection(harness.HOST, port))

    tasks = []
    start = time.monotonic() + 0.05
    for index, (seq, raw) in enumerate(pushes):
        due = start + index / rate
        if (pause := due - time.monotonic()) > 0:
            await asyncio.sleep(pause)
        tasks.append(asyncio.create_task(one(seq, raw, due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait()[1].close()
    return sent


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415 - optional

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


# --- one round -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    side: str
    sent: int  # measured pushes (the warm-up's excluded)
    arrived: int
    send_rate: float  # achieved, over the measured pushes
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    send_lag_p99_ms: float
    non_200: int
    errors: int


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest rank."""
    return round(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)], 2) if ordered else None


def run_round(context: Context, side: str, first_seq: int) -> Round:
    args = context.args
    total, warm = round(args.rate * (args.warmup + args.duration)), round(args.rate * args.warmup)
    seqs = list(range(first_seq, first_seq + total))
    port = context.ports[side]
    pushes = [(seq, request_bytes(port, push(seq, context.reservation_id, context.phone))) for seq in seqs]
    loop = new_loop()
    try:
        sent = loop.run_until_complete(send_all(port, pushes, args.rate, args.connections))
    finally:
        loop.close()
    arrived = context.arrivals.wait(f"/{side}", seqs, args.drain)
    measured = seqs[warm:]
    latencies = sorted((arrived[s] - sent.t0[s]) / 1e6 for s in measured if s in arrived and s in sent.t0)
    times = sorted(sent.t0[s] for s in measured if s in sent.t0)
    rate = (len(times) - 1) / ((times[-1] - times[0]) / 1e9) if len(times) > 1 else 0.0
    non_200 = sum(count for status, count in sent.statuses.items() if status != 200)
    return Round(
        side=side,
        sent=len(measured),
        arrived=len(latencies),
        send_rate=round(rate, 1),
        p50_ms=percentile(latencies, 0.50),
        p90_ms=percentile(latencies, 0.90),
        p99_ms=percentile(latencies, 0.99),
        max_ms=round(latencies[-1], 2) if latencies else None,
        send_lag_p99_ms=percentile(sorted(sent.lag_ms), 0.99) or 0.0,
        non_200=non_200,
        errors=sent.errors,
    )


@dataclass
class Context:
    args: argparse.Namespace
    arrivals: Arrivals
    ports: dict[str, int]
    reservation_id: str = ""
    phone: str = ""


# --- the stack and the partner -------------------------------------------------------------------------------------


def expect(answer: tuple[int, Any], status: int, what: str) -> Any:
    if answer[0] != status:
        sys.exit(f"error: {what} answered {answer[0]}: {answer[1]}")
    return answer[1]


def sign_in(base: str, email: str) -> dict[str, str]:
    harness.http_json("POST", f"{base}/v1/auth/register", {"email": email, "password": PASSWORD})
    token = expect(
        harness.http_json("POST", f"{base}/v1/auth/login", {"email": email, "password": PASSWORD}), 200, "login"
    )
    return {"Authorization": f"Bearer {token['access_token']}"}


async def rental_row(dsn: str, rental_id: str) -> asyncpg.Record:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchrow(
            "SELECT status, provider_id, phone_number FROM rentals WHERE id = $1", rental_id
        )
    finally:
        await connection.close()


def provision(context: Context, base: str, backing: Backing, receiver_port: int) -> None:
    """A `pro` customer with credits, an endpoint for `rental.message` at the receiver, and one active rental."""
    operator = sign_in(base, OPERATOR)
    customer = sign_in(base, backing.email)
    user_id = expect(harness.http_json("GET", f"{base}/v1/me", headers=customer), 200, "GET /v1/me")["id"]
    promote = harness.http_json("PATCH", f"{base}/v1/admin/users/{user_id}", {"tier": "pro"}, operator)
    expect(promote, 200, "promoting the customer")
    grant = {"amount": CREDITS, "reason": "bench credit"}
    expect(harness.http_json("POST", f"{base}/v1/admin/users/{user_id}/credits", grant, operator), 201, "granting")
    endpoint = {"url": f"http://{harness.HOST}:{receiver_port}/ours", "events": ["rental.message"]}
    expect(harness.http_json("POST", f"{base}/v1/webhook-endpoints", endpoint, customer), 201, "creating the endpoint")
    rental = expect(harness.http_json("POST", f"{base}/v1/rentals", RENTAL, customer), 201, "renting a number")
    deadline = time.monotonic() + 60
    while (row := asyncio.run(rental_row(backing.dsn(), rental["id"])))["status"] != "active":
        if time.monotonic() > deadline:
            sys.exit(f"error: the rental is still {row['status']} after 60 s")
        time.sleep(0.2)
    context.reservation_id, context.phone = row["provider_id"], row["phone_number"]


def check_path(context: Context, side: str, seq: int) -> None:
    """One push through each side before anything is measured: it must reach the receiver."""
    body = push(seq, context.reservation_id, context.phone)
    headers = {"X-Webhook-Signature": signature(body), "Content-Type": "application/json"}
    answer = httpx.post(f"http://{harness.HOST}:{context.ports[side]}{PATH}", content=body, headers=headers, timeout=10)
    if answer.status_code != 200:
        sys.exit(f"error: {side} answered {answer.status_code} to a signed push: {answer.text}")
    if not context.arrivals.wait(f"/{side}", [seq], 30):
        sys.exit(f"error: {side}: the push's webhook did not reach the receiver within 30 s")


def run(args: argparse.Namespace, workdir: Path) -> int:
    backing = Backing(admin_dsn=args.postgres, redis_url=args.redis_url, pid=os.getpid())
    bare_namespace = f"{backing.namespace}-bare"
    # The customer's number is polled once an hour: only the pushes bring messages in. The outbox sweep runs as in
    # production (it finds nothing older than OUTBOX_SWEEP_AFTER while the fast path publishes).
    env = support.service_env(
        backing, workdir, TEXTVERIFIED_WEBHOOK_SECRET=SECRET, RENTAL_POLL_INTERVAL="3600", OUTBOX_SWEEP_INTERVAL="5"
    )
    threads = args.threads or load_settings(env, env_file=None).worker_threads
    procs: list[support.Proc] = []
    bare: harness.Server | None = None
    create_database(backing)
    try:
        migrate(harness.Target("ours", (), env), workdir)
        namaskah_cli(env, workdir, "catalog", "sync")
        namaskah_cli(env, workdir, "users", "create-admin", "--email", OPERATOR, "--password", PASSWORD)
        receiver, receiver_port, stream = support.start_receiver(workdir, record=True)
        procs.append(receiver)
        arrivals = Arrivals(stream)
        arrivals.start()
        api_port = harness.free_port()
        procs.append(
            support.start("api", [sys.executable, "-m", "namaskah", "run", "--port", str(api_port)], env, workdir)
        )
        worker = support.start(
            "worker", [sys.executable, "-m", "namaskah", "worker", "--threads", str(threads)], env, workdir
        )
        procs.append(worker)
        bare_env = {
            "BENCH_BARE_REDIS_URL": args.redis_url,
            "BENCH_BARE_NAMESPACE": bare_namespace,
            "BENCH_BARE_RECEIVER": f"http://{harness.HOST}:{receiver_port}/bare",
        }
        bare = harness.start_server(harness.Target("bare", harness.BARE_APP_ARGS, bare_env), workdir, [])
        bare_command = [sys.executable, str(support.BENCH_DIR / "bare_queue.py"), "--threads", str(threads)]
        bare_worker = support.start("bare-worker", bare_command, {**os.environ, **bare_env}, workdir)
        procs.append(bare_worker)
        harness.wait_ready(procs[1].as_server(api_port, "/health/ready"))
        harness.wait_ready(bare)
        support.wait_for_event(worker, "worker_started")
        support.wait_for_event(bare_worker, "bare_worker_started")
        context = Context(args, arrivals, {"ours": api_port, "bare": bare.port})
        provision(context, f"http://{harness.HOST}:{api_port}", backing, receiver_port)
        for index, side in enumerate(SIDES):
            check_path(context, side, 10**9 + index)
        per_round = round(args.rate * (args.warmup + args.duration))
        print(
            f"{args.rate:g} pushes/s, {args.warmup:g} s warm-up + {args.duration:g} s measured, {args.rounds} rounds "
            f"per side, {args.connections} connections, {threads} worker threads",
            flush=True,
        )
        results: dict[str, list[Round]] = {side: [] for side in SIDES}
        for index in range(args.rounds):
            for order, side in enumerate(SIDES if index % 2 == 0 else SIDES[::-1]):
                result = run_round(context, side, (2 * index + order) * per_round)
                results[side].append(result)
                print(f"round {index + 1}/{args.rounds}  {describe(result)}", flush=True)
        duplicates = arrivals.duplicates
    finally:
        for proc in reversed(procs):
            support.stop(proc)
        if bare is not None:
            harness.stop_server(bare)
        drop_database(backing)
        support.delete_namespaces(args.redis_url, backing.namespace, bare_namespace)
    return report(args, results, duplicates, threads)


def describe(result: Round) -> str:
    def ms(value: float | None) -> str:
        return f"{value:7.1f}" if value is not None else "      ?"

    problems = f"  NON-200 {result.non_200}" if result.non_200 else ""
    problems += f"  ERRORS {result.errors}" if result.errors else ""
    return (
        f"{result.side:4}  p50 {ms(result.p50_ms)} ms  p90 {ms(result.p90_ms)} ms  p99 {ms(result.p99_ms)} ms  "
        f"max {ms(result.max_ms)} ms  arrived {result.arrived}/{result.sent}  sent at {result.send_rate:.1f}/s "
        f"(send lag p99 {result.send_lag_p99_ms:.1f} ms){problems}"
    )


def median(rounds: list[Round], attribute: str) -> float | None:
    values = [getattr(r, attribute) for r in rounds if getattr(r, attribute) is not None]
    return round(statistics.median(values), 2) if values else None


def report(args: argparse.Namespace, results: dict[str, list[Round]], duplicates: int, threads: int) -> int:
    keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "send_rate")
    medians = {side: {key: median(rounds, key) for key in keys} for side, rounds in results.items()}
    ours, bare = medians["ours"], medians["bare"]
    met = ours["p50_ms"] is not None and ours["p99_ms"] is not None
    met = met and ours["p50_ms"] < TARGET_P50_MS and ours["p99_ms"] < TARGET_P99_MS
    ratios = {key: round(ours[key] / bare[key], 2) if ours[key] and bare[key] else None for key in ("p50_ms", "p99_ms")}
    lost = {side: sum(r.sent - r.arrived for r in rounds) for side, rounds in results.items()}
    refused = {side: sum(r.non_200 + r.errors for r in rounds) for side, rounds in results.items()}
    path = harness.write_results(
        "webhook_latency",
        {
            "target": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS},
            "target_met": met,
            "median": medians,
            "ours_over_bare": ratios,
            "lost": lost,
            "refused_or_failed_sends": refused,
            "duplicates": duplicates,
            "rounds": {side: [asdict(r) for r in rounds] for side, rounds in results.items()},
            "environment": {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "loadavg_at_end": os.getloadavg(),
                "rate": args.rate,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "connections": args.connections,
                "worker_threads": threads,
            },
        },
    )
    print(f"\nmedians over {args.rounds} rounds:")
    for side in SIDES:
        m = medians[side]
        print(f"  {side:4}  p50 {m['p50_ms']} ms  p90 {m['p90_ms']} ms  p99 {m['p99_ms']} ms  max {m['max_ms']} ms")
    print(f"ours / bare: p50 x{ratios['p50_ms']}, p99 x{ratios['p99_ms']}; duplicates received {duplicates}")
    print(f"targets p50 < {TARGET_P50_MS:g} ms and p99 < {TARGET_P99_MS:g} ms: {'met' if met else 'NOT met'}")
    print(f"results: {harness.relative(path)}")
    print(
        f"webhook_latency p50={ours['p50_ms']}ms p99={ours['p99_ms']}ms at {ours['send_rate']}/s "
        f"(bare p50={bare['p50_ms']}ms p99={bare['p99_ms']}ms; "
        f"ours/bare p50 x{ratios['p50_ms']} p99 x{ratios['p99_ms']})"
    )
    if any(lost.values()) or any(refused.values()):
        print(f"webhook_latency FAILED: webhooks not received {lost}, pushes refused or failed {refused}")
        return 1
    return 2 if args.strict and not met else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return harness.in_workdir(args, run)


if __name__ == "__main__":
    sys.exit(main())
