"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from sqlalchemy import text

from namaskah.lib.errors import Problem, problem_response
from namaskah.lib.logging import get_logger

logger = get_logger(__name__)


class HealthStatus(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    include_in_schema = True

    @get("/live", cache_control=None, summary="The process is up")
    async def live(self) -> HealthStatus:
        return HealthStatus(status="ok")

    @get("/ready", summary="The database (and Redis when configured) answer")
    async def ready(self, state: State) -> Response[HealthStatus] | Response[Problem]:
        checks = await run_checks(state)
        failed = sorted(name for name, outcome in checks.items() if outcome != "ok")
        if failed:
            logger.warning("not_ready", failed=failed)
            return problem_response(503, "not_ready", "Not ready", f"Unavailable: {', '.join(failed)}", checks=checks)
        return Response(HealthStatus(status="ok", checks=checks))


async def run_checks(state: State) -> dict[str, str]:
    timeout: float = state.settings.ready_timeout
    checks = {"database": _check_database(state)}
    if state.redis is not None:
        checks["redis"] = _check_redis(state)
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout) for check in checks.values()), return_exceptions=True
    )
    return {name: _outcome(result) for name, result in zip(checks, results, strict=True)}


def _outcome(result: Any) -> str:
    if isinstance(result, BaseException):
        return "timeout" if isinstance(result, TimeoutError) else f"error: {type(result).__name__}"
    return "ok"


async def _check_database(state: State) -> None:
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check_redis(state: State) -> None:
    await state.redis.ping()
