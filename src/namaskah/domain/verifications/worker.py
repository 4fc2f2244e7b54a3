"""What the verification jobs do, apart from Dramatiq: the provider is called between two short transactions,
never inside one, so no database lock or connection is held while the network answers."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.domain.verifications.jobs import AcquireNumber, CancelAtProvider, PollMessages
from namaskah.domain.verifications.models import OPEN_STATUSES, VerificationStatus
from namaskah.domain.verifications.service import VerificationService
from namaskah.lib.logging import get_logger
from namaskah.providers.base import ProviderMessage, ReservationKind, SmsProvider
from namaskah.providers.errors import ProviderError, ProviderRejected, ProviderUnavailable

logger = get_logger(__name__)

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def acquire(transaction: Transaction, provider: SmsProvider, job: AcquireNumber) -> None:
    """Buy the number (idempotent at the provider on the verification's id, so a rerun buys one). A refusal fails
    and refunds the verification; ProviderUnavailable propagates so that Dramatiq retries."""
    async with transaction() as session:
        verification = await VerificationService(session=session).load(job.verification_id)
        if verification is None or verification.status != VerificationStatus.PENDING.value:
            return  # cancelled before we got to it, or a redelivery of a job that already ran
        service, area_code, carrier = verification.provider_service, verification.area_code, verification.carrier
    try:
        number = await provider.acquire(
            service, idempotency_key=f"verification-{job.verification_id}", area_code=area_code, carrier=carrier
        )
    except ProviderUnavailable:
        raise
    except ProviderError as exc:
        async with transaction() as session:
            await VerificationService(session=session).fail(job.verification_id, exc.code)
        logger.info("verification_failed", verification_id=str(job.verification_id), error=exc.code)
        return
    async with transaction() as session:
        assigned = await VerificationService(session=session).assign(job.verification_id, number)
    if not assigned:
        # Cancelled or expired while the provider was answering: nobody will use the number.
        await cancel_at_provider(
            provider, CancelAtProvider(verification_id=job.verification_id, provider_id=number.provider_id)
        )


async def give_up(transaction: Transaction, job: AcquireNumber) -> None:
    """Every attempt to buy the number failed (the provider stayed unavailable): fail and refund, once."""
    async with transaction() as session:
        if await VerificationService(session=session).fail(job.verification_id, "provider_unavailable"):
            logger.warning("verification_acquire_gave_up", verification_id=str(job.verification_id))


async def poll(
    transaction: Transaction, provider: SmsProvider, job: PollMessages, *, now: datetime | None = None
) -> bool:
    """Record the number's messages and expire the verification past its window; True while it still waits
    (the caller polls again later)."""
    async with transaction() as session:
        verification = await VerificationService(session=session).load(job.verification_id)
        if verification is None or verification.provider_id is None or verification.status not in OPEN_STATUSES:
            return False
        provider_id, expires_at = verification.provider_id, verification.expires_at
    messages: list[ProviderMessage] = []
    try:
        messages = await provider.messages(provider_id, ReservationKind.VERIFICATION)
    except ProviderError as exc:
        # The next poll tries again; past the window the verification expires whatever the provider says.
        logger.warning("verification_poll_failed", verification_id=str(job.verification_id), error=exc.code)
    now = now or utcnow()
    async with transaction() as session:
        service = VerificationService(session=session)
        current = await service.record_messages(job.verification_id, messages)
        if current is None or current.status not in OPEN_STATUSES:
            return False
        if expires_at <= now:
            await service.expire_due(now, only=job.verification_id)
            return False
    return True


async def cancel_at_provider(provider: SmsProvider, job: CancelAtProvider) -> None:
    """Give the number back; a provider that no longer allows it (an SMS arrived, it ran out) is no error."""
    try:
        await provider.cancel(job.provider_id)
    except ProviderRejected as exc:
        logger.info("verification_provider_cancel_refused", verification_id=str(job.verification_id), error=exc.code)
