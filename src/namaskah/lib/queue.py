"""The Dramatiq broker (Redis in production, in-memory in dev mode) and the worker's per-loop database access."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from dramatiq.middleware.asyncio import AsyncIO
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.engine import create_engine, create_session_factory
from namaskah.lib.dead_letters import FailureRecorder
from namaskah.lib.logging import bind_context, clear_context
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.lib.redis_client import async_redis
from namaskah.lib.stamps import StampBook
from namaskah.settings import Settings, get_settings


class JobContext(Middleware):
    """Binds the id of the request that caused a job to every log line of that job."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        bind_context(
            request_id=message.options.get("request_id"), job=message.actor_name, message_id=message.message_id
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        clear_context()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        clear_context()


def redis_client(url: str) -> redis.Redis:
    # Short timeouts: an unreachable Redis must fail fast so the outbox can take over.
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30)


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Redis when REDIS_URL is set; otherwise the in-memory broker that dev mode's in-process worker consumes."""
    broker: dramatiq.Broker
    if settings.uses_redis:
        client = redis_client(settings.redis_url)
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=client,
            namespace=settings.dramatiq_namespace,
            heartbeat_timeout=int(settings.dramatiq_heartbeat_timeout * 1000),
            dead_message_ttl=int(settings.dramatiq_dead_message_ttl * 1000),
            maintenance_chance=settings.dramatiq_maintenance_chance,
        )
        broker.add_middleware(FailureRecorder(client, settings.dramatiq_namespace))
    else:
        broker = StubBroker()
    broker.add_middleware(AsyncIO())
    broker.add_middleware(JobContext())
    return broker


class JobRuntime:
    """What actors need in a worker process: one engine and relay per event loop, created on first use."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        self.settings = settings
        self.broker = broker
        self._relays: dict[int, OutboxRelay] = {}

    def relay(self) -> OutboxRelay:
        # Engines are bound to the loop that created them; Dramatiq runs async actors on its own loop thread.
        key = id(asyncio.get_running_loop())
        if key not in self._relays:
            engine = create_engine(self.settings)
            # Jobs that change a user or a tier renew its stamps too, so API processes drop their cached copy.
            redis = async_redis(self.settings.redis_url) if self.settings.uses_redis else None
            stamps = StampBook(redis, namespace=self.settings.dramatiq_namespace)
            self._relays[key] = OutboxRelay(create_session_factory(engine), self.broker, stamps)
        return self._relays[key]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.relay().transaction() as session:
            yield session


_runtime: JobRuntime | None = None


def setup_jobs(settings: Settings | None = None) -> JobRuntime:
    """Create the process's broker, make it Dramatiq's global one (actors bind to it) and return the runtime."""
    global _runtime  # noqa: PLW0603 - Dramatiq's actor registry is process-global by design
    if _runtime is None:
        settings = settings or get_settings()
        broker = build_broker(settings)
        dramatiq.set_broker(broker)
        _runtime = JobRuntime(settings, broker)
    return _runtime
