"""TOTP two-factor authentication: setup, enable, login with a code or a recovery code, replays, disable."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.lib.security import totp
from tests.conftest import serve_in_loop
from tests.integration.test_accounts import PASSWORD, bearer, signed_in
from tests.support.databases import make_settings

EMAIL = "ada@example.com"
RECOVERY_CODE = re.compile(r"^[a-z2-9]{5}-[a-z2-9]{5}-[a-z2-9]{5}$")


async def login(client: AsyncClient, totp_code: str | None = None, password: str = PASSWORD):
    body = {"email": EMAIL, "password": password}
    if totp_code is not None:
        body["totp_code"] = totp_code
    return await client.post("/v1/auth/login", json=body)


def next_step_code(secret: str) -> str:
    """The code of the step after the current one: still accepted (clock drift), newer than one just used."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def wrong_code(secret: str) -> str:
    valid = {pyotp.TOTP(secret).at(time.time() + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in valid)


async def with_two_factor(client: AsyncClient) -> tuple[dict[str, str], str, list[str]]:
    """A signed-in user who turned 2FA on: their auth header, TOTP secret and recovery codes."""
    headers = bearer((await signed_in(client))["access_token"])
    setup = await client.post("/v1/me/2fa/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    enabled = await client.post("/v1/me/2fa/enable", headers=headers, json={"code": pyotp.TOTP(secret).now()})
    assert enabled.status_code == 200, enabled.text
    return headers, secret, enabled.json()["recovery_codes"]


async def test_setup_returns_a_secret_and_an_otpauth_uri(client: AsyncClient) -> None:
    headers = bearer((await signed_in(client))["access_token"])
    response = await client.post("/v1/me/2fa/setup", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri"}
    assert re.fullmatch(r"[A-Z2-7]{32}", body["secret"])
    uri = urlparse(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/Namaskah SMS:{EMAIL}"
    query = parse_qs(uri.query)
    assert query["secret"] == [body["secret"]]
    assert query["issuer"] == ["Namaskah SMS"]

    again = await client.post("/v1/me/2fa/setup", headers=headers)
    assert again.json()["secret"] != body["secret"]
    me = await client.get("/v1/me", headers=headers)
    assert me.json()["totp_enabled"] is False
    assert (await login(client)).status_code == 200


async def test_setup_needs_a_signed_in_user(client: AsyncClient) -> None:
    response = await client.post("/v1/me/2fa/setup")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


async def test_enable_needs_setup_then_a_valid_code(client: AsyncClient) -> None:
    headers = bearer((await signed_in(client))["access_token"])
    early = await client.post("/v1/me/2fa/enable", headers=headers, json={"code": "123456"})
    assert early.status_code == 409
    assert early.json()["code"] == "totp_not_set_up"

    secret = (await client.post("/v1/me/2fa/setup", headers=headers)).json()["secret"]
    bad = wrong_code(secret)
    refused = await client.post("/v1/me/2fa/enable", headers=headers, json={"code": bad})
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_totp_code"
    assert bad not in refused.text
    assert secret not in refused.text
    assert (await client.get("/v1/me", headers=headers)).json()["totp_enabled"] is False

    enabled = await client.post("/v1/me/2fa/enable", headers=headers, json={"code": pyotp.TOTP(secret).now()})
    assert enabled.status_code == 200, enabled.text
    codes = enabled.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(RECOVERY_CODE.match(code) for code in codes)
    assert (await client.get("/v1/me", headers=headers)).json()["totp_enabled"] is True

    for path in ("/v1/me/2fa/setup", "/v1/me/2fa/enable"):
        conflict = await client.post(path, headers=headers, json={"code": next_step_code(secret)})
        assert conflict.status_code == 409, path
        assert conflict.json()["code"] == "totp_already_enabled"


async def test_login_requires_a_code_that_works_once(client: AsyncClient) -> None:
    _, secret, _ = await with_two_factor(client)
    missing = await login(client)
    assert missing.status_code == 401
    assert missing.json()["code"] == "totp_required"

    code = next_step_code(secret)
    # A wrong password is answered as before and does not spend the code.
    wrong_password = await login(client, code, password="not-the-password-at-all")
    assert wrong_password.status_code == 401
    assert wrong_password.json()["code"] == "invalid_credentials"

    accepted = await login(client, code)
    assert accepted.status_code == 200, accepted.text
    replayed = await login(client, code)
    assert replayed.status_code == 401
    assert replayed.json()["code"] == "totp_required"
    assert code not in replayed.text


async def test_the_code_that_enabled_2fa_cannot_log_in(client: AsyncClient) -> None:
    headers = bearer((await signed_in(client))["access_token"])
    secret = (await client.post("/v1/me/2fa/setup", headers=headers)).json()["secret"]
    code = pyotp.TOTP(secret).now()
    assert (await client.post("/v1/me/2fa/enable", headers=headers, json={"code": code})).status_code == 200
    response = await login(client, code)
    assert response.status_code == 401
    assert response.json()["code"] == "totp_required"


async def test_a_recovery_code_works_once(client: AsyncClient) -> None:
    _, _, codes = await with_two_factor(client)
    assert (await login(client, codes[0])).status_code == 200
    again = await login(client, codes[0])
    assert again.status_code == 401
    assert again.json()["code"] == "totp_required"
    # Case, dashes and spaces do not matter.
    retyped = codes[1].upper().replace("-", " ")
    assert (await login(client, retyped)).status_code == 200


async def test_secrets_and_recovery_codes_are_not_stored_in_plaintext(
    client: AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    _, secret, codes = await with_two_factor(client)
    async with session_factory() as session:
        stored_secret = await session.scalar(text("SELECT totp_secret FROM users"))
        hashes = (await session.scalars(text("SELECT code_hash FROM recovery_codes"))).all()
    assert stored_secret is not None
    assert secret not in stored_secret
    assert secret.lower() not in stored_secret.lower()
    assert len(hashes) == 10
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in hashes)
    for code in codes:
        assert all(code not in value and totp.normalize_recovery_code(code) not in value for value in hashes)


async def test_disable_needs_a_valid_code(client: AsyncClient, session_factory) -> None:
    headers, secret, _ = await with_two_factor(client)
    bad = wrong_code(secret)
    refused = await client.post("/v1/me/2fa/disable", headers=headers, json={"code": bad})
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_totp_code"

    # The current step's code was spent by enable: the next step's is the first one still usable.
    response = await client.post("/v1/me/2fa/disable", headers=headers, json={"code": next_step_code(secret)})
    assert response.status_code == 204, response.text
    assert (await client.get("/v1/me", headers=headers)).json()["totp_enabled"] is False
    assert (await login(client)).status_code == 200
    async with session_factory() as session:
        row = (await session.execute(text("SELECT totp_secret, totp_enabled_at, totp_last_step FROM users"))).one()
        recovery_rows = await session.scalar(text("SELECT count(*) FROM recovery_codes"))
    assert tuple(row) == (None, None, None)
    assert recovery_rows == 0

    again = await client.post("/v1/me/2fa/disable", headers=headers, json={"code": next_step_code(secret)})
    assert again.status_code == 409
    assert again.json()["code"] == "totp_not_enabled"


async def test_disable_with_a_recovery_code(client: AsyncClient) -> None:
    headers, _, codes = await with_two_factor(client)
    response = await client.post("/v1/me/2fa/disable", headers=headers, json={"code": codes[3]})
    assert response.status_code == 204, response.text
    assert (await login(client)).status_code == 200


async def test_concurrent_logins_with_one_code_succeed_once(isolated_database: str, stub_broker: StubBroker) -> None:
    # Six refusals for one account: more than the failed-login limit would let through.
    settings = make_settings(DATABASE_URL=isolated_database, LOGIN_MAX_FAILURES="100")
    app = create_app(settings, broker=stub_broker)
    async with serve_in_loop(app) as client:
        _, secret, codes = await with_two_factor(client)
        for code in (codes[0], next_step_code(secret)):
            responses = await asyncio.gather(*(login(client, code) for _ in range(4)))
            assert sorted(r.status_code for r in responses) == [200, 401, 401, 401], code
            assert {r.json()["code"] for r in responses if r.status_code == 401} == {"totp_required"}


def test_matching_step_accepts_one_step_of_drift_and_names_the_step() -> None:
    secret = totp.new_secret()
    now = datetime(2026, 11, 25, 12, 0, 10, tzinfo=UTC)
    generator = pyotp.TOTP(secret)
    step = generator.timecode(now)
    for offset in (-1, 0, 1):
        code = generator.at(now + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, now) == step + offset
    assert totp.matching_step(secret, generator.at(now + timedelta(seconds=90)), now) is None
    assert totp.matching_step(secret, generator.at(now - timedelta(seconds=60)), now) is None
    code = generator.at(now)
    for malformed in (code[:5], f"{code}0", f" {code}", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16"):
        assert totp.matching_step(secret, malformed, now) is None


def test_recovery_codes_are_random_and_strong_enough() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    assert all(RECOVERY_CODE.match(code) for code in codes)
    assert not set("ilo01") & set(totp.RECOVERY_ALPHABET)
    assert len(totp.RECOVERY_ALPHABET) ** (totp.RECOVERY_GROUPS * totp.RECOVERY_GROUP_LENGTH) >= 2**60
    assert totp.new_recovery_codes() != codes
    assert totp.hash_recovery_code(codes[0].upper().replace("-", ""), salt="u") == totp.hash_recovery_code(
        codes[0], salt="u"
    )
    assert totp.hash_recovery_code(codes[0], salt="u") != totp.hash_recovery_code(codes[0], salt="v")
