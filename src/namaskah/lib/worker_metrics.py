"""The worker's Prometheus endpoint: Dramatiq's queue and actor metrics, and ours, on a port of the worker's own.

prometheus_client picks its storage when it is first imported, and Dramatiq's middleware reads its folder
(`dramatiq_prom_db`) when it is: `metrics_dir` must be exported before either is imported anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import dramatiq

from namaskah.lib.logging import get_logger
from namaskah.settings import Settings

logger = get_logger(__name__)


def metrics_dir(settings: Settings) -> Path:
    """One folder per worker port: processes on one host each have a port, and a starting one empties only its own."""
    base = Path(settings.prometheus_multiproc_dir or Path(settings.data_dir) / "metrics")
    return base / f"worker-{settings.worker_metrics_port}"


def export_dir(directory: Path) -> None:
    """Point Dramatiq's middleware at the folder prometheus_client already uses (PROMETHEUS_MULTIPROC_DIR)."""
    os.environ["dramatiq_prom_db"] = str(directory.resolve())  # noqa: SIM112 - the name Dramatiq reads


def enable(broker: dramatiq.Broker, settings: Settings) -> None:
    """Count every message (Dramatiq's Prometheus middleware) and serve the counters of this folder over HTTP.

    A port already taken is logged and the worker goes on: jobs matter more than their metrics."""
    # Imported here, once the caller exported the folder (see the module docstring).
    from dramatiq.middleware.prometheus import Prometheus  # noqa: PLC0415
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: PLC0415

    broker.add_middleware(Prometheus())
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        logger.error("worker_metrics_unavailable", host=host, port=port, error=str(exc))
        return
    logger.info("worker_metrics_serving", host=host, port=port)
