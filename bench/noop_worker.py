"""`namaskah worker` with one more actor: a bench-only `bench.noop` on the `webhooks` queue that does nothing,
declared through `namaskah.cli.serve_jobs` (the entry `namaskah worker` runs), so the broker, middleware, idle poll
and actors are exactly the real worker's. webhook_throughput.py runs this one entry for both of its sides, so the
only difference between them is the actor the messages name.

`python bench/noop_worker.py [--threads N]` (default WORKER_THREADS); SIGTERM stops it.
"""

from __future__ import annotations

import argparse
from typing import Any

NOOP_ACTOR = "bench.noop"


def declare_noop() -> None:
    import dramatiq  # noqa: PLC0415  (after `jobs` set the broker)

    @dramatiq.actor(actor_name=NOOP_ACTOR, queue_name="webhooks")
    async def noop(payload: dict[str, Any]) -> None:
        return None


if __name__ == "__main__":
    from namaskah.cli import serve_jobs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default WORKER_THREADS)")
    serve_jobs(threads=parser.parse_args().threads, queues=None, declare=declare_noop)
