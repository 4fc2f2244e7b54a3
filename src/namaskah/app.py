"""create_app(): the Litestar application with its plugins, controllers, middleware and error handlers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import timedelta

import dramatiq
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Controller, Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from namaskah import __version__
from namaskah.db.engine import create_alchemy_config, create_engine, create_session_factory
from namaskah.db.session import publish_after_response, session_provider
from namaskah.domain.accounts.caller_cache import CallerCache
from namaskah.domain.accounts.controller import AuthController, MeController
from namaskah.domain.accounts.email_controller import AccountEmailController, MePasswordController
from namaskah.domain.accounts.ratelimits import enforce_rate_limit
from namaskah.domain.admin.controller import AdminUserController
from namaskah.domain.apikeys.controller import ApiKeyController
from namaskah.domain.audit.controller import AuditLogController
from namaskah.domain.billing.controller import AdminBillingFlagController, PaystackWebhookController, TopupController
from namaskah.domain.billing.deps import paystack_lifespan
from namaskah.domain.billing.sandbox_controller import SandboxCheckoutController
from namaskah.domain.catalog.controller import CatalogController
from namaskah.domain.health.controller import HealthController
from namaskah.domain.invoices.controller import InvoiceController
from namaskah.domain.maintenance.controller import PingController
from namaskah.domain.maintenance.schedule import periodic_tasks
from namaskah.domain.provider_events.controller import TextVerifiedEventController
from namaskah.domain.reconciliation.controller import AdminReconciliationController
from namaskah.domain.rentals.controller import RentalController
from namaskah.domain.rentals.sweeper import run_rental_sweeper
from namaskah.domain.subscriptions.controller import PlanController, SubscriptionController
from namaskah.domain.tax.controller import AdminTaxRateController
from namaskah.domain.tiers.controller import AdminTierController
from namaskah.domain.verifications.controller import VerificationController
from namaskah.domain.verifications.sweeper import run_expiry_sweeper
from namaskah.domain.wallet.controller import AdminCreditController, WalletController
from namaskah.domain.webhooks.controller import WebhookDeliveryController, WebhookEndpointController
from namaskah.lib.errors import exception_handlers
from namaskah.lib.logging import configure_logging, get_logger
from namaskah.lib.metrics_controller import metrics
from namaskah.lib.middleware import RequestContextMiddleware
from namaskah.lib.outbox.relay import OutboxRelay
from namaskah.lib.queue import setup_jobs
from namaskah.lib.ratelimit import RateLimiter
from namaskah.lib.redis_client import async_redis
from namaskah.lib.scheduler import LocalLease, PeriodicScheduler
from namaskah.lib.security.passwords import PasswordHasher
from namaskah.lib.security.tokens import AccessTokenCodec
from namaskah.lib.stamps import StampBook
from namaskah.providers.simulator_controller import SimulatorController
from namaskah.settings import Settings, get_settings

logger = get_logger(__name__)


VENDOR_WEBHOOKS: tuple[type[Controller], ...] = (PaystackWebhookController, TextVerifiedEventController)


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
    broker: dramatiq.Broker | None = None,
) -> Litestar:
    """Build the API. Tests pass their own engine, sessions and broker; production reads everything from settings."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format, sql_echo=settings.db_echo)
    engine = engine or create_engine(settings)
    session_factory = session_factory or create_session_factory(engine)
    alchemy = create_alchemy_config(engine, session_factory)
    in_process_worker = broker is None and not settings.uses_redis
    broker = broker or setup_jobs(settings).broker
    redis = async_redis(settings.redis_url) if settings.uses_redis else None
    stamps = StampBook(redis, namespace=settings.dramatiq_namespace)
    relay = OutboxRelay(session_factory, broker, stamps)

    @contextlib.asynccontextmanager
    async def background_work(_: Litestar) -> AsyncIterator[None]:
        sweeper = _start_sweeper(settings, relay)
        expirer = _start_expiry_sweeper(settings, relay)
        renter = _start_rental_sweeper(settings, relay)
        worker = _start_in_process_worker(broker) if in_process_worker else None
        periodic = _start_in_process_scheduler(settings, broker) if in_process_worker else None
        # What start-up built lives as long as the process: keep it out of every full collection, whose pause
        # would otherwise grow with it and show in the slowest requests. Once per process (frozen objects are
        # never collected, so a process starting many apps, like the test suite, must not freeze each one).
        if not gc.get_freeze_count():
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if periodic is not None:
                await asyncio.to_thread(periodic.stop)
            for task in (sweeper, expirer, renter):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            if redis is not None:
                await redis.aclose()

    api_v1: list[ControllerRouterHandler] = [
        AuthController,
        MeController,
        AccountEmailController,
        MePasswordController,
        ApiKeyController,
        AdminUserController,
        AuditLogController,
        AdminTierController,
        AdminTaxRateController,
        InvoiceController,
        WalletController,
        AdminCreditController,
        CatalogController,
        VerificationController,
        RentalController,
        WebhookEndpointController,
        WebhookDeliveryController,
    ]
    if settings.dev_routes_enabled:
        api_v1.extend([PingController, SimulatorController])
    api_v1.extend([TopupController, AdminBillingFlagController, PlanController, SubscriptionController])
    api_v1.append(AdminReconciliationController)
    if settings.paystack_sandbox:  # never in production (the settings refuse the sandbox key there)
        api_v1.append(SandboxCheckoutController)
    # Only /v1 is rate limited: probes and scrapes pay nothing for it. A before_request hook rather than a guard
    # (Litestar copies the handler for every guard call); a controller must not set its own before_request.
    route_handlers: list[ControllerRouterHandler] = [
        HealthController,
        # Vendors' webhooks are not rate limited: they prove who sent them by signature, come from a few
        # addresses (60 a minute per IP would refuse real traffic), and a refusal only makes them retry.
        *VENDOR_WEBHOOKS,
        metrics,
        Router(path="/", route_handlers=api_v1, before_request=enforce_rate_limit),
    ]

    app = Litestar(
        route_handlers=route_handlers,
        plugins=[SQLAlchemyPlugin(config=alchemy)],
        dependencies={"db_session": session_provider(alchemy, relay)},
        exception_handlers=exception_handlers,
        after_response=publish_after_response(relay),
        lifespan=[background_work, paystack_lifespan],
        state=State(
            {
                "settings": settings,
                "engine": engine,
                "redis": redis,
                "relay": relay,
                "password_hasher": PasswordHasher.from_settings(settings),
                "token_codec": AccessTokenCodec.from_settings(settings),
                "session_factory": session_factory,
                "rate_limiter": RateLimiter(redis, prefix=f"{settings.dramatiq_namespace}:ratelimit"),
                "stamps": stamps,
                "caller_cache": CallerCache(max_age=settings.caller_cache_seconds, size=settings.caller_cache_size),
                "login_limiter": RateLimiter(
                    redis, prefix=f"{settings.dramatiq_namespace}:login", window=settings.login_failure_window
                ),
            }
        ),
        openapi_config=OpenAPIConfig(
            title="Namaskah SMS",
            version=__version__,
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        logging_config=None,
    )
    # Outermost layer: sees unknown routes and crashes too, which per-route middleware would not.
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler, quiet_paths=settings.quiet_paths)
    return app


