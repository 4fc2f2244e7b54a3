"""The provider SMS_PROVIDER names, built from settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.providers.base import SmsProvider
from namaskah.providers.simulator import SimulatorProvider
from namaskah.settings import Settings


def build_provider(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> SmsProvider:
    """`sessions` is where the simulator keeps its numbers (it opens its own short transactions on it)."""
    if settings.sms_provider == "textverified":
        from namaskah.providers.textverified import TextVerifiedProvider  # noqa: PLC0415 - httpx only when used

        return TextVerifiedProvider.from_settings(settings)
    return SimulatorProvider(sessions)
