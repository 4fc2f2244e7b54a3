"""TextVerified transport: one pooled httpx client, a cached bearer token, retries with backoff, error mapping."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import msgspec

from namaskah.lib.backoff import full_jitter
from namaskah.lib.logging import get_logger
from namaskah.providers.errors import (
    ProviderAuthFailed,
    ProviderBadResponse,
    ProviderError,
    ProviderNotFound,
    ProviderOutOfStock,
    ProviderPriceExceeded,
    ProviderRejected,
    ProviderUnavailable,
)
from namaskah.providers.textverified_schemas import BearerToken, Error, Link, encoder
from namaskah.settings import Settings, SettingsError

logger = get_logger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

AUTH_PATH = "/api/pub/v2/auth"
_IDEMPOTENCY_CONFLICT = "IdempotencyConflict"  # the first request with that key is still running: wait, repeat
# Failures where the request surely never reached the provider, so even a non-repeatable one may be sent again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Credentials:
    """The username and API key exchanged for bearer tokens; the key never shows in a repr, log line or error."""

    __slots__ = ("_api_key", "username")

    def __init__(self, username: str, api_key: str) -> None:
        self.username = username
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"X-API-USERNAME": self.username, "X-API-KEY": self._api_key}

    def __repr__(self) -> str:
        return "Credentials(username=<hidden>, api_key=<hidden>)"


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0


class _Token(msgspec.Struct, frozen=True):
    value: str
    refresh_at: float  # on the client's monotonic clock


class TextVerifiedClient:
    """Sends one logical request: authenticates, repeats what is safe to repeat, and turns failures into
    ProviderErrors. Answers with an expected status are returned as they are; the adapter reads them."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        credentials: Credentials,
        *,
        retry: RetryPolicy | None = None,
        refresh_margin: float = 60.0,
        owns_client: bool = True,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._retry = retry or RetryPolicy()
        self._refresh_margin = refresh_margin
        self._owns_client = owns_client
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()  # one token request at a time, however many calls find it stale

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> TextVerifiedClient:
        if not settings.textverified_username:
            raise SettingsError("invalid setting TEXTVERIFIED_USERNAME: is required when SMS_PROVIDER=textverified")
        if not settings.textverified_api_key:
            raise SettingsError("invalid setting TEXTVERIFIED_API_KEY: is required when SMS_PROVIDER=textverified")
        client = httpx.AsyncClient(
            base_url=settings.textverified_base_url,
            timeout=httpx.Timeout(
                connect=settings.textverified_connect_timeout,
                read=settings.textverified_read_timeout,
                write=settings.textverified_write_timeout,
                pool=settings.textverified_pool_timeout,
            ),
            limits=httpx.Limits(
                max_connections=settings.textverified_max_connections,
                max_keepalive_connections=settings.textverified_max_connections,
            ),
            headers={"Accept": "application/json", "User-Agent": "namaskah-sms"},
            follow_redirects=False,  # a redirect would carry our bearer token wherever it points
            transport=transport,
        )
        retry = RetryPolicy(
            max_retries=settings.textverified_max_retries,
            base_delay=settings.textverified_retry_base_delay,
            max_delay=settings.textverified_retry_max_delay,
        )
        credentials = Credentials(settings.textverified_username, settings.textverified_api_key)
        margin = settings.textverified_token_refresh_margin
        return cls(client, credentials, retry=retry, refresh_margin=margin, **options)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- requests -------------------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        expect: int,
        operation: str,
        body: msgspec.Struct | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool = True,
    ) -> httpx.Response:
        """Send with a bearer token (renewed once on a 401) and return the answer if it has the `expect` status.

        `repeatable=False` marks a request the provider would carry out twice if it were repeated after an
        unclear failure: it is then sent again only after a 429 or when it surely never left."""
        refreshed = False
        while True:
            token = await self._bearer()
            response = await self._send(
                method,
                url,
                operation=operation,
                body=body,
                params=params,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                repeatable=repeatable,
            )
            if response.status_code == 401 and not refreshed:
                # Revoked or expired early: one new token, then the same request again.
                refreshed = True
                self._drop_token(token)
                logger.info("textverified_token_refused", operation=operation)
                continue
            if response.status_code != expect:
                raise self._failure(response, operation)
            return response

    async def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        operation: str,
        body: msgspec.Struct | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool = True,
    ) -> httpx.Response:
        """One request, repeated on 429/5xx and network errors with exponential backoff and full jitter."""
        content = encoder.encode(body) if body is not None else None
        send_headers = dict(headers or {})
        if content is not None:
            send_headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.request(method, url, content=content, params=params, headers=send_headers)
            except httpx.RequestError as exc:  # transport failures, and bodies that could not be decoded
                if not (repeatable or isinstance(exc, _NOT_SENT)) or attempt >= self._retry.max_retries:
                    logger.error("textverified_unreachable", operation=operation, error=type(exc).__name__)
                    raise ProviderUnavailable("The number provider could not be reached.") from exc
                reason = type(exc).__name__
            else:
                if not self._should_retry(response, repeatable):
                    return response
                retry_after = _retry_after(response)
                reason = str(response.status_code)
                if attempt >= self._retry.max_retries or (
                    retry_after is not None and retry_after > self._retry.max_delay
                ):
                    logger.error("textverified_gave_up", operation=operation, status=response.status_code)
                    hint = math.ceil(retry_after) if retry_after is not None else None
                    raise ProviderUnavailable("The number provider is busy; try again shortly.", retry_after=hint)
            delay = retry_after if retry_after is not None else self.backoff(attempt)
            logger.warning("textverified_retry", operation=operation, reason=reason, attempt=attempt + 1, delay=delay)
            await self._sleep(delay)
            attempt += 1

    def _should_retry(self, response: httpx.Response, repeatable: bool) -> bool:
        status = response.status_code
        if status == 429:
            return True  # refused before any work: safe to repeat even for a non-repeatable request
        if not repeatable:
            return False
        return status >= 500 or (status == 409 and _vendor_error(response).error_code == _IDEMPOTENCY_CONFLICT)

    def backoff(self, attempt: int) -> float:
        return full_jitter(attempt, base_delay=self._retry.base_delay, max_delay=self._retry.max_delay, rng=self._rng)

    async def pause(self, attempt: int) -> None:
        """Wait before polling again for something the provider is still doing."""
        await self._sleep(self.backoff(attempt))

    # --- bearer token ---------------------------------------------------------------------------------------

    async def _bearer(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        async with self._token_lock:
            token = self._token
            if token is None or self._clock() >= token.refresh_at:
                token = self._token = await self._authenticate()
            return token.value

    async def _authenticate(self) -> _Token:
        started = self._clock()
        response = await self._send(
            "POST", AUTH_PATH, operation="authenticate", headers=self._credentials.auth_headers()
        )
        if response.status_code in (401, 403):
            logger.error("textverified_auth_failed", status=response.status_code)
            raise ProviderAuthFailed("The number provider refused our credentials.")
        if response.status_code != 200:
            raise self._failure(response, "authenticate")
        answer = decode(response, BearerToken, "bearer token")
        # `expiresIn` counts from the answer, on the provider's clock as much as ours; measuring it on our monotonic
        # clock from before the request is immune to a skewed host clock (which would misread `expiresAt`).
        # Renew `refresh_margin` early, but never so early that a short-lived token is renewed on every call.
        margin = min(self._refresh_margin, answer.expires_in / 2)
        logger.info("textverified_token_issued", expires_in=answer.expires_in)
        return _Token(answer.token, started + answer.expires_in - margin)

    def _drop_token(self, used: str) -> None:
        # Only the token that was refused: another call may already have replaced it.
        if self._token is not None and self._token.value == used:
            self._token = None

    # --- links and answers ----------------------------------------------------------------------------------

    def resolve(self, href: str) -> httpx.URL:
        """A link from an answer, made absolute; only on the provider's own origin (it will get our token)."""
        base = self._client.base_url
        url = base.join(href)
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            logger.error("textverified_foreign_link", host=url.host)
            raise ProviderBadResponse("The number provider linked to another host.")
        return url

    def location(self, response: httpx.Response, operation: str) -> httpx.URL:
        """Where a 201 points: the Location header, as the document says to follow (the body's link otherwise)."""
        href = response.headers.get("Location")
        if not href and response.content:
            href = decode(response, Link, "created link").href
        if not href:
            logger.error("textverified_no_location", operation=operation)
            raise ProviderBadResponse("The number provider did not say where the created reservation is.")
        return self.resolve(href)

    def _failure(self, response: httpx.Response, operation: str) -> ProviderError:
        vendor = _vendor_error(response)
        logger.warning(
            "textverified_refused",
            operation=operation,
            status=response.status_code,
            vendor_code=vendor.error_code,
            vendor_detail=(vendor.error_description or "")[:200],
        )
        error = _error_for(response.status_code, vendor.error_code, operation)
        if isinstance(error, ProviderAuthFailed) or vendor.error_code in _ACCOUNT_LIMITS:
            # Only an operator can fix these (credentials, balance, stuck verifications).
            logger.error(
                "textverified_needs_operator", operation=operation, code=error.code, vendor_code=vendor.error_code
            )
        return error


# Vendor error codes of a 400 (the document's Mock Error Matrix) with a meaning of their own.
_VENDOR_CODES: dict[str, tuple[type[ProviderError], str]] = {
    "Unavailable": (ProviderOutOfStock, "The number provider has no number for that request now."),
    "PricingFailure": (ProviderPriceExceeded, "The number provider's price is above the limit."),
    # "Not now, for a reason of our account": customers get a 503, operators an error line.
    "InsufficientBalance": (ProviderUnavailable, "The number provider cannot take orders right now."),
    "TooManyUnfinishedVerifications": (ProviderUnavailable, "The number provider cannot take orders right now."),
}
_ACCOUNT_LIMITS = frozenset({"InsufficientBalance", "TooManyUnfinishedVerifications"})


def _error_for(status: int, vendor_code: str | None, operation: str) -> ProviderError:
    if status == 400 and vendor_code in _VENDOR_CODES:
        kind, detail = _VENDOR_CODES[vendor_code]
        return kind(detail, vendor_code=vendor_code)
    if status in (400, 409):
        return ProviderRejected(f"The number provider refused to {operation}.", vendor_code=vendor_code)
    if status in (401, 403):
        return ProviderAuthFailed("The number provider refused our credentials.", vendor_code=vendor_code)
    if status == 404:
        return ProviderNotFound(f"The number provider does not know that reservation ({operation}).")
    if status == 429 or status >= 500:
        return ProviderUnavailable("The number provider is busy; try again shortly.", vendor_code=vendor_code)
    return ProviderBadResponse(f"The number provider answered {status} to {operation}.", vendor_code=vendor_code)


def decode(response: httpx.Response, kind: type[T], what: str) -> T:
    try:
        return msgspec.json.decode(response.content, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        logger.error("textverified_unreadable", what=what, status=response.status_code, error=str(exc))
        raise ProviderBadResponse(f"The number provider sent an unreadable {what}.") from None


def _vendor_error(response: httpx.Response) -> Error:
    """The document's Error body when there is one; an empty one otherwise (most error answers have no body)."""
    if not response.content:
        return Error()
    try:
        return msgspec.json.decode(response.content, type=Error)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Error()


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, given as a number or an HTTP date (RFC 9110)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
