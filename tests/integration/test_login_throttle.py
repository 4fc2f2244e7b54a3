"""Failed logins are limited per account and per IP; a success clears the account's count."""

from __future__ import annotations

import time

import pyotp
from httpx import AsyncClient

from namaskah.app import create_app
from tests.conftest import serve_in_loop
from tests.support.databases import make_settings

PASSWORD = "violet-harbour-lantern-7"


async def attempt(client: AsyncClient, password: str, email: str = "ada@example.com") -> int:
    return (await client.post("/v1/auth/login", json={"email": email, "password": password})).status_code


async def test_account_is_throttled_after_five_failures(client: AsyncClient) -> None:
    await client.post("/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert [await attempt(client, "wrong-password-xyz") for _ in range(5)] == [401] * 5
    response = await client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert response.json()["code"] == "login_throttled"
    assert 1 <= int(response.headers["retry-after"]) <= 900
    # Another account from the same client is not affected by ada's count.
    await client.post("/v1/auth/register", json={"email": "bob@example.com", "password": PASSWORD})
    assert await attempt(client, PASSWORD, email="bob@example.com") == 200


async def test_success_clears_the_account_count(client: AsyncClient) -> None:
    await client.post("/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert [await attempt(client, "wrong-password-xyz") for _ in range(4)] == [401] * 4
    assert await attempt(client, PASSWORD) == 200
    assert [await attempt(client, "wrong-password-xyz") for _ in range(4)] == [401] * 4
    assert await attempt(client, PASSWORD) == 200


async def test_one_ip_guessing_many_accounts_is_throttled(session_factory, stub_broker) -> None:
    settings = make_settings(LOGIN_MAX_FAILURES_PER_IP="3")
    async with serve_in_loop(create_app(settings, session_factory=session_factory, broker=stub_broker)) as client:
        codes = [await attempt(client, "wrong-password-xyz", email=f"user{i}@example.com") for i in range(4)]
    assert codes == [401, 401, 401, 429]


async def test_wrong_second_factors_count_as_failures(client: AsyncClient) -> None:
    await client.post("/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    tokens = (await client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    totp = pyotp.TOTP((await client.post("/v1/me/2fa/setup", headers=headers)).json()["secret"])
    assert (await client.post("/v1/me/2fa/enable", json={"code": totp.now()}, headers=headers)).status_code == 200
    now = time.time()
    valid = {totp.at(now + offset) for offset in (-30, 0, 30)}
    wrong = next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)
    body = {"email": "ada@example.com", "password": PASSWORD, "totp_code": wrong}
    assert [(await client.post("/v1/auth/login", json=body)).status_code for _ in range(5)] == [401] * 5
    body["totp_code"] = totp.at(now + 30)
    response = await client.post("/v1/auth/login", json=body)
    assert response.status_code == 429
    assert response.json()["code"] == "login_throttled"
