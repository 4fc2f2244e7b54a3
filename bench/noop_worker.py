"""`namaskah worker` with one more actor: the jobs package's broker, middleware and actors exactly as the real worker
sets them up, plus a bench-only `bench.noop` actor on the `webhooks` queue that does nothing. webhook_throughput.py
runs this one entry for both of its sides, so the only difference between them is the actor the messages name.

`python bench/noop_worker.py [--threads N]` (default WORKER_THREADS). The steps are those of `namaskah.cli.worker`,
in its order (the metrics folder is exported before prometheus_client is imported), with the actor declared after
`import jobs`; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

NOOP_ACTOR = "bench.noop"


def run(threads: int | None) -> int:
    # Imported here, in cli.worker's order: prometheus_client must not be imported before the folder is exported.
    import dramatiq  # noqa: PLC0415

    from namaskah.cli import _prepare_metrics_dir, _settings  # noqa: PLC0415
    from namaskah.lib import worker_metrics  # noqa: PLC0415
    from namaskah.lib.logging import configure_logging, get_logger  # noqa: PLC0415

    settings = _settings()
    if settings.worker_metrics_port:
        _prepare_metrics_dir(worker_metrics.metrics_dir(settings))
        worker_metrics.export_dir(worker_metrics.metrics_dir(settings))
    configure_logging(settings.log_level, settings.log_format)
    import jobs  # noqa: PLC0415

    @dramatiq.actor(actor_name=NOOP_ACTOR, queue_name="webhooks")
    async def noop(payload: dict[str, Any]) -> None:
        return None

    if settings.worker_metrics_port:
        worker_metrics.enable(jobs.broker, settings)
    log = get_logger("namaskah.worker")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    jobs.broker.emit_after("process_boot")
    consumer = dramatiq.Worker(jobs.broker, worker_threads=threads or settings.worker_threads, worker_timeout=1000)
    consumer.start()
    log.info("worker_started", queues=sorted(jobs.broker.get_declared_queues()), threads=consumer.worker_threads)
    stop.wait()
    log.info("worker_stopping")
    consumer.stop(timeout=30_000)
    jobs.broker.emit_before("process_stop")
    jobs.broker.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default WORKER_THREADS)")
    sys.exit(run(parser.parse_args().threads))
