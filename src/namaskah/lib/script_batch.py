"""One Redis Lua script called by many concurrent requests, sent as one pipeline per event-loop turn.

Every API request runs the rate-limit script; redis-py spends ~100 µs of CPU per command call (pool, retries,
locks) but little per command inside a pipeline, so concurrent calls are gathered for one turn and sent together.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Call = tuple[list[str], list[str | int], "asyncio.Future[Any]"]


class ScriptBatch:
    """`await batch(keys, args)` answers what `EVALSHA script keys args` answers, or raises what it raised."""

    def __init__(self, redis: Redis, script: str) -> None:
        self.redis = redis
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - the name Redis gives the script
        self._waiting: list[Call] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: list[str], args: list[str | int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((keys, args, future))
        if len(self._waiting) == 1:
            # Sent at the end of this turn, with every call the other ready requests make meanwhile.
            loop.call_soon(self._send_waiting)
        return await future

    def _send_waiting(self) -> None:
        calls, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._send(calls))
        self._in_flight.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, calls: list[Call]) -> None:
        try:
            results = await self._execute(calls)
            if any(isinstance(result, NoScriptError) for result in results):
                await self.redis.script_load(self.script)  # a restarted or flushed Redis
                results = await self._execute(calls)
        except Exception as exc:
            results = [exc] * len(calls)
        for (_, _, future), result in zip(calls, results, strict=True):
            if future.done():  # the request went away meanwhile
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, calls: list[Call]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results
