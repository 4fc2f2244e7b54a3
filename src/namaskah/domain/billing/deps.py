"""Billing's wiring: the process's one Paystack client (the sandbox's transport in dev mode) and the providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.domain.billing.checkout import Checkout
from namaskah.domain.billing.paystack import PaystackClient
from namaskah.domain.billing.sandbox_api import SandboxTransport
from namaskah.settings import Settings


def build_paystack(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> PaystackClient:
    transport = SandboxTransport(sessions, settings) if settings.paystack_sandbox else None
    return PaystackClient.from_settings(settings, transport=transport)


@asynccontextmanager
async def paystack_lifespan(app: Litestar) -> AsyncIterator[None]:
    """One pooled client per API process, closed at shutdown. A test may put its own in `state.paystack` first."""
    state = app.state
    owned = state.get("paystack") is None
    if owned:
        state.paystack = build_paystack(state.settings, state.session_factory)
    try:
        yield
    finally:
        if owned:
            await state.paystack.aclose()
            state.paystack = None


def provide_checkout(state: State) -> Checkout:
    return Checkout(state.relay.transaction, state.paystack, state.settings)


checkout_dependencies = {"checkout": Provide(provide_checkout, sync_to_thread=False)}
