"""Upstream number providers: the SmsProvider protocol, its values and errors, and the adapters behind it."""

from namaskah.providers.base import (
    ProviderExtension,
    ProviderMessage,
    ProviderNumber,
    ProviderPrice,
    ProviderService,
    ProviderState,
    ReservationKind,
    SmsProvider,
)

__all__ = [
    "ProviderExtension",
    "ProviderMessage",
    "ProviderNumber",
    "ProviderPrice",
    "ProviderService",
    "ProviderState",
    "ReservationKind",
    "SmsProvider",
]
