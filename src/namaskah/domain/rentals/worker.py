"""What the rental jobs do, apart from Dramatiq: the provider is called between two short transactions, never
inside one, so no database lock or connection is held while the network answers."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.rentals.jobs import AcquireRental, ExtendAtProvider, PollRentalMessages, ReleaseAtProvider
from namaskah.domain.rentals.models import RentalStatus
from namaskah.domain.rentals.service import RentalService
from namaskah.lib.logging import get_logger
from namaskah.providers.base import ProviderMessage, ReservationKind, SmsProvider
from namaskah.providers.errors import ProviderError, ProviderRejected, ProviderUnavailable

logger = get_logger(__name__)

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def acquire(transaction: Transaction, provider: SmsProvider, job: AcquireRental) -> None:
    """Rent the number (idempotent at the provider on the rental's id, so a rerun rents one). A refusal fails and
    refunds the rental; ProviderUnavailable propagates so that Dramatiq retries."""
    async with transaction() as session:
        rental = await RentalService(session=session).load(job.rental_id)
        if rental is None or rental.status != RentalStatus.PENDING.value:
            return  # a redelivery of a job that already ran
        service, days = rental.provider_service, rental.days
    try:
        number = await provider.rent(service, days, idempotency_key=f"rental-{job.rental_id}")
    except ProviderUnavailable:
        raise
    except ProviderError as exc:
        async with transaction() as session:
            await RentalService(session=session).fail(job.rental_id, exc.code)
        return
    async with transaction() as session:
        assigned = await RentalService(session=session).assign(job.rental_id, number)
    if not assigned:
        # Failed meanwhile (the job gave up): nobody will use the number.
        await release_at_provider(provider, ReleaseAtProvider(rental_id=job.rental_id, provider_id=number.provider_id))


async def give_up(transaction: Transaction, job: AcquireRental) -> None:
    """Every attempt to rent the number failed (the provider stayed unavailable): fail and refund, once."""
    async with transaction() as session:
        if await RentalService(session=session).fail(job.rental_id, "provider_unavailable"):
            logger.warning("rental_acquire_gave_up", rental_id=str(job.rental_id))


async def poll(transaction: Transaction, provider: SmsProvider, job: PollRentalMessages) -> bool:
    """Record the number's new messages; True while the rental is active (the caller polls again later)."""
    async with transaction() as session:
        rental = await RentalService(session=session).load(job.rental_id)
        if rental is None or rental.provider_id is None or rental.status != RentalStatus.ACTIVE.value:
            return False
        provider_id = rental.provider_id
    messages: list[ProviderMessage] = []
    try:
        messages = await provider.messages(provider_id, ReservationKind.RENTAL)
    except ProviderError as exc:
        logger.warning("rental_poll_failed", rental_id=str(job.rental_id), error=exc.code)
    async with transaction() as session:
        service = RentalService(session=session)
        await service.record_messages(job.rental_id, messages)
        current = await service.load(job.rental_id)
    return current is not None and current.status == RentalStatus.ACTIVE.value


async def extend_at_provider(transaction: Transaction, provider: SmsProvider, job: ExtendAtProvider) -> None:
    """Extend at the provider what the customer already paid for, then bring the rental's end in line with the
    provider's. Never retried blindly (a retry after an unclear failure would pay the provider twice): a failure
    is logged for an operator."""
    try:
        extension = await provider.extend(job.provider_id, job.days)
    except ProviderError as exc:
        logger.error("rental_provider_extend_failed", rental_id=str(job.rental_id), error=exc.code)
        return
    logger.info("rental_provider_extended", rental_id=str(job.rental_id), ends_at=extension.expires_at.isoformat())
    if job.ends_at is None:
        return  # requested before jobs carried our end: nothing to compare with
    async with transaction() as session:
        await RentalService(session=session).reconcile_end(job.rental_id, job.ends_at, extension.expires_at)


async def release_at_provider(provider: SmsProvider, job: ReleaseAtProvider) -> None:
    """Give the number back; a provider that refuses simply lets it run out."""
    try:
        await provider.release(job.provider_id)
    except ProviderRejected as exc:
        logger.info("rental_provider_release_refused", rental_id=str(job.rental_id), error=exc.code)
