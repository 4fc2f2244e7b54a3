"""Messages/second of the webhook delivery actor (`webhooks.deliver`: claim, sign, POST to the partner, record the
attempt, on PostgreSQL) against a no-op actor on the same broker, in the same worker entry with the same threads.

Per round and side: N messages are enqueued on the `webhooks` queue while no worker runs, then noop_worker.py
starts and the clock runs from the ack of the `--warmup-messages`th message to the last one (Dramatiq keeps an
enqueued message in `<namespace>:webhooks.msgs` until it is acked). The delivery side's messages are the outbox
rows of N wallet credits seeded just before (one `wallet.credited` event and delivery each, for one endpoint at
fast_receiver.py); after the round every one of them must be `succeeded` after one attempt, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import dramatiq
import redis
from sqlalchemy import select
from uuid_utils.compat import uuid7

import harness
import webhook_support as support
from me_api_key import ADMIN_DSN, REDIS_URL, Backing, create_database, drop_database, migrate
from namaskah.db.engine import create_engine, create_session_factory
from namaskah.domain.accounts.models import User
from namaskah.domain.wallet.models import EntryKind
from namaskah.domain.wallet.service import WalletService
from namaskah.domain.webhooks.jobs import DeliverWebhook
from namaskah.domain.webhooks.models import EventType
from namaskah.domain.webhooks.schemas import EndpointCreate
from namaskah.domain.webhooks.sender import url_policy
from namaskah.domain.webhooks.service import WebhookEndpointService
from namaskah.lib.logging import configure_logging
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.lib.outbox.relay import to_broker_message
from namaskah.lib.outbox.service import OutboxService
from namaskah.lib.queue import build_broker
from namaskah.settings import Settings, load_settings
from noop_worker import NOOP_ACTOR

TARGET_RATIO = 0.60
QUEUE = DeliverWebhook.queue_name
SIDES = ("delivery", "noop")
COMMIT_EVERY = 250  # credits per seeding transaction
POLL_S = 0.002


@dataclass(frozen=True)
class Round:
    side: str
    messages: int  # measured: acked between the warm-up mark and the last ack
    elapsed_s: float
    msgs_per_s: float
    cpu_ms_per_message: float  # the worker process's (all threads) over the same span
    startup_s: float  # from starting the worker to the warm-up mark


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages per round and side (default 2000)")
    parser.add_argument("--warmup-messages", type=int, default=50, help="acks before the clock starts (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, alternating (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default WORKER_THREADS)")
    parser.add_argument("--postgres", default=ADMIN_DSN, help=f"DSN allowed to create databases (default {ADMIN_DSN})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis of the broker (default {REDIS_URL})")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a round may take at most (default 300)")
    parser.add_argument("--strict", action="store_true", help=f"exit 2 when ratio < {TARGET_RATIO}")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the process logs")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.messages < 2 or not 0 <= args.warmup_messages < args.messages - 1:
        parser.error("--rounds >= 1, --messages >= 2 and 0 <= --warmup-messages < --messages - 1")
    return args


# --- seeding (the service layer, in this process, one plain session: no relay publishes anything) ----------------


class Seeder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        self.sessions = create_session_factory(self.engine)
        self.user_id: uuid.UUID | None = None
        self.seeded = 0

    async def partner(self, receiver_url: str) -> None:
        """A `pro` user (the tier with webhooks) and one endpoint for `wallet.credited`, made as the API makes it."""
        async with self.sessions() as session:
            user = User(email=f"bench-{os.getpid()}@example.com", password_hash="bench-not-a-hash", tier="pro")
            session.add(user)
            await session.flush()
            endpoints = WebhookEndpointService(session=session, policy=url_policy(self.settings))
            request = EndpointCreate(url=receiver_url, events=[EventType.WALLET_CREDITED])
            await endpoints.register(user.id, "pro", request)
            await session.commit()
            self.user_id = user.id

    async def deliveries(self, count: int) -> list[dramatiq.Message[Any]]:
        """`count` wallet credits, each with its event, delivery and outbox row; the rows as the relay would publish
        them, marked published so that no sweep sends them again."""
        assert self.user_id is not None
        async with self.sessions() as session:
            wallet = WalletService(session=session)
            for n in range(count):
                reference = f"bench-credit-{self.seeded + n}"
                await wallet.credit(self.user_id, 100, kind=EntryKind.TOPUP, reference=reference)
                if n % COMMIT_EVERY == COMMIT_EVERY - 1:
                    await session.commit()
            await session.commit()
            self.seeded += count
            rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.published_at.is_(None)))).all()
            await OutboxService(session=session).mark_published([row.id for row in rows])
            await session.commit()
        messages = [to_broker_message(row) for row in rows if row.actor == DeliverWebhook.actor_name]
        if len(messages) != count:
            sys.exit(f"error: {count} credits requested {len(messages)} deliveries (expected one each)")
        return messages

    async def close(self) -> None:
        await self.engine.dispose()


def noop_messages(count: int) -> list[dramatiq.Message[Any]]:
    """The same shape as the delivery side's (payload, options), naming the no-op actor."""
    return [
        dramatiq.Message(
            queue_name=QUEUE,
            actor_name=NOOP_ACTOR,
            args=(DeliverWebhook(delivery_id=uuid7()).to_payload(),),
            kwargs={},
            options={"request_id": None, "outbox_id": str(uuid7())},
        )
        for _ in range(count)
    ]


