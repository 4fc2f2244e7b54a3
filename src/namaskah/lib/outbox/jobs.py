"""The typed request for a background job: a msgspec Struct naming its actor and queue."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import msgspec


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """Subclasses are the payload of one actor; `jobs/` decodes them back with `decode`."""

    actor_name: ClassVar[str]
    queue_name: ClassVar[str] = "default"

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = msgspec.to_builtins(self)
        return payload

    @classmethod
    def decode(cls, payload: dict[str, Any]) -> Self:
        return msgspec.convert(payload, cls)
