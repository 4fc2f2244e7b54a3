"""The asyncio Redis client of API processes: hiredis both parses replies and packs commands.

redis-py's asyncio connection packs commands in Python (its sync one can use hiredis); every request sends the
rate-limit script, so packing with hiredis is a measurable share of a request's CPU.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Connection, Redis
from redis.exceptions import DataError


class HiredisConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # "SCRIPT LOAD" and the like: Redis wants the words as separate arguments
            args = (*args[0].encode().split(), *args[1:])
        packed = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
        try:
            return [hiredis.pack_command(packed)]  # type: ignore[arg-type] # its stub types a 1-tuple
        except TypeError as exc:
            raise DataError(str(exc)) from exc


def async_redis(url: str) -> Redis:
    """Fail fast when Redis is unreachable: limits fail open and the outbox keeps jobs until it is back."""
    return Redis.from_url(url, socket_connect_timeout=2, connection_class=HiredisConnection)
