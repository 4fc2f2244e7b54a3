"""The audit log: one entry per sensitive change, in its transaction, with the request's context and no secret."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import msgspec
import pyotp
import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from litestar import Litestar, post
from litestar.di import NamedDependency
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from namaskah.app import create_app
from namaskah.db.engine import create_session_factory
from namaskah.domain.audit.chain import entry_hash
from namaskah.domain.audit.models import GENESIS_HASH, AuditLog
from namaskah.domain.audit.schemas import AuditLogRead
from namaskah.domain.audit.service import AuditService
from namaskah.lib.logging import REDACTED
from tests.conftest import serve_in_loop
from tests.integration.test_accounts import PASSWORD, bearer, login, register, signed_in
from tests.integration.test_two_factor import next_step_code, with_two_factor
from tests.support.databases import make_settings

CONTEXT = {"User-Agent": "audit-test/1.0 " + "x" * 300, "X-Request-ID": "audit-request-0001"}


@post("/test/audit-then-fail")
async def audit_then_fail(db_session: NamedDependency[AsyncSession]) -> None:
    await AuditService(db_session).record("test.doomed", subject_type="test", subject_id="1")
    raise RuntimeError("after the audit entry was recorded")


@post("/test/audit-savepoints", status_code=204)
async def audit_savepoints(db_session: NamedDependency[AsyncSession]) -> None:
    audit = AuditService(db_session)
    await audit.record("test.outer", subject_type="test", subject_id="1")
    with contextlib.suppress(ValueError):
        async with db_session.begin_nested():
            await audit.record("test.savepoint_rolled_back", subject_type="test", subject_id="2")
            raise ValueError("undo")
    async with db_session.begin_nested():
        await audit.record("test.savepoint_released", subject_type="test", subject_id="3")


@pytest.fixture
def app(app: Litestar) -> Litestar:
    app.register(audit_then_fail)
    app.register(audit_savepoints)
    return app


async def entries(factory: async_sessionmaker[AsyncSession], action: str | None = None) -> list[AuditLogRead]:
    query = select(AuditLog).order_by(AuditLog.sequence)
    if action is not None:
        query = query.where(AuditLog.action == action)
    async with factory() as session:
        return [AuditLogRead.of(row) for row in (await session.scalars(query)).all()]


def as_text(rows: list[AuditLogRead]) -> str:
    return msgspec.json.encode(rows).decode()


async def test_login_is_audited_with_the_request_context(client: AsyncClient, session_factory) -> None:
    user_id = (await register(client)).json()["id"]
    response = await client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}, headers=CONTEXT
    )
    assert response.status_code == 200, response.text
    [entry] = await entries(session_factory, "auth.login.succeeded")
    assert (entry.actor_type, str(entry.actor_user_id), entry.actor_api_key_id) == ("user", user_id, None)
    assert (entry.subject_type, entry.subject_id) == ("user", user_id)
    assert entry.ip == "127.0.0.1"
    assert entry.user_agent is not None
    assert entry.user_agent.startswith("audit-test/1.0 ")
    assert len(entry.user_agent) == 255
    assert entry.request_id == "audit-request-0001"
    assert entry.after == {"two_factor": False}
    assert len(entry.hash) == 64
    text = as_text([entry])
    for secret in (PASSWORD, response.json()["access_token"], response.json()["refresh_token"]):
        assert secret not in text


async def test_2fa_and_recovery_codes_are_audited_without_secrets(client: AsyncClient, session_factory) -> None:
    headers, secret, codes = await with_two_factor(client)
    assert (
        await client.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "totp_code": codes[0]}
        )
    ).status_code == 200
    response = await client.post("/v1/me/2fa/disable", headers=headers, json={"code": next_step_code(secret)})
    assert response.status_code == 204, response.text

    rows = await entries(session_factory)
    actions = [row.action for row in rows]
    assert actions == [
        "auth.login.succeeded",
        "auth.2fa.enabled",
        "auth.recovery_code.used",
        "auth.login.succeeded",
        "auth.2fa.disabled",
    ]
    subject = rows[0].subject_id
    assert all(row.subject_id == subject and row.actor_type == "user" for row in rows)
    enabled, used, disabled = rows[1], rows[2], rows[4]
    assert (enabled.before, enabled.after) == ({"two_factor": False}, {"two_factor": True})
    assert (disabled.before, disabled.after) == ({"two_factor": True}, {"two_factor": False})
    assert str(used.actor_user_id) == subject  # nobody was signed in yet: the code proved the user
    text = as_text(rows)
    for value in (PASSWORD, secret, *codes, *(code.replace("-", "") for code in codes)):
        assert value not in text


async def test_api_keys_are_audited_without_the_key(client: AsyncClient, session_factory) -> None:
    tokens = await signed_in(client)
    headers = bearer(tokens["access_token"])
    created = await client.post("/v1/api-keys", json={"name": "shop", "scopes": ["wallet:read"]}, headers=headers)
    assert created.status_code == 201, created.text
    key = created.json()
    assert (await client.delete(f"/v1/api-keys/{key['id']}", headers=headers)).status_code == 204
    [made] = await entries(session_factory, "api_key.created")
    [revoked] = await entries(session_factory, "api_key.revoked")
    assert (made.subject_type, made.subject_id) == ("api_key", key["id"])
    assert made.after == {"user_id": str(made.actor_user_id), "name": "shop", "scopes": ["wallet:read"]}
    assert (revoked.subject_id, revoked.before, revoked.after) == (key["id"], {"revoked": False}, {"revoked": True})
    assert key["key"] not in as_text([made, revoked])


async def test_an_entry_is_gone_when_its_transaction_rolls_back(client: AsyncClient, session_factory) -> None:
    assert (await client.post("/test/audit-then-fail")).status_code == 500
    assert await entries(session_factory) == []
    assert (await client.post("/test/audit-savepoints")).status_code == 204
    rows = await entries(session_factory)
    assert [row.action for row in rows] == ["test.outer", "test.savepoint_released"]
    assert [row.sequence for row in rows] == [1, 2]
    assert rows[0].prev_hash == GENESIS_HASH
    assert rows[1].prev_hash == rows[0].hash


async def test_secrets_in_before_and_after_are_redacted(session_factory) -> None:
    async with session_factory() as session:
        await AuditService(session).record(
            "test.redaction",
            subject_type="test",
            subject_id=uuid.uuid4(),
            before={"password": "hunter2-hunter2", "nested": {"api_key": "abc", "tier": "free"}},
            after={"note": "sent Bearer abcdefghijklmnop", "totp_secret": "JBSWY3DPEHPK3PXP"},
        )
        await session.commit()
    [entry] = await entries(session_factory)
    assert entry.before == {"password": REDACTED, "nested": {"api_key": REDACTED, "tier": "free"}}
    assert entry.after == {"note": f"sent {REDACTED}", "totp_secret": REDACTED}
    assert (entry.actor_type, entry.ip, entry.user_agent, entry.request_id) == ("system", None, None, None)
    text = as_text([entry])
    assert "hunter2" not in text
    assert "JBSWY3DPEHPK3PXP" not in text
    assert "abcdefghijklmnop" not in text


@pytest.fixture
async def committed(
    isolated_database: str, stub_broker: StubBroker
) -> AsyncIterator[tuple[AsyncClient, async_sessionmaker[AsyncSession]]]:
    """The app on a database of its own: commits are real, so is the row lock that orders appends."""
    app = create_app(make_settings(DATABASE_URL=isolated_database, LOGIN_MAX_FAILURES="100"), broker=stub_broker)
    engine = create_async_engine(isolated_database, poolclass=NullPool)
    async with serve_in_loop(app) as client:
        yield client, create_session_factory(engine)
    await engine.dispose()


async def test_a_failed_login_is_committed_although_the_answer_is_401(committed) -> None:
    client, factory = committed
    user_id = (await register(client)).json()["id"]
    wrong = await login(client, password="not-the-password-at-all")
    unknown = await login(client, email="nobody@example.com")
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    rows = await entries(factory, "auth.login.failed")
    assert [(row.subject_id, row.after) for row in rows] == [
        (user_id, {"email": "ada@example.com", "reason": "wrong_password"}),
        (None, {"email": "nobody@example.com", "reason": "unknown_email"}),
    ]
    assert {row.actor_type for row in rows} == {"anonymous"}
    assert "not-the-password-at-all" not in as_text(rows)
    assert PASSWORD not in as_text(rows)


async def test_concurrent_appends_keep_one_chain(committed) -> None:
    client, factory = committed
    for index in range(3):
        assert (await register(client, email=f"user{index}@example.com")).status_code == 201
    attempts = [login(client, email=f"user{index % 3}@example.com") for index in range(20)]
    attempts += [login(client, email=f"user{index}@example.com", password="wrong-password-12") for index in range(3)]
    responses = await asyncio.gather(*attempts)
    assert sorted(r.status_code for r in responses) == [200] * 20 + [401] * 3
    rows = await entries(factory)
    assert len(rows) == 23
    assert [row.sequence for row in rows] == list(range(1, 24))
    previous = GENESIS_HASH
    async with factory() as session:
        stored = (await session.scalars(select(AuditLog).order_by(AuditLog.sequence))).all()
        for row in stored:
            assert row.prev_hash == previous
            assert entry_hash(row) == row.hash
            previous = row.hash
        report = await AuditService(session).verify()
    assert (report.ok, report.count, report.head_hash) == (True, 23, previous)


async def test_totp_codes_do_not_leak_into_failed_login_entries(committed) -> None:
    client, factory = committed
    _, secret, _ = await with_two_factor(client)
    code = pyotp.TOTP(secret).now()
    refused = await client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "totp_code": code}
    )
    assert refused.status_code == 401  # the code was spent by enable
    missing = await login(client)
    assert missing.status_code == 401
    rows = await entries(factory, "auth.login.failed")
    assert [row.after["reason"] for row in rows if row.after] == ["second_factor_invalid", "second_factor_missing"]
    assert code not in as_text(rows)
    assert secret not in as_text(await entries(factory))
