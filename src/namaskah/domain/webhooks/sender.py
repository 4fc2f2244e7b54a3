"""Sending one webhook: signed per Standard Webhooks, over one pooled httpx client whose connections go through the
SSRF guard, with explicit timeouts and without following redirects."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import datetime

import certifi
import httpcore
import httpx
from standardwebhooks import Webhook

from namaskah import __version__
from namaskah.domain.webhooks.ssrf import GuardedNetworkBackend, Resolver, UrlPolicy, check_url, system_resolver
from namaskah.lib.errors import DomainError
from namaskah.settings import Settings

USER_AGENT = f"Namaskah-Webhooks/{__version__}"
RESPONSE_KEPT = 1024  # characters of an answer's body stored with its attempt
_READ_AT_MOST = 16 * 1024  # bytes read of an answer's body; a partner's 1 GB error page is not ours to download
ERROR_MAX = 200


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt got: an HTTP status (and the start of the body), or the error that prevented one."""

    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def url_policy(settings: Settings) -> UrlPolicy:
    return UrlPolicy(allow_http=settings.webhook_allow_http, allow_private=settings.webhook_allow_private_hosts)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool whose TCP connections go through `GuardedNetworkBackend`."""

    def __init__(
        self, backend: GuardedNetworkBackend, *, ssl_context: ssl.SSLContext | None = None, max_connections: int = 50
    ) -> None:
        super().__init__(trust_env=False)
        # httpx has no parameter for httpcore's network backend; `_pool` is what its handle_async_request uses (a
        # test delivers through this transport, so an httpx that renamed it fails there, not in production).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(cafile=certifi.where()),
            max_connections=max_connections,
            max_keepalive_connections=max_connections // 2,
            keepalive_expiry=30.0,
            network_backend=backend,
        )


def build_client(
    settings: Settings, *, resolver: Resolver = system_resolver, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """The client a worker's event loop shares for every delivery. No proxy from the environment: a proxy would
    resolve the host itself, out of the guard's sight."""
    backend = GuardedNetworkBackend(url_policy(settings), resolver)
    return httpx.AsyncClient(
        transport=GuardedTransport(backend, ssl_context=ssl_context),
        timeout=httpx.Timeout(settings.webhook_timeout, connect=settings.webhook_connect_timeout),
        follow_redirects=False,
        trust_env=False,
        # Identity: the body is read raw, so a compressed answer can not inflate in our memory.
        headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
    )


def signed_headers(secret: str, webhook_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: the signature covers id, timestamp and body."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body),
    }


class WebhookSender:
    """One attempt at a URL; never raises for what the partner's side did (that is the attempt's result)."""

    def __init__(self, client: httpx.AsyncClient, policy: UrlPolicy, *, timeout: float) -> None:
        self.client = client
        self.policy = policy
        self.timeout = timeout

    async def send(self, url: str, *, webhook_id: str, body: str, secret: str, now: datetime) -> AttemptResult:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        excerpt: str | None = None
        try:
            check_url(url, self.policy)  # the policy of today, which may be stricter than at creation
            headers = signed_headers(secret, webhook_id, body, now)
            # httpx's timeouts bound each phase; this bounds the whole attempt (a server dripping its answer).
            async with asyncio.timeout(self.timeout):
                async with self.client.stream("POST", url, content=body.encode(), headers=headers) as response:
                    status, excerpt = response.status_code, await _read_some(response)
            if response.is_redirect:
                error = "redirect_not_followed: webhooks do not follow redirects; register the final URL"
        except DomainError as exc:  # the SSRF guard refused the URL or where it resolves now
            error = f"{exc.code}: {exc.detail}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout: no complete answer within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = round((time.perf_counter() - started) * 1000)
        return AttemptResult(
            started_at=now,
            duration_ms=duration_ms,
            status_code=status,
            error=error[:ERROR_MAX] if error else None,
            response_body=excerpt,
        )


async def _read_some(response: httpx.Response) -> str:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _READ_AT_MOST:
            break
    return b"".join(chunks)[:_READ_AT_MOST].decode("utf-8", errors="replace")[:RESPONSE_KEPT]
