"""Partner endpoints: create (tier flag, SSRF check, a secret shown once), list, show, delete, enable again."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from namaskah.db.base import utcnow
from namaskah.db.service import Service
from namaskah.domain.rentals.errors import FeatureNotInTier
from namaskah.domain.tiers.models import TierPlan
from namaskah.domain.webhooks.errors import TooManyWebhookEndpoints, WebhookEndpointNotFound
from namaskah.domain.webhooks.models import WebhookEndpoint
from namaskah.domain.webhooks.schemas import EndpointCreate
from namaskah.domain.webhooks.ssrf import Resolver, UrlPolicy, check_destination, check_url, system_resolver
from namaskah.lib.logging import get_logger

logger = get_logger(__name__)

MAX_ENDPOINTS = 20  # per user: enough for every environment of an integration, few enough to bound the fan-out
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
_E = WebhookEndpoint


def new_secret() -> str:
    """32 random bytes in base64 behind `whsec_`, the form `standardwebhooks.Webhook` takes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def require_webhooks_tier(session: AsyncSession, tier: str) -> None:
    """403 `feature_not_in_tier` unless the tier has the `webhooks` flag."""
    if not await session.scalar(select(TierPlan.webhooks).where(TierPlan.name == tier)):
        raise FeatureNotInTier(f"The {tier!r} tier does not include webhooks")


class WebhookEndpointRepository(SQLAlchemyAsyncRepository[WebhookEndpoint]):
    model_type = WebhookEndpoint


class WebhookEndpointService(Service[WebhookEndpoint, WebhookEndpointRepository]):
    """A user's endpoints; another user's endpoint is as missing as one that does not exist."""

    repository_type = WebhookEndpointRepository

    def __init__(
        self,
        *,
        policy: UrlPolicy | None = None,
        resolver: Resolver = system_resolver,
        dns_timeout: float = 5.0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.policy = policy or UrlPolicy()
        self.resolver = resolver
        self.dns_timeout = dns_timeout

    async def register(self, user_id: uuid.UUID, tier: str, request: EndpointCreate) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its secret, which is not readable again. The URL's host is resolved now (one DNS
        lookup, bounded by `dns_timeout`) and refused when it points anywhere internal; every delivery checks it
        again, since DNS may change."""
        await require_webhooks_tier(self._session, tier)
        check_url(request.url, self.policy)  # a malformed URL is refused before any lookup
        count = await self._session.scalar(select(func.count()).select_from(_E).where(_E.user_id == user_id))
        if (count or 0) >= MAX_ENDPOINTS:
            raise TooManyWebhookEndpoints(f"An account has at most {MAX_ENDPOINTS} webhook endpoints")
        url = await check_destination(request.url, self.policy, self.resolver, dns_timeout=self.dns_timeout)
        secret = new_secret()
        endpoint = WebhookEndpoint(
            user_id=user_id, url=str(url), events=request.event_names(), secret=secret, enabled=True
        )
        self._session.add(endpoint)
        await self._session.flush()
        logger.info("webhook_endpoint_created", endpoint_id=str(endpoint.id), events=endpoint.events)
        return endpoint, secret

    async def get_for(self, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        query = select(_E).where(_E.id == endpoint_id, _E.user_id == user_id).execution_options(populate_existing=True)
        found = (await self._session.scalars(query)).one_or_none()
        if found is None:
            raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id}")
        return found

    async def list_for(self, user_id: uuid.UUID, *, limit: int, offset: int) -> tuple[Sequence[WebhookEndpoint], int]:
        """Newest first."""
        rows = await self._session.scalars(
            select(_E).where(_E.user_id == user_id).order_by(_E.id.desc()).limit(limit).offset(offset)
        )
        total = await self._session.scalar(select(func.count()).select_from(_E).where(_E.user_id == user_id))
        return rows.all(), total or 0

    async def delete_for(self, user_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        """Its deliveries and their attempts go with it; a delivery job still queued then finds nothing to send."""
        deleted = await self._session.execute(
            delete(_E).where(_E.id == endpoint_id, _E.user_id == user_id).returning(_E.id)
        )
        if deleted.one_or_none() is None:
            raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id}")
        logger.info("webhook_endpoint_deleted", endpoint_id=str(endpoint_id))

    async def enable(self, user_id: uuid.UUID, tier: str, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        """Turn a disabled endpoint on again, with a clean failure record (deliveries given up stay failed; replay
        them). Its URL is checked again first."""
        await require_webhooks_tier(self._session, tier)
        endpoint = await self.get_for(user_id, endpoint_id)
        await check_destination(endpoint.url, self.policy, self.resolver, dns_timeout=self.dns_timeout)
        await self._session.execute(
            update(_E)
            .where(_E.id == endpoint_id)
            .values(enabled=True, disabled_at=None, consecutive_failures=0, failing_since=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        logger.info("webhook_endpoint_enabled", endpoint_id=str(endpoint_id))
        return await self.get_for(user_id, endpoint_id)
