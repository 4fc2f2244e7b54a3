"""Dead letters: the jobs Dramatiq gave up on, listed for operators and requeued one at a time.

Dramatiq's Redis broker keeps them per queue for DRAMATIQ_DEAD_MESSAGE_TTL (see dramatiq/brokers/redis/dispatch.lua):
`<namespace>:<queue>.XQ` is a sorted set of Redis message ids scored by the time they failed (ms), and
`<namespace>:<queue>.XQ.msgs` a hash of those ids to the encoded messages. A live message sits in
`<namespace>:<queue>` (a list of ids) and `<namespace>:<queue>.msgs`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
import msgspec
import redis
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from namaskah.lib.logging import REDACTED, get_logger, redact_secrets

logger = get_logger(__name__)

_Scored = list[tuple[bytes, float]]  # what redis-py answers to ZRANGE ... WITHSCORES

ERROR_LENGTH = 300

# Store the message as it ends (error included) in place of the copy made at enqueue time, which is what the nack
# moves to the dead letters; only while the message is still there (a dead worker's copy may have moved on).
_STORE_IF_PRESENT = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then
  redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""
# Only the caller that removes the id from the dead letters requeues it: two operators retrying at once requeue once.
_REQUEUE = """
if redis.call('zrem', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('hdel', KEYS[2], ARGV[1])
redis.call('hset', KEYS[4], ARGV[1], ARGV[2])
redis.call('rpush', KEYS[3], ARGV[1])
return 1
"""
# Argument strings shown as they are: ids, timestamps and short lowercase names. Anything else is summarized.
_SHOWN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?"
    r"|[a-z0-9_.:-]{1,40}"
)


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One failed job as operators see it: `id` is Dramatiq's message id, the `message_id` of the job's logs."""

    id: str
    actor: str
    queue: str
    failed_at: datetime
    attempts: int
    error: str | None
    args: str


def redacted(text: str) -> str:
    """Text with secret-shaped parts (tokens, keys, passwords in URLs) replaced, as the logs do."""
    return str(redact_secrets(None, "", {"text": text})["text"])


def describe(exception: BaseException) -> str:
    return redacted(f"{type(exception).__name__}: {exception}")[:ERROR_LENGTH]


def summarize(value: Any, depth: int = 0) -> str:
    """Arguments without their secrets: secret-named keys redacted, strings shown only when id- or name-shaped."""
    if value is None or isinstance(value, bool | int | float):
        return msgspec.json.encode(value).decode()
    if isinstance(value, str):
        return redacted(value) if _SHOWN.fullmatch(value) else f"<{len(value)} chars>"
    if isinstance(value, Mapping):
        if depth >= 3:
            return "{...}"
        items = (f"{k}={REDACTED if _secret_name(k) else summarize(v, depth + 1)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[...]" if depth >= 3 else "[" + ", ".join(summarize(v, depth + 1) for v in value) + "]"
    return f"<{type(value).__name__}>"


class FailureRecorder(Middleware):
    """Keeps the error of a job's last attempt with its dead letter.

    Dramatiq moves to the dead letters the message as it was enqueued: without this, a job with no retries left
    no error, and a retried one only the traceback of the attempt before last. It also counts failed attempts."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.namespace = namespace
        self._store = client.register_script(_STORE_IF_PRESENT)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is not None:
            message.options["error"] = describe(exception)
            message.options["attempts"] = int(message.options.get("attempts", 0)) + 1

    def before_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        key = f"{self.namespace}:{message.queue_name}.msgs"
        try:
            self._store(keys=[key], args=[message.options["redis_message_id"], message.encode()])
        except (redis.RedisError, KeyError) as exc:
            logger.warning("dead_letter_error_not_kept", message_id=message.message_id, error=type(exc).__name__)


class DeadLetters:
    """Dead letters of every queue under one Dramatiq namespace (DRAMATIQ_NAMESPACE)."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._requeue = client.register_script(_REQUEUE)

    def queues(self) -> list[str]:
        prefix, pattern = f"{self.namespace}:", f"{_glob_escape(self.namespace)}:*.XQ"
        names = (key.decode() for key in self.client.scan_iter(match=pattern, count=500))
        return sorted(name.removeprefix(prefix).removesuffix(".XQ") for name in names)

    def count(self, queue: str | None = None) -> int:
        return sum(int(self.client.zcard(self._xq(name))) for name in self._queues(queue))

    def latest(self, *, queue: str | None = None, limit: int = 50) -> list[DeadLetter]:
        """The most recent failures first, across queues (or in one)."""
        entries: list[tuple[float, str, bytes]] = []
        for name in self._queues(queue):
            newest = self.client.zrevrange(self._xq(name), 0, limit - 1, withscores=True)
            entries.extend((float(score), name, redis_id) for redis_id, score in cast(_Scored, newest))
        entries.sort(reverse=True)
        letters = []
        for score, name, redis_id in entries[:limit]:
            data = cast(bytes | None, self.client.hget(self._xq(name) + ".msgs", redis_id))
            if data is not None:  # requeued or expired meanwhile
                letters.append(_letter(name, score, dramatiq.Message.decode(data)))
        return letters

    def retry(self, message_id: str) -> DeadLetter | None:
        """Put the job back at the end of its queue for one more attempt (the retries it spent still count, so
        a new failure dead-letters it again). None if no dead letter has that id (or another operator was first)."""
        for name in self._queues(None):
            found = self._find(name, message_id)
            if found is None:
                continue
            redis_id, message = found
            score = self.client.zscore(self._xq(name), redis_id)
            options = {k: v for k, v in message.options.items() if k != "eta"}  # not a delayed message any more
            requeued = dataclasses.replace(message, queue_name=name, options=options)
            keys = [
                self._xq(name),
                self._xq(name) + ".msgs",
                f"{self.namespace}:{name}",
                f"{self.namespace}:{name}.msgs",
            ]
            if self._requeue(keys=keys, args=[redis_id, requeued.encode()]) != 1:
                return None
            logger.info("dead_letter_requeued", message_id=message_id, actor=message.actor_name, queue=name)
            return _letter(name, float(score or 0), message)
        return None

    def _find(self, queue: str, message_id: str) -> tuple[bytes, dramatiq.Message[Any]] | None:
        for redis_id, data in self.client.hscan_iter(self._xq(queue) + ".msgs", count=500):
            message = dramatiq.Message.decode(data)
            if message.message_id == message_id:
                return redis_id, message
        return None

    def _queues(self, queue: str | None) -> list[str]:
        return [queue] if queue else self.queues()

    def _xq(self, queue: str) -> str:
        return f"{self.namespace}:{queue}.XQ"


def _letter(queue: str, score: float, message: dramatiq.Message[Any]) -> DeadLetter:
    traceback = str(message.options.get("traceback") or "").strip()
    error = message.options.get("error") or (redacted(traceback.splitlines()[-1])[:ERROR_LENGTH] if traceback else None)
    arguments = [summarize(arg) for arg in message.args] + [f"{k}={summarize(v)}" for k, v in message.kwargs.items()]
    return DeadLetter(
        id=message.message_id,
        actor=message.actor_name,
        queue=queue,
        failed_at=datetime.fromtimestamp(score / 1000, UTC),
        # Counted by FailureRecorder; Dramatiq's own count misses the attempt that raised one of `throws`.
        attempts=int(message.options.get("attempts") or message.options.get("retries", 0)),
        error=error,
        args=", ".join(arguments),
    )


def _secret_name(key: object) -> bool:
    # The logs' rule for secret key names (api_key, password, token, ...): such a value is redacted whole.
    return bool(redact_secrets(None, "", {str(key): ""})[str(key)] == REDACTED)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
