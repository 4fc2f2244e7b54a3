"""The life of a delivery: claimed for an attempt (a lease, so one attempt runs at a time), finished with the
attempt's result (stored, then succeeded, retried later or given up), replayed, or found overdue by the sweep.
A run of failures long enough disables the endpoint and mails its owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from namaskah.db.session import plain_session
from namaskah.domain.accounts.models import User
from namaskah.domain.webhooks.errors import (
    WebhookDeliveryInProgress,
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
    WebhookEndpointNotFound,
)
from namaskah.domain.webhooks.jobs import DeliverWebhook
from namaskah.domain.webhooks.mail import endpoint_disabled_mail
from namaskah.domain.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    webhook_message_id,
)
from namaskah.domain.webhooks.retries import RetryPolicy, next_retry
from namaskah.domain.webhooks.sender import AttemptResult
from namaskah.domain.webhooks.service import require_webhooks_tier
from namaskah.lib.logging import get_logger
from namaskah.lib.mail import SendMail
from namaskah.lib.outbox.service import OutboxService
from namaskah.settings import Settings

logger = get_logger(__name__)

_D, _E = WebhookDelivery, WebhookEndpoint
PENDING, SUCCEEDED, FAILED = (s.value for s in DeliveryStatus)
# A delayed message may arrive a little before the time the database holds (clocks of two machines).
EARLY = timedelta(seconds=5)
# The lease covers the HTTP timeout plus the two short transactions around it. Short, because a worker killed
# mid-attempt leaves its delivery held until the lease ends: that is how long a partner waits after a crash.
LEASE_MARGIN = 15.0
INTERRUPTED = "interrupted: no answer was recorded before the attempt's lease ran out (its worker stopped)"


@dataclass(frozen=True, slots=True)
class DeliveryRules:
    retry: RetryPolicy
    lease: timedelta  # longer than any attempt takes; past it a crashed attempt's delivery is due again
    disable_after_failures: int
    disable_after: timedelta  # ...and failing without a success for at least this long
    secret_key: str  # seals the mail to the owner
    public_base_url: str  # where the mail's link points

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryRules:
        return cls(
            retry=RetryPolicy(
                base_delay=settings.webhook_retry_base_delay,
                max_delay=settings.webhook_retry_max_delay,
                window=float(settings.webhook_retry_window),
            ),
            lease=timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN),
            disable_after_failures=settings.webhook_disable_after_failures,
            disable_after=timedelta(seconds=settings.webhook_disable_after),
            secret_key=settings.secret_key,
            public_base_url=settings.public_base_url,
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """One attempt's right to send: `number` fences it (a later claim has a higher number)."""

    delivery_id: uuid.UUID
    number: int
    endpoint_id: uuid.UUID
    url: str
    secret: str = field(repr=False)  # never in a log line or a traceback's message
    body: str

    @property
    def webhook_id(self) -> str:
        return webhook_message_id(self.delivery_id)


class WebhookDeliveryRepository(SQLAlchemyAsyncRepository[WebhookDelivery]):
    model_type = WebhookDelivery


