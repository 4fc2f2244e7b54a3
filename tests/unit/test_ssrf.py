"""The SSRF guard: which addresses and URLs are refused, and that a delivery connects only to the address it checked
(Host header and TLS name kept), through the transport the worker uses."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import httpcore
import httpx
import pytest

from namaskah.domain.webhooks.errors import WebhookUrlForbidden, WebhookUrlInvalid, WebhookUrlUnresolvable
from namaskah.domain.webhooks.sender import GuardedTransport, url_policy
from namaskah.domain.webhooks.ssrf import (
    GuardedNetworkBackend,
    UrlPolicy,
    check_destination,
    check_url,
    checked_addresses,
    forbidden_reason,
    system_resolver,
)
from namaskah.settings import SettingsError, load_settings
from tests.support.tls import certificate_pair, serve_tls
from tests.support.webhook_receiver import receiving

STRICT, OPEN = UrlPolicy(), UrlPolicy(allow_http=True, allow_private=True)

FORBIDDEN = {
    "127.0.0.1": "loopback",
    "127.9.9.9": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "a cloud metadata address",
    "169.254.170.2": "a cloud metadata address",
    "169.254.1.1": "link-local",
    "0.0.0.0": "unspecified",
    "100.64.0.1": "shared (carrier-grade NAT)",
    "100.100.100.200": "a cloud metadata address",
    "192.0.0.192": "a cloud metadata address",
    "168.63.129.16": "a cloud metadata address",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "private",
    "255.255.255.255": "private",
    "198.18.0.1": "private",
    "192.0.2.10": "private",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fd00:ec2::254": "a cloud metadata address",
    "ff02::1": "multicast",
    "2001:db8::1": "private",
    "::ffff:127.0.0.1": "loopback (embedded in IPv6)",
    "::ffff:10.0.0.1": "private (embedded in IPv6)",
    "::ffff:169.254.169.254": "a cloud metadata address (embedded in IPv6)",
    "2002:7f00:1::": "loopback (embedded in IPv6)",  # 6to4 of 127.0.0.1
    "64:ff9b::a9fe:a9fe": "a cloud metadata address (embedded in IPv6)",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1": "private (embedded in IPv6)",  # NAT64 of 10.0.0.1
    "::7f00:1": "reserved",  # IPv4-compatible ::127.0.0.1
    "64:ff9b::808:808": "reserved",  # NAT64 even of a public address: ::/8 is reserved, and we do not NAT64
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN.items())
def test_internal_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    assert forbidden_reason(ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.216.34/hook", "must use https"),
        ("ftp://93.184.216.34/hook", "must use https"),
        ("https:///hook", "no host"),
        ("https://partner:secret@93.184.216.34/hook", "user name or password"),
        ("https://93.184.216.34/hook#frag", "fragment"),
        ("https://93.184.216.34/" + "a" * 2100, "longer than"),
        ("https://exa mple.com/", "not a valid host name"),
        ("https://[::1/", "can not be parsed"),
        ("https://partner.example.com:99999/", "port"),
        ("https://partner.example.com:0/", "port"),
        ("not a url", "must use https"),
    ],
)
def test_badly_shaped_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(WebhookUrlInvalid, match=message):
        check_url(url, STRICT)


PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgres://u:p@db:5432/namaskah",
    "REDIS_URL": "redis://redis:6379/0",
    "SECRET_KEY": "s" * 40,
    "PAYSTACK_SECRET_KEY": "sk_live_" + "k" * 32,  # ignored where billing has no such setting
}


@pytest.mark.parametrize("variable", ["WEBHOOK_ALLOW_HTTP", "WEBHOOK_ALLOW_PRIVATE_HOSTS"])
def test_production_refuses_the_developer_settings(variable: str) -> None:
    assert url_policy(load_settings(PRODUCTION, env_file=None)) == STRICT
    with pytest.raises(SettingsError, match=rf"^invalid setting {variable}: must be false in production"):
        load_settings({**PRODUCTION, variable: "true"}, env_file=None)
    for env in ("development", "test"):
        settings = load_settings({variable: "true", "APP_ENV": env}, env_file=None)
        assert url_policy(settings) != STRICT


def test_http_is_accepted_only_when_allowed() -> None:
    assert check_url("http://93.184.216.34/hook", UrlPolicy(allow_http=True)).scheme == "http"
    assert check_url("https://partner.example.com/hooks?x=1", STRICT).host == "partner.example.com"


def fixed(*answers: list[str]):  # type: ignore[no-untyped-def]
    """A resolver giving each answer in turn (the last one again), counting its calls."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def test_a_name_is_refused_if_any_of_its_addresses_is_internal() -> None:
    resolver = fixed(["93.184.216.34", "10.0.0.7"])
    with pytest.raises(WebhookUrlForbidden, match="private") as refused:
        await checked_addresses("partner.invalid", 443, STRICT, resolver, dns_timeout=1)
    assert "10.0.0.7" not in refused.value.detail  # the category, never the internal address
    assert await checked_addresses("partner.invalid", 443, OPEN, resolver, dns_timeout=1) == [
        "93.184.216.34",
        "10.0.0.7",
    ]


