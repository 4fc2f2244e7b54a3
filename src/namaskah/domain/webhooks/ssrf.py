"""The SSRF guard of webhook deliveries: which URLs are accepted, which addresses are never reached, and a network
backend that resolves a host itself and connects only to the addresses it just checked.

Checking a name and letting the HTTP client resolve it again would let DNS answer differently the second time
(DNS rebinding); `GuardedNetworkBackend` is the one place a delivery's host is resolved, and the connection goes to
the address that was checked. TLS still runs against the host name (SNI and certificate), and the Host header is
the URL's, because httpcore asks the backend only for a TCP stream.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import httpcore
import httpx

from namaskah.domain.webhooks.errors import WebhookUrlForbidden, WebhookUrlInvalid, WebhookUrlUnresolvable

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = IPv4Address | IPv6Address
MAX_URL_LENGTH = 2048

# Cloud instance metadata and host services. Most sit in ranges refused anyway (link-local, ULA, shared); the
# ones that do not (Azure's wire server, Oracle's old metadata address) are why this list exists.
METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "168.63.129.16",  # Azure wire server
    )
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64): judged by that address.
_NAT64 = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
# A host name after IDNA encoding (httpx percent-encodes what else it is given, spaces included).
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# Shared address space (carrier-grade NAT), not covered by `is_private`.
_SHARED = IPv4Network("100.64.0.0/10")


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Production: https only, public addresses only. Development may allow either (settings refuse both in
    production)."""

    allow_http: bool = False
    allow_private: bool = False


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a delivery must not reach `address`, or None for a public unicast address."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := forbidden_reason(embedded)):
            return f"{reason} (embedded in IPv6)"
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (isinstance(address, IPv4Address) and address in _SHARED, "shared (carrier-grade NAT)"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for matched, reason in checks if matched), None)


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address; the server's is public by construction
    if any(address in network for network in _NAT64):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_url(raw: str, policy: UrlPolicy) -> httpx.URL:
    """The parsed URL if its shape is acceptable (scheme, host, no credentials); 422 `webhook_url_invalid` else."""
    if len(raw) > MAX_URL_LENGTH:
        raise WebhookUrlInvalid(f"The URL is longer than {MAX_URL_LENGTH} characters")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise WebhookUrlInvalid(f"The URL can not be parsed: {exc}") from None
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if url.scheme not in allowed:
        raise WebhookUrlInvalid(f"The URL must use {' or '.join(allowed)}")
    if not url.host:
        raise WebhookUrlInvalid("The URL has no host")
    host = url.raw_host.decode("ascii")
    if ":" not in host and not _HOST_NAME.fullmatch(host):
        raise WebhookUrlInvalid("The URL's host is not a valid host name")
    if url.port is not None and not 0 < url.port < 65536:
        raise WebhookUrlInvalid("The URL's port is not between 1 and 65535")
    if url.userinfo:
        # Stored and listed in clear, and shown in logs by proxies: a credential does not belong here.
        raise WebhookUrlInvalid("The URL must not carry a user name or password; authenticate with the signature")
    if url.fragment:
        raise WebhookUrlInvalid("The URL must not have a #fragment")
    return url


def default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(
    host: str, port: int, policy: UrlPolicy, resolver: Resolver, *, dns_timeout: float | None
) -> list[str]:
    """Resolve `host` once and refuse it if any of its addresses is forbidden (an attacker who controls the DNS
    answer would otherwise mix a public address with an internal one)."""
    try:
        addresses = [str(ip_address(host))]  # an address literal needs no lookup
    except ValueError:
        try:
            async with asyncio.timeout(dns_timeout):
                addresses = await resolver(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise WebhookUrlUnresolvable(f"The host {host!r} does not resolve ({type(exc).__name__})") from None
    if not addresses:
        raise WebhookUrlUnresolvable(f"The host {host!r} has no address")
    if not policy.allow_private:
        for address in addresses:
            reason = forbidden_reason(ip_address(address))
            if reason is not None:
                # The category only: the address itself would tell a caller about our internal DNS.
                raise WebhookUrlForbidden(f"The host {host!r} is or resolves to a {reason} address")
    return addresses


async def check_destination(raw: str, policy: UrlPolicy, resolver: Resolver, *, dns_timeout: float | None) -> httpx.URL:
    """What creating an endpoint checks: the URL's shape, then where its host resolves now."""
    url = check_url(raw, policy)
    await checked_addresses(url.host, default_port(url), policy, resolver, dns_timeout=dns_timeout)
    return url


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's TCP connections, through the guard: each connection resolves its host here, once, refuses it
    when any address is forbidden, and connects to the checked addresses in order."""

    def __init__(
        self,
        policy: UrlPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, self.policy, self.resolver, dns_timeout=timeout)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        if error is None:
            raise RuntimeError("checked_addresses answered no address")
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise WebhookUrlForbidden("Webhooks are never delivered to a local socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