async def check_delivered(dsn: str, messages: list[dramatiq.Message[Any]]) -> dict[str, int]:
    """How the round's deliveries ended: all must be `succeeded` after exactly one attempt."""
    ids = [uuid.UUID(message.args[0]["delivery_id"]) for message in messages]
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT count(*) AS deliveries,"
            " count(*) FILTER (WHERE status = 'succeeded' AND attempts = 1) AS succeeded_once,"
            " (SELECT count(*) FROM webhook_attempts WHERE delivery_id = ANY($1::uuid[])) AS attempts"
            " FROM webhook_deliveries WHERE id = ANY($1::uuid[])",
            ids,
        )
        return dict(row)
    finally:
        await connection.close()


# --- one round ----------------------------------------------------------------------------------------------------


def run_round(
    side: str, messages: list[dramatiq.Message[Any]], broker: dramatiq.Broker, client: redis.Redis, context: Any
) -> Round:
    """Enqueue everything with no worker running, start the worker, time the acks, stop the worker."""
    args, env, workdir = context.args, context.env, context.workdir
    pending_key = f"{context.backing.namespace}:{QUEUE}.msgs"
    if client.hlen(pending_key):
        sys.exit(f"error: {pending_key} is not empty before the round")
    for message in messages:
        broker.enqueue(message)
    total = len(messages)
    command = [sys.executable, str(support.BENCH_DIR / "noop_worker.py")]
    if args.threads:
        command += ["--threads", str(args.threads)]
    context.worker_runs += 1
    worker = support.start(f"worker-{context.worker_runs}-{side}", command, env, workdir)
    try:
        started = time.perf_counter()
        deadline = started + args.timeout
        mark: tuple[float, float] | None = None
        acked_at_mark = 0
        while True:
            remaining = client.hlen(pending_key)
            now = time.perf_counter()
            if mark is None and total - remaining >= max(1, args.warmup_messages):
                mark = (now, support.cpu_seconds(worker.process.pid))
                acked_at_mark = total - remaining
            if remaining == 0:
                cpu_end = support.cpu_seconds(worker.process.pid)
                break
            if worker.process.poll() is not None:
                raise worker.fail(f"exited ({worker.process.returncode}) with {remaining} messages unacked")
            if now > deadline:
                raise worker.fail(f"left {remaining} of {total} messages unacked after {args.timeout:.0f}s")
            time.sleep(POLL_S)
    finally:
        support.stop(worker)
    assert mark is not None
    measured, elapsed = total - acked_at_mark, now - mark[0]
    return Round(
        side=side,
        messages=measured,
        elapsed_s=round(elapsed, 3),
        msgs_per_s=round(measured / elapsed, 1),
        cpu_ms_per_message=round((cpu_end - mark[1]) / measured * 1000, 3),
        startup_s=round(mark[0] - started, 2),
    )


@dataclass
class Context:
    args: argparse.Namespace
    backing: Backing
    env: dict[str, str]
    workdir: Path
    worker_runs: int = 0