async def test_names_that_resolve_to_loopback_are_refused_by_the_system_resolver() -> None:
    with pytest.raises(WebhookUrlForbidden, match="loopback"):
        await check_destination("https://localhost/hook", STRICT, system_resolver, dns_timeout=5)
    # inet_aton's forms of 127.0.0.1 are names to the URL parser and addresses to the resolver.
    with pytest.raises(WebhookUrlForbidden, match="loopback"):
        await check_destination("https://2130706433/hook", STRICT, system_resolver, dns_timeout=5)
    with pytest.raises(WebhookUrlForbidden, match="loopback"):
        await check_destination("https://[::1]:8443/hook", STRICT, system_resolver, dns_timeout=5)


async def test_names_that_do_not_resolve_are_refused() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["93.184.216.34"]

    for resolver in (failing, slow, fixed([])):
        with pytest.raises(WebhookUrlUnresolvable):
            await checked_addresses("partner.invalid", 443, STRICT, resolver, dns_timeout=0.05)
    with pytest.raises(WebhookUrlUnresolvable):
        await check_destination("https://no-such-host.invalid/hook", STRICT, system_resolver, dns_timeout=5)


async def test_an_address_literal_is_never_looked_up() -> None:
    resolver = fixed(["93.184.216.34"])
    assert await checked_addresses("8.8.8.8", 443, STRICT, resolver, dns_timeout=1) == ["8.8.8.8"]
    assert resolver.calls == []


class Recording(httpcore.AsyncNetworkBackend):
    """The real backend, noting every host it was asked to connect to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, **kwargs: object) -> httpcore.AsyncNetworkStream:  # type: ignore[override]
        self.hosts.append(host)
        return await self.inner.connect_tcp(host, port, **kwargs)  # type: ignore[arg-type]

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(backend: GuardedNetworkBackend, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=GuardedTransport(backend, **kwargs), follow_redirects=False)  # type: ignore[arg-type]


async def test_the_connection_goes_to_the_checked_address_with_the_host_header_kept() -> None:
    resolver, recording = fixed(["127.0.0.1"]), Recording()
    backend = GuardedNetworkBackend(OPEN, resolver, recording)
    with receiving() as receiver:
        async with guarded_client(backend) as client:
            # `.invalid` never resolves: only our resolver's answer can have reached the receiver.
            response = await client.post(f"http://partner.invalid:{receiver.port}/hook", content=b"{}")
    assert response.status_code == 200
    assert [r.headers["host"] for r in receiver.requests] == [f"partner.invalid:{receiver.port}"]
    assert resolver.calls == ["partner.invalid"]  # resolved once, by the guard
    assert recording.hosts == ["127.0.0.1"]  # and the socket went to the address it checked


async def test_a_name_rebound_to_an_internal_address_is_refused_before_connecting() -> None:
    """Public when the endpoint was created, loopback at delivery time: the delivery's own lookup is checked."""
    resolver, recording = fixed(["93.184.216.34"], ["127.0.0.1"]), Recording()
    await checked_addresses("partner.invalid", 443, STRICT, resolver, dns_timeout=1)  # the check at creation
    backend = GuardedNetworkBackend(STRICT, resolver, recording)
    with receiving() as receiver:
        async with guarded_client(backend) as client:
            with pytest.raises(WebhookUrlForbidden, match="loopback"):
                await client.post(f"http://partner.invalid:{receiver.port}/hook", content=b"{}")
            with pytest.raises(WebhookUrlForbidden, match="loopback"):
                await client.post(f"http://127.0.0.1:{receiver.port}/hook", content=b"{}")
    assert receiver.requests == []
    assert recording.hosts == []


async def test_tls_keeps_the_host_name_for_sni_and_the_certificate() -> None:
    client_context, server_context = certificate_pair("partner.invalid")
    seen_sni: list[str | None] = []
    server_context.sni_callback = lambda _socket, name, _context: seen_sni.append(name)  # type: ignore[assignment]
    async with serve_tls(server_context) as port:
        backend = GuardedNetworkBackend(OPEN, fixed(["127.0.0.1"]))
        async with guarded_client(backend, ssl_context=client_context) as client:
            response = await client.post(f"https://partner.invalid:{port}/hook", content=b"{}")
        assert (response.status_code, response.text) == (200, "host=partner.invalid:" + str(port))
        # The certificate is for partner.invalid only: a client checking it against 127.0.0.1 would fail.
        backend = GuardedNetworkBackend(OPEN, fixed(["127.0.0.1"]))
        async with guarded_client(backend, ssl_context=client_context) as client:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.post(f"https://127.0.0.1:{port}/hook", content=b"{}")
    assert seen_sni[0] == "partner.invalid"
