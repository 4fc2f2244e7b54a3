"""Starting and checking a top-up: Paystack is called between short transactions, never inside one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.domain.billing.errors import (
    AmountOutOfRange,
    DuplicateReference,
    PaystackBadResponse,
    PaystackNotConfigured,
    PaystackRefused,
    PaystackUnavailable,
    UnsupportedCurrency,
)
from namaskah.domain.billing.models import Topup, TopupStatus
from namaskah.domain.billing.paystack import PaystackClient
from namaskah.domain.billing.paystack_schemas import InitializeRequest, Transaction
from namaskah.domain.billing.service import TopupService
from namaskah.lib.logging import get_logger
from namaskah.settings import Settings

logger = get_logger(__name__)

UnitOfWork = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class Checkout:
    def __init__(self, transaction: UnitOfWork, paystack: PaystackClient, settings: Settings) -> None:
        self._transaction = transaction
        self._paystack = paystack
        self._settings = settings

    def _topups(self, session: AsyncSession) -> TopupService:
        return TopupService(session=session, settings=self._settings)

    def check(self, amount: int, currency: str) -> str:
        """The currency as stored; 422 for an amount outside the limits or a currency we do not take."""
        settings, currency = self._settings, currency.upper()
        if not settings.paystack_key:
            raise PaystackNotConfigured("PAYSTACK_SECRET_KEY is not set: top-ups are off")
        accepted = [c.strip().upper() for c in settings.topup_currencies.split(",") if c.strip()]
        if currency not in accepted:
            raise UnsupportedCurrency(f"Top-ups are in {', '.join(accepted)}, not {currency}")
        if not settings.topup_min_amount <= amount <= settings.topup_max_amount:
            raise AmountOutOfRange(
                f"A top-up is between {settings.topup_min_amount} and {settings.topup_max_amount} minor units"
            )
        return currency

    async def start(self, user_id: uuid.UUID, email: str, amount: int, currency: str) -> Topup:
        """Commit the top-up first (status initializing), then initialize at Paystack, then store its checkout.
        Committing first means a payment can never exist at Paystack without our row to credit: the webhook of a
        customer who pays before our last step still finds the top-up. A failed initialize leaves the row failed
        with the reason and answers 503/502 with a code; nothing is ever credited for it unless Paystack later
        reports a success under its reference. The amount is quoted at TAX_POINT and TAX_MODE when the row is made:
        Paystack is asked for `charged_amount`, the wallet will be credited `amount`."""
        currency = self.check(amount, currency)
        async with self._transaction() as session:
            topup = await self._topups(session).open(user_id, amount, currency)
        request = InitializeRequest(
            email=email,
            amount=topup.charged_amount,  # the credits plus any tax on top: what settling checks Paystack reports
            currency=currency,
            reference=topup.reference,
            metadata={"user_id": str(user_id), "topup_id": str(topup.id)},
        )
        try:
            data = await self._paystack.initialize(request)
            if data.reference != topup.reference:
                raise PaystackBadResponse("Paystack answered for another reference")
        except DuplicateReference:
            await self._lost_answer(topup)
            raise PaystackUnavailable("Paystack did not answer in time; start a new top-up") from None
        except (PaystackUnavailable, PaystackRefused, PaystackBadResponse) as exc:
            async with self._transaction() as session:
                await self._topups(session).failed_to_open(topup.id, f"{exc.code}: {exc.detail}")
            raise
        async with self._transaction() as session:
            opened = await self._topups(session).opened(topup.id, data)
        if opened.status == TopupStatus.FAILED.value:
            # The stuck sweep failed it before this answer came (the final state its owner already sees).
            raise PaystackUnavailable("Paystack answered too late; start a new top-up")
        return opened

    async def _lost_answer(self, topup: Topup) -> None:
        """Our initialize went through but its answer (the checkout URL) was lost, so a repeat met our own
        reference. Verify says what Paystack holds; the customer never saw a URL for it, so the top-up fails
        unless that answer shows it paid."""
        report = await self._safe_verify(topup.reference)
        async with self._transaction() as session:
            service = self._topups(session)
            if report is not None:
                await service.settle(report, via="verify")
            await service.failed_to_open(topup.id, "initialize answer lost; the checkout URL is unknown")

    async def refresh(self, user_id: uuid.UUID, reference: str) -> Topup:
        """The caller's top-up (404 for anyone else's), verified with Paystack while it is pending."""
        async with self._transaction() as session:
            topup = await self._topups(session).owned(reference, user_id)
        if topup.status != TopupStatus.PENDING.value or not self._settings.paystack_key:
            return topup
        report = await self._safe_verify(reference)
        if report is None:
            return topup
        async with self._transaction() as session:
            service = self._topups(session)
            await service.settle(report, via="verify")
            return await service.owned(reference, user_id)

    async def _safe_verify(self, reference: str) -> Transaction | None:
        """Verify's answer, or None when Paystack knows nothing or can not answer now (the stored state stands; the
        webhook or the next read settles it)."""
        try:
            return await self._paystack.verify(reference)
        except (PaystackUnavailable, PaystackRefused, PaystackBadResponse) as exc:
            logger.warning("topup_verify_failed", reference=reference, error=exc.code)
            return None