class WebhookDeliveryService(SQLAlchemyAsyncRepositoryService[WebhookDelivery, WebhookDeliveryRepository]):
    repository_type = WebhookDeliveryRepository

    def __init__(self, *, rules: DeliveryRules | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rules = rules

    @property
    def _session(self) -> AsyncSession:
        return plain_session(self.repository.session)

    def _rules(self) -> DeliveryRules:
        if self.rules is None:
            raise RuntimeError("sending deliveries needs DeliveryRules")
        return self.rules

    # --- the worker ---------------------------------------------------------------------------------------

    async def claim(self, delivery_id: uuid.UUID, now: datetime) -> Claim | None:
        """Take the delivery for one attempt if it is due and nobody is sending it; None otherwise (a duplicate or
        early message, a finished or deleted delivery). A disabled endpoint's delivery is given up here."""
        row = (
            await self._session.execute(
                update(_D)
                .where(
                    _D.id == delivery_id,
                    _D.status == PENDING,
                    _D.next_attempt_at <= now + EARLY,
                    or_(_D.lease_until.is_(None), _D.lease_until <= now),
                )
                .values(attempts=_D.attempts + 1, lease_until=now + self._rules().lease, updated_at=now)
                .returning(_D.attempts, _D.endpoint_id, _D.event_id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is None:
            return None
        number, endpoint_id, event_id = row
        if number > 1:
            await self._note_interrupted(delivery_id, number, now)
        endpoint = await self._session.get(_E, endpoint_id, populate_existing=True)
        if endpoint is None or not endpoint.enabled:
            await self._set(delivery_id, status=FAILED, lease_until=None, last_error="endpoint_disabled", now=now)
            return None
        body = await self._session.scalar(select(WebhookEvent.body).where(WebhookEvent.id == event_id))
        if body is None:
            raise RuntimeError(f"delivery {delivery_id} has no event")
        return Claim(
            delivery_id=delivery_id, number=number, endpoint_id=endpoint_id, url=endpoint.url, secret=endpoint.secret,
            body=body,
        )  # fmt: skip

    async def held_until(self, delivery_id: uuid.UUID, now: datetime) -> datetime | None:
        """When the lease of a pending delivery another attempt holds ends; None if nobody holds it. A job that
        found its delivery held comes back then: the holder may be a worker killed mid-attempt."""
        return await self._session.scalar(
            select(_D.lease_until).where(_D.id == delivery_id, _D.status == PENDING, _D.lease_until > now)
        )

    async def _note_interrupted(self, delivery_id: uuid.UUID, number: int, now: datetime) -> None:
        """Store the attempts before `number` that never recorded an answer, so the history shows every attempt."""
        recorded = await self._session.scalar(
            select(func.coalesce(func.max(WebhookAttempt.number), 0)).where(WebhookAttempt.delivery_id == delivery_id)
        )
        for lost in range(int(recorded or 0) + 1, number):
            self._session.add(
                WebhookAttempt(
                    id=uuid7(), delivery_id=delivery_id, number=lost, started_at=now, duration_ms=0,
                    succeeded=False, error=INTERRUPTED,
                )
            )  # fmt: skip
            logger.warning("webhook_attempt_interrupted", delivery_id=str(delivery_id), attempt=lost)

    async def finish(self, claim: Claim, result: AttemptResult, now: datetime, rand: float) -> datetime | None:
        """Store the attempt and move the delivery on; the time of the next attempt, or None when there is none
        (succeeded, given up, deleted meanwhile, or another attempt holds the delivery now)."""
        current = (
            await self._session.execute(
                select(_D.attempts, _D.failures, _D.series_started_at)
                .where(_D.id == claim.delivery_id)
                .with_for_update()
            )
        ).one_or_none()
        if current is None:
            return None  # the endpoint was deleted while we were sending
        self._session.add(
            WebhookAttempt(
                id=uuid7(),
                delivery_id=claim.delivery_id,
                number=claim.number,
                started_at=result.started_at,
                duration_ms=result.duration_ms,
                status_code=result.status_code,
                succeeded=result.succeeded,
                error=result.error,
                response_body=result.response_body,
            )
        )
        logger.info(
            "webhook_attempt",
            delivery_id=str(claim.delivery_id),
            attempt=claim.number,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            succeeded=result.succeeded,
            error=result.error.partition(":")[0] if result.error else None,
        )
        await self._note_health(claim.endpoint_id, succeeded=result.succeeded, now=now)
        if current.attempts != claim.number:
            return None  # our lease ran out and a later attempt owns the delivery: it decides
        outcome = {"last_status_code": result.status_code, "last_error": result.error, "lease_until": None}
        if result.succeeded:
            await self._set(claim.delivery_id, status=SUCCEEDED, failures=0, delivered_at=now, now=now, **outcome)
            return None
        failures = current.failures + 1
        elapsed = (now - current.series_started_at).total_seconds()
        delay = next_retry(self._rules().retry, failures, elapsed, rand)
        if delay is None:
            await self._set(claim.delivery_id, status=FAILED, failures=failures, now=now, **outcome)
            logger.warning("webhook_delivery_gave_up", delivery_id=str(claim.delivery_id), attempts=claim.number)
            return None
        next_at = now + timedelta(seconds=delay)
        await self._set(claim.delivery_id, failures=failures, next_attempt_at=next_at, now=now, **outcome)
        return next_at

    async def _note_health(self, endpoint_id: uuid.UUID, *, succeeded: bool, now: datetime) -> None:
        """Keep the endpoint's run of failures; at the threshold, disable it (once) and mail its owner."""
        if succeeded:
            await self._session.execute(
                update(_E)
                .where(_E.id == endpoint_id, or_(_E.consecutive_failures > 0, _E.failing_since.is_not(None)))
                .values(consecutive_failures=0, failing_since=None)
                .execution_options(synchronize_session=False)
            )
            return
        row = (
            await self._session.execute(
                update(_E)
                .where(_E.id == endpoint_id)
                .values(
                    consecutive_failures=_E.consecutive_failures + 1,
                    failing_since=func.coalesce(_E.failing_since, literal(now, _E.failing_since.type)),
                )
                .returning(_E.consecutive_failures, _E.failing_since, _E.enabled)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is None or not row.enabled:
            return
        rules = self._rules()
        if row.consecutive_failures < rules.disable_after_failures or now - row.failing_since < rules.disable_after:
            return
        disabled = (
            await self._session.execute(
                update(_E)
                .where(_E.id == endpoint_id, _E.enabled.is_(True))
                .values(enabled=False, disabled_at=now, updated_at=now)
                .returning(_E.user_id, _E.url)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if disabled is None:
            return  # a concurrent failure disabled it first, and mailed
        email = await self._session.scalar(select(User.email).where(User.id == disabled.user_id))
        if email is not None:
            mail = endpoint_disabled_mail(
                email,
                endpoint_id=endpoint_id,
                url=disabled.url,
                failing_since=row.failing_since,
                public_base_url=rules.public_base_url,
            )
            job = SendMail.seal(
                mail, purpose="webhook_endpoint_disabled", user_id=disabled.user_id, secret_key=rules.secret_key
            )
            await OutboxService(session=self._session).request(job)
        logger.warning("webhook_endpoint_disabled", endpoint_id=str(endpoint_id), failures=row.consecutive_failures)

    # --- the API and the sweep ----------------------------------------------------------------------------

    async def get_for(self, user_id: uuid.UUID, delivery_id: uuid.UUID) -> tuple[WebhookDelivery, WebhookEndpoint]:
        """The caller's delivery (through its endpoint); another user's is as missing as one that does not exist."""
        row = (
            await self._session.execute(
                select(_D, _E)
                .join(_E, _E.id == _D.endpoint_id)
                .where(_D.id == delivery_id, _E.user_id == user_id)
                .execution_options(populate_existing=True)
            )
        ).one_or_none()
        if row is None:
            raise WebhookDeliveryNotFound(f"No webhook delivery {delivery_id}")
        return row[0], row[1]

    async def list_for(
        self, user_id: uuid.UUID, endpoint_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[list[tuple[WebhookDelivery, str, list[WebhookAttempt]]], int]:
        """The deliveries of one of the caller's endpoints, newest first, each with its event's type and its
        attempts in order; another user's endpoint is 404."""
        owner = await self._session.scalar(select(_E.user_id).where(_E.id == endpoint_id))
        if owner != user_id:
            raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id}")
        rows = (
            (
                await self._session.execute(
                    select(_D, WebhookEvent.type)
                    .join(WebhookEvent, WebhookEvent.id == _D.event_id)
                    .where(_D.endpoint_id == endpoint_id)
                    .order_by(_D.id.desc())
                    .limit(limit)
                    .offset(offset)
                    .execution_options(populate_existing=True)
                )
            )
            .tuples()
            .all()
        )
        attempts: dict[uuid.UUID, list[WebhookAttempt]] = {delivery.id: [] for delivery, _ in rows}
        if attempts:
            found = await self._session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                .order_by(WebhookAttempt.number, WebhookAttempt.id)
            )
            for attempt in found:
                attempts[attempt.delivery_id].append(attempt)
        total = await self._session.scalar(select(func.count()).select_from(_D).where(_D.endpoint_id == endpoint_id))
        return [(delivery, kind, attempts[delivery.id]) for delivery, kind in rows], total or 0

    async def replay(self, user_id: uuid.UUID, tier: str, delivery_id: uuid.UUID, now: datetime) -> WebhookDelivery:
        """Send the delivery again (same body, same `webhook-id`) with a fresh retry schedule, whatever it ended as;
        409 while an attempt of it is in flight or its endpoint is disabled."""
        await require_webhooks_tier(self._session, tier)
        _, endpoint = await self.get_for(user_id, delivery_id)
        if not endpoint.enabled:
            raise WebhookEndpointDisabled("Enable the endpoint again before replaying its deliveries")
        moved = (
            await self._session.execute(
                update(_D)
                .where(_D.id == delivery_id, or_(_D.lease_until.is_(None), _D.lease_until <= now))
                .values(status=PENDING, failures=0, series_started_at=now, next_attempt_at=now, updated_at=now)
                .returning(_D.id)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if moved is None:
            raise WebhookDeliveryInProgress("An attempt of this delivery is in flight; replay it once it ended")
        await OutboxService(session=self._session).request(DeliverWebhook(delivery_id=delivery_id))
        logger.info("webhook_delivery_replayed", delivery_id=str(delivery_id))
        return (await self.get_for(user_id, delivery_id))[0]

    async def request_overdue(self, now: datetime, *, late_by: timedelta, limit: int) -> int:
        """Request a job again for pending deliveries due `late_by` ago that nobody is sending (their message was
        lost, or its re-send failed); each is then not overdue again for another `late_by`."""
        ids = (
            await self._session.scalars(
                select(_D.id)
                .where(
                    _D.status == PENDING,
                    _D.next_attempt_at <= now - late_by,
                    or_(_D.lease_until.is_(None), _D.lease_until <= now),
                )
                .order_by(_D.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not ids:
            return 0
        await self._session.execute(
            update(_D).where(_D.id.in_(ids)).values(next_attempt_at=now).execution_options(synchronize_session=False)
        )
        outbox = OutboxService(session=self._session)
        for delivery_id in ids:
            await outbox.request(DeliverWebhook(delivery_id=delivery_id))
        logger.info("webhook_deliveries_swept", count=len(ids))
        return len(ids)

    async def _set(self, delivery_id: uuid.UUID, *, now: datetime, **values: object) -> None:
        await self._session.execute(
            update(_D)
            .where(_D.id == delivery_id)
            .values(updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