def measure(context: Context, receiver_port: int) -> tuple[dict[str, list[Round]], list[dict[str, int]]]:
    args, backing = context.args, context.backing
    settings = load_settings(context.env, env_file=None)
    broker = build_broker(settings)
    client = redis.Redis.from_url(args.redis_url)
    loop = asyncio.new_event_loop()
    log = (context.workdir / "seeding.log").open("w", encoding="utf-8")
    configure_logging("WARNING", "json", stream=log)  # the services' per-credit lines would flood the output
    seeder = Seeder(settings)
    results: dict[str, list[Round]] = {side: [] for side in SIDES}
    checks: list[dict[str, int]] = []
    try:
        loop.run_until_complete(seeder.partner(f"http://{harness.HOST}:{receiver_port}/hook"))
        for index in range(args.rounds):
            for side in SIDES if index % 2 == 0 else SIDES[::-1]:
                if side == "delivery":
                    print(f"  seeding {args.messages} wallet credits...", flush=True)
                    messages = loop.run_until_complete(seeder.deliveries(args.messages))
                else:
                    messages = noop_messages(args.messages)
                result = run_round(side, messages, broker, client, context)
                if side == "delivery":
                    check = loop.run_until_complete(check_delivered(backing.dsn(), messages))
                    checks.append(check)
                    if not check["deliveries"] == check["succeeded_once"] == check["attempts"] == args.messages:
                        sys.exit(f"error: round {index + 1}: deliveries did not all succeed once: {check}")
                results[side].append(result)
                print(
                    f"round {index + 1}/{args.rounds}  {side:8} {result.msgs_per_s:8.1f} msg/s  "
                    f"({result.messages} in {result.elapsed_s:.2f} s, {result.cpu_ms_per_message:.2f} ms CPU each, "
                    f"worker ready after {result.startup_s:.1f} s)",
                    flush=True,
                )
    finally:
        loop.run_until_complete(seeder.close())
        loop.close()
        log.close()
        broker.close()
        client.close()
    return results, checks


def received(port: int) -> int:
    status, body = harness.http_json("GET", f"http://{harness.HOST}:{port}/count")
    return int(body) if status == 200 and body is not None else -1


def run(args: argparse.Namespace, workdir: Path) -> int:
    backing = Backing(admin_dsn=args.postgres, redis_url=args.redis_url, pid=os.getpid())
    env = support.service_env(backing, workdir)
    receiver = None
    create_database(backing)
    try:
        migrate(harness.Target("ours", (), env), workdir)
        receiver, port, _ = support.start_receiver(workdir, record=False)
        workers = args.threads or load_settings(env, env_file=None).worker_threads
        print(f"{args.rounds} rounds per side of {args.messages} messages, {workers} worker threads, queue {QUEUE}")
        results, checks = measure(Context(args, backing, env, workdir), port)
        requests = received(port)
    finally:
        support.stop(receiver)
        drop_database(backing)
        support.delete_namespaces(args.redis_url, backing.namespace)
    return report(args, results, checks, requests, workers)


def report(
    args: argparse.Namespace, results: dict[str, list[Round]], checks: list[dict[str, int]], requests: int, threads: int
) -> int:
    medians = {side: statistics.median(r.msgs_per_s for r in rounds) for side, rounds in results.items()}
    cpu = {side: statistics.median(r.cpu_ms_per_message for r in rounds) for side, rounds in results.items()}
    ratio = medians["delivery"] / medians["noop"]
    met = ratio >= TARGET_RATIO
    expected = args.messages * args.rounds
    path = harness.write_results(
        "webhook_throughput",
        {
            "ratio": round(ratio, 3),
            "target_ratio": TARGET_RATIO,
            "target_met": met,
            "median_msgs_per_s": medians,
            "median_cpu_ms_per_message": cpu,
            "rounds": {side: [asdict(r) for r in rounds] for side, rounds in results.items()},
            "delivery_checks": checks,
            "receiver_requests": requests,
            "environment": {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": sys.version.split()[0],
                "dramatiq": metadata.version("dramatiq"),
                "httpx": metadata.version("httpx"),
                "cpus": os.cpu_count(),
                "loadavg_at_end": os.getloadavg(),
                "messages": args.messages,
                "warmup_messages": args.warmup_messages,
                "worker_threads": threads,
                "rounds": args.rounds,
            },
        },
    )
    print(f"\nmedians over {args.rounds} rounds:")
    for side in SIDES:
        print(f"  {side:8} {medians[side]:8.1f} msg/s   {cpu[side]:.2f} ms worker CPU per message")
    print(f"deliveries succeeded after one attempt: {sum(c['succeeded_once'] for c in checks)} of {expected}; ", end="")
    print(f"receiver got {requests} requests")
    print(f"target ratio >= {TARGET_RATIO}: {'met' if met else 'NOT met'}")
    print(f"results: {harness.relative(path)}")
    print(
        f"webhook_throughput ratio={ratio:.2f} "
        f"(delivery {medians['delivery']:.0f} msg/s / noop {medians['noop']:.0f} msg/s)"
    )
    if requests != expected:
        print(f"webhook_throughput FAILED: the receiver got {requests} requests, expected {expected}")
        return 1
    return 2 if args.strict and not met else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return harness.in_workdir(args, run)


if __name__ == "__main__":
    sys.exit(main())