def _start_sweeper(settings: Settings, relay: OutboxRelay) -> asyncio.Task[None] | None:
    if settings.outbox_sweep_interval <= 0:
        return None
    return asyncio.create_task(
        relay.run_sweeper(
            interval=settings.outbox_sweep_interval,
            older_than=timedelta(seconds=settings.outbox_sweep_after),
            limit=settings.outbox_batch_size,
        ),
        name="outbox-sweeper",
    )


def _start_expiry_sweeper(settings: Settings, relay: OutboxRelay) -> asyncio.Task[None] | None:
    if settings.verification_expiry_sweep_interval <= 0:
        return None
    sweep = run_expiry_sweeper(relay, interval=settings.verification_expiry_sweep_interval)
    return asyncio.create_task(sweep, name="verification-expiry-sweeper")


def _start_rental_sweeper(settings: Settings, relay: OutboxRelay) -> asyncio.Task[None] | None:
    if settings.rental_sweep_interval <= 0:
        return None
    pending_timeout = timedelta(seconds=settings.rental_pending_timeout)
    sweep = run_rental_sweeper(relay, interval=settings.rental_sweep_interval, pending_timeout=pending_timeout)
    return asyncio.create_task(sweep, name="rental-sweeper")


def _start_in_process_scheduler(settings: Settings, broker: dramatiq.Broker) -> PeriodicScheduler | None:
    """Dev mode: the periodic jobs reach the in-process worker as `namaskah scheduler` sends them in production."""
    tasks = periodic_tasks(settings)
    if not settings.scheduler_in_process or not tasks:
        return None
    periodic = PeriodicScheduler(broker, tasks, LocalLease(), renew_every=60.0, retry_every=60.0)
    periodic.start()
    return periodic


def _start_in_process_worker(broker: dramatiq.Broker) -> dramatiq.Worker:
    """Dev mode: consume the in-memory broker in this process, so no Redis is needed."""
    import jobs  # noqa: F401, PLC0415 - declares the actors on the broker before the worker starts

    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    logger.info("in_process_worker_started", queues=sorted(broker.get_declared_queues()))
    return worker
