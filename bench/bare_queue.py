"""webhook_latency.py's baseline job: a bare Dramatiq actor on a Redis namespace of its own that POSTs the body it
was given to the receiver with one shared httpx client. No database, outbox, signing, SSRF guard or logging.

bare_app.py's `POST /v1/providers/textverified/events` sends it; `python bench/bare_queue.py [--threads N]` consumes
it. Configured by BENCH_BARE_REDIS_URL, BENCH_BARE_NAMESPACE and BENCH_BARE_RECEIVER (the receiver's URL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading

import dramatiq
import httpx
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

broker = RedisBroker(
    url=os.environ.get("BENCH_BARE_REDIS_URL", "redis://127.0.0.1:6379/8"),
    namespace=os.environ.get("BENCH_BARE_NAMESPACE", "bench-bare"),
)
broker.add_middleware(AsyncIO())
_clients: dict[int, httpx.AsyncClient] = {}


def client() -> httpx.AsyncClient:
    """One pooled client per event loop, as the real delivery actor keeps one."""
    key = id(asyncio.get_running_loop())
    if key not in _clients:
        _clients[key] = httpx.AsyncClient(timeout=15, trust_env=False)
    return _clients[key]


@dramatiq.actor(broker=broker, actor_name="bench.bare_forward", queue_name="bare")
async def forward(body: str) -> None:
    answer = await client().post(os.environ["BENCH_BARE_RECEIVER"], content=body.encode())
    answer.raise_for_status()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8, as WORKER_THREADS)")
    threads = parser.parse_args().threads
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    broker.emit_after("process_boot")
    # The same idle poll as our worker (its WORKER_IDLE_POLL, 100 ms by default): at low rates it is most of a hop.
    idle_poll = int(os.environ.get("WORKER_IDLE_POLL", "100"))
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=idle_poll)
    worker.start()
    print('{"event": "bare_worker_started"}', flush=True)
    stop.wait()
    worker.stop(timeout=30_000)
    broker.emit_before("process_stop")
    broker.close()
    sys.exit(0)
