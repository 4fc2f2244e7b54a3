"""One delivery attempt's database side, for the worker: the claim (a lease, so one attempt runs at a time), the
stored result and what it moves (succeeded, retried later or given up), and the endpoint's run of failures, which
past a threshold disables it and mails its owner. The statements are Core, built once: the worker runs them for
every webhook sent, and the ORM's unit of work has nothing to add to single-row updates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Table, bindparam, func, insert, literal, or_, select, update
from uuid_utils.compat import uuid7

from namaskah.db.service import Service
from namaskah.domain.accounts.models import User
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
from namaskah.lib.logging import get_logger
from namaskah.lib.mail import SendMail
from namaskah.lib.outbox.service import OutboxService
from namaskah.settings import Settings

logger = get_logger(__name__)

_DELIVERIES: Table = WebhookDelivery.__table__  # type: ignore[assignment]
_ENDPOINTS: Table = WebhookEndpoint.__table__  # type: ignore[assignment]
_ATTEMPTS: Table = WebhookAttempt.__table__  # type: ignore[assignment]
_EVENTS: Table = WebhookEvent.__table__  # type: ignore[assignment]
_D, _E = _DELIVERIES.c, _ENDPOINTS.c
PENDING, SUCCEEDED, FAILED = (s.value for s in DeliveryStatus)
# A delayed message may arrive a little before the time the database holds (clocks of two machines).
EARLY = timedelta(seconds=5)
# The lease covers the HTTP timeout plus the two short transactions around it. Short, because a worker killed
# mid-attempt leaves its delivery held until the lease ends: that is how long a partner waits after a crash.
LEASE_MARGIN = 15.0
INTERRUPTED = "interrupted: no answer was recorded before the attempt's lease ran out (its worker stopped)"

_at = bindparam("at", type_=_D.updated_at.type)
_CLAIM = (
    update(_DELIVERIES)
    .where(
        _D.id == bindparam("delivery_id"),
        _D.status == PENDING,
        _D.next_attempt_at <= bindparam("due", type_=_D.next_attempt_at.type),
        or_(_D.lease_until.is_(None), _D.lease_until <= _at),
    )
    .values(attempts=_D.attempts + 1, lease_until=bindparam("held_until", type_=_D.lease_until.type), updated_at=_at)
    .returning(_D.attempts)
)
_TARGET = (
    select(_D.endpoint_id, _E.url, _E.secret, _E.enabled, _EVENTS.c.body)
    .select_from(_DELIVERIES.join(_ENDPOINTS, _E.id == _D.endpoint_id).join(_EVENTS, _EVENTS.c.id == _D.event_id))
    .where(_D.id == bindparam("delivery_id"))
)
_HELD_UNTIL = select(_D.lease_until).where(
    _D.id == bindparam("delivery_id"), _D.status == PENDING, _D.lease_until > _at
)
_RECORDED = select(func.coalesce(func.max(_ATTEMPTS.c.number), 0)).where(
    _ATTEMPTS.c.delivery_id == bindparam("delivery_id")
)
_INSERT_ATTEMPT = insert(_ATTEMPTS)
# Both only while the attempt still owns the delivery (a later claim has a higher number).
_OWNED = (_D.id == bindparam("delivery_id"), _D.attempts == bindparam("number"))
_OUTCOME: dict[str, Any] = {
    "last_status_code": bindparam("status_code"),
    "last_error": bindparam("error"),
    "lease_until": None,
}
_SUCCEEDED = (
    update(_DELIVERIES)
    .where(*_OWNED)
    .values(status=SUCCEEDED, failures=0, delivered_at=_at, updated_at=_at, **_OUTCOME)
    .returning(_D.id)
)
_FAILED_ONCE = (
    update(_DELIVERIES)
    .where(*_OWNED)
    .values(failures=_D.failures + 1, updated_at=_at, **_OUTCOME)
    .returning(_D.failures, _D.series_started_at)
)
_EXISTS = select(_D.id).where(_D.id == bindparam("delivery_id"))
_HEALTHY = (
    update(_ENDPOINTS)
    .where(_E.id == bindparam("endpoint_id"), or_(_E.consecutive_failures > 0, _E.failing_since.is_not(None)))
    .values(consecutive_failures=0, failing_since=None)
)


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


class WebhookAttemptRepository(SQLAlchemyAsyncRepository[WebhookAttempt]):
    model_type = WebhookAttempt


class WebhookAttemptService(Service[WebhookAttempt, WebhookAttemptRepository]):
    repository_type = WebhookAttemptRepository

    def __init__(self, *, rules: DeliveryRules, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rules = rules

    async def claim(self, delivery_id: uuid.UUID, now: datetime) -> Claim | None:
        """Take the delivery for one attempt if it is due and nobody is sending it; None otherwise (a duplicate or
        early message, a finished or deleted delivery). A disabled endpoint's delivery is given up here."""
        held_until = now + self.rules.lease
        claimed = await self._session.execute(
            _CLAIM, {"delivery_id": delivery_id, "due": now + EARLY, "at": now, "held_until": held_until}
        )
        number = claimed.scalar_one_or_none()
        if number is None:
            return None
        if number > 1:
            await self._note_interrupted(delivery_id, number, now)
        target = (await self._session.execute(_TARGET, {"delivery_id": delivery_id})).one()
        if not target.enabled:
            await self._set(delivery_id, now, status=FAILED, lease_until=None, last_error="endpoint_disabled")
            return None
        return Claim(
            delivery_id=delivery_id, number=number, endpoint_id=target.endpoint_id, url=target.url,
            secret=target.secret, body=target.body,
        )  # fmt: skip

    async def held_until(self, delivery_id: uuid.UUID, now: datetime) -> datetime | None:
        """When the lease of a pending delivery another attempt holds ends; None if nobody holds it. A job that
        found its delivery held comes back then: the holder may be a worker killed mid-attempt."""
        held: datetime | None = await self._session.scalar(_HELD_UNTIL, {"delivery_id": delivery_id, "at": now})
        return held

    async def finish(self, claim: Claim, result: AttemptResult, now: datetime, rand: float) -> datetime | None:
        """Store the attempt and move the delivery on; the time of the next attempt, or None when there is none
        (succeeded, given up, deleted meanwhile, or another attempt holds the delivery now)."""
        params = {
            "delivery_id": claim.delivery_id, "number": claim.number, "at": now, "status_code": result.status_code,
            "error": result.error,
        }  # fmt: skip
        moved = await self._session.execute(_SUCCEEDED if result.succeeded else _FAILED_ONCE, params)
        current = moved.one_or_none()
        if current is None and await self._session.scalar(_EXISTS, params) is None:
            return None  # the endpoint was deleted while we were sending
        await self._session.execute(_INSERT_ATTEMPT, _attempt_row(claim.delivery_id, claim.number, result))
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
        if current is None or result.succeeded:
            return None  # done, or our lease ran out and a later attempt owns the delivery: it decides
        failures, series_started_at = current
        delay = next_retry(self.rules.retry, failures, (now - series_started_at).total_seconds(), rand)
        if delay is None:
            await self._set(claim.delivery_id, now, status=FAILED)
            logger.warning("webhook_delivery_gave_up", delivery_id=str(claim.delivery_id), attempts=claim.number)
            return None
        next_at = now + timedelta(seconds=delay)
        await self._set(claim.delivery_id, now, next_attempt_at=next_at)
        return next_at

    async def _note_interrupted(self, delivery_id: uuid.UUID, number: int, now: datetime) -> None:
        """Store the attempts before `number` that never recorded an answer, so the history shows every attempt."""
        recorded = int(await self._session.scalar(_RECORDED, {"delivery_id": delivery_id}) or 0)
        for lost in range(recorded + 1, number):
            lost_result = AttemptResult(started_at=now, duration_ms=0, error=INTERRUPTED)
            await self._session.execute(_INSERT_ATTEMPT, _attempt_row(delivery_id, lost, lost_result))
            logger.warning("webhook_attempt_interrupted", delivery_id=str(delivery_id), attempt=lost)

    async def _note_health(self, endpoint_id: uuid.UUID, *, succeeded: bool, now: datetime) -> None:
        """Keep the endpoint's run of failures; at the threshold, disable it (once) and mail its owner."""
        if succeeded:
            await self._session.execute(_HEALTHY, {"endpoint_id": endpoint_id})
            return
        row = (
            await self._session.execute(
                update(WebhookEndpoint)
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
        rules = self.rules
        if row.consecutive_failures < rules.disable_after_failures or now - row.failing_since < rules.disable_after:
            return
        disabled = (
            await self._session.execute(
                update(WebhookEndpoint)
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

    async def _set(self, delivery_id: uuid.UUID, now: datetime, **values: object) -> None:
        statement = update(WebhookDelivery).where(_D.id == delivery_id).values(updated_at=now, **values)
        await self._session.execute(statement.execution_options(synchronize_session=False))


def _attempt_row(delivery_id: uuid.UUID, number: int, result: AttemptResult) -> dict[str, Any]:
    return {
        "id": uuid7(), "delivery_id": delivery_id, "number": number, "started_at": result.started_at,
        "duration_ms": result.duration_ms, "status_code": result.status_code, "succeeded": result.succeeded,
        "error": result.error, "response_body": result.response_body,
    }  # fmt: skip
