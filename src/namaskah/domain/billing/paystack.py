"""The Paystack API client: a thin typed wrapper over one pooled httpx.AsyncClient (initialize, verify, list), with
explicit timeouts and retries only where repeating the call is safe."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from namaskah.domain.billing.errors import (
    DuplicateReference,
    PaystackBadResponse,
    PaystackRefused,
    PaystackUnavailable,
)
from namaskah.domain.billing.paystack_schemas import (
    ErrorBody,
    InitializeData,
    InitializeRequest,
    InitializeResponse,
    Transaction,
    TransactionListResponse,
    VerifyResponse,
    encoder,
)
from namaskah.lib.backoff import full_jitter
from namaskah.lib.logging import get_logger
from namaskah.settings import Settings

logger = get_logger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# Failures where the request surely never reached Paystack: even a call that is not safe to repeat may go again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_DUPLICATE_CODES = frozenset({"duplicate_reference"})


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0


class PaystackClient:
    """One logical call per method. GETs (verify, list) are repeated on network errors, 429 and 5xx with jittered
    exponential backoff. Initialize creates a transaction, so it is not repeated blindly: it is repeated only under
    the same reference, which Paystack refuses to use twice; the caller turns that refusal (DuplicateReference)
    into a verify. The secret key is in the client's default headers only, never in a log line or an error."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> PaystackClient:
        http = httpx.AsyncClient(
            base_url=settings.paystack_base_url,
            timeout=httpx.Timeout(
                connect=settings.paystack_connect_timeout,
                read=settings.paystack_timeout,
                write=settings.paystack_timeout,
                pool=settings.paystack_connect_timeout,
            ),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
            headers={
                "Authorization": f"Bearer {settings.paystack_key}",
                "Accept": "application/json",
                "User-Agent": "namaskah-sms",
            },
            follow_redirects=False,  # a redirect would carry the secret key wherever it points
            transport=transport,
        )
        retry = RetryPolicy(
            max_retries=settings.paystack_max_retries,
            base_delay=settings.paystack_retry_base_delay,
            max_delay=settings.paystack_retry_max_delay,
        )
        return cls(http, retry=retry, **options)

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the calls ------------------------------------------------------------------------------------------

    async def initialize(self, request: InitializeRequest) -> InitializeData:
        """POST /transaction/initialize. Raises DuplicateReference when Paystack already holds the reference
        (one of our earlier attempts, whose answer was lost, went through)."""
        response = await self._send("POST", "/transaction/initialize", operation="initialize", body=request)
        if response.status_code != 200:
            raise self._failure(response, "initialize")
        return _decode(response, InitializeResponse, "initialize").data

    async def verify(self, reference: str) -> Transaction | None:
        """GET /transaction/verify/{reference}; None when Paystack knows no such transaction (404)."""
        path = f"/transaction/verify/{quote(reference, safe='')}"
        response = await self._send("GET", path, operation="verify")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._failure(response, "verify")
        return _decode(response, VerifyResponse, "verify").data

    async def list_transactions(
        self,
        *,
        page: int = 1,
        per_page: int = 50,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> TransactionListResponse:
        """GET /transaction, one page (for reconciliation)."""
        params: dict[str, str] = {"page": str(page), "per_page": str(per_page)}
        if status is not None:
            params["status"] = status
        if since is not None:
            params["from"] = since.isoformat()
        if until is not None:
            params["to"] = until.isoformat()
        response = await self._send("GET", "/transaction", operation="list", params=params)
        if response.status_code != 200:
            raise self._failure(response, "list")
        return _decode(response, TransactionListResponse, "transaction list")

    # --- sending --------------------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        body: msgspec.Struct | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, repeated on network errors, 429 and 5xx (backoff with full jitter, Retry-After honoured up to
        the policy's cap). A POST is repeated only because it carries its own reference (see the class)."""
        content = encoder.encode(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._http.request(method, path, content=content, params=params, headers=headers)
            except httpx.RequestError as exc:
                reason = type(exc).__name__
                if attempt >= self._retry.max_retries:
                    logger.error("paystack_unreachable", operation=operation, error=reason, attempts=attempt + 1)
                    raise PaystackUnavailable("Paystack could not be reached; try again shortly.") from exc
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                reason, retry_after = str(status), _retry_after(response)
                if attempt >= self._retry.max_retries or (retry_after or 0) > self._retry.max_delay:
                    logger.error("paystack_gave_up", operation=operation, status=status, attempts=attempt + 1)
                    raise PaystackUnavailable("Paystack is busy; try again shortly.")
            delay = retry_after if retry_after is not None else self.backoff(attempt)
            logger.warning("paystack_retry", operation=operation, reason=reason, attempt=attempt + 1, delay=delay)
            await self._sleep(delay)
            attempt += 1

    def backoff(self, attempt: int) -> float:
        return full_jitter(attempt, base_delay=self._retry.base_delay, max_delay=self._retry.max_delay, rng=self._rng)

    def _failure(self, response: httpx.Response, operation: str) -> PaystackRefused:
        vendor = _error_body(response)
        logger.warning(
            "paystack_refused",
            operation=operation,
            status=response.status_code,
            vendor_code=vendor.code,
            vendor_message=vendor.message[:200],
        )
        if response.status_code == 400 and (vendor.code in _DUPLICATE_CODES or "duplicate" in vendor.message.lower()):
            return DuplicateReference("Paystack already holds a transaction under this reference.")
        if response.status_code in (401, 403):
            logger.error("paystack_key_refused", operation=operation, status=response.status_code)
        return PaystackRefused(f"Paystack refused to {operation} ({response.status_code}).", vendor_code=vendor.code)


def _decode(response: httpx.Response, kind: type[T], what: str) -> T:
    try:
        return msgspec.json.decode(response.content, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        logger.error("paystack_unreadable", what=what, status=response.status_code, error=str(exc)[:200])
        raise PaystackBadResponse(f"Paystack sent an unreadable {what} answer.") from None


def _error_body(response: httpx.Response) -> ErrorBody:
    try:
        return msgspec.json.decode(response.content, type=ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ErrorBody()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None
