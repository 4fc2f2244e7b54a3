"""Mailed links (verify the email, reset the password) and password changes, through the outbox to `.eml` files."""

from __future__ import annotations

import asyncio
import io
import json
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from namaskah.app import create_app
from namaskah.domain.accounts.models import User
from namaskah.lib.logging import configure_logging
from namaskah.lib.mail import SendMail, send
from namaskah.lib.outbox.models import OutboxMessage
from namaskah.settings import Settings
from tests.conftest import serve_in_loop
from tests.integration.test_accounts import PASSWORD, bearer, login, register
from tests.support.databases import make_settings

NEW_PASSWORD = "copper-meadow-signal-42"
LINK = re.compile(r"(https?://\S+)#token=((?:ev|pr)_[A-Za-z0-9_-]+)")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(DATA_DIR=str(tmp_path))


@pytest.fixture
def app(session_factory: async_sessionmaker[AsyncSession], stub_broker: StubBroker, settings: Settings) -> Litestar:
    return create_app(settings, session_factory=session_factory, broker=stub_broker)


def deliver_queued(broker: StubBroker, settings: Settings) -> list[EmailMessage]:
    """A worker's part: each published mail job, decoded from the broker and run as the `mail.send` actor does."""
    queue = broker.queues.get(SendMail.queue_name)
    paths = []
    while queue is not None and not queue.empty():
        message = dramatiq.Message.decode(queue.get_nowait())
        assert message.actor_name == "mail.send"
        paths.append(send(SendMail.decode(message.args[0]), settings))
    return [read_mail(path) for path in paths]


def read_mail(path: Path) -> EmailMessage:
    mail = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(mail, EmailMessage)
    return mail


def link_of(mail: EmailMessage) -> tuple[str, str]:
    body = mail.get_body(("plain",))
    assert body is not None
    match = LINK.search(body.get_content())
    assert match is not None, body.get_content()
    return match[1], match[2]


def mail_files(settings: Settings) -> list[Path]:
    return sorted((Path(settings.data_dir) / "mail").glob("*"))


async def age_tokens(session_factory: async_sessionmaker[AsyncSession], *, created: float, expires: float = 0) -> None:
    async with session_factory() as session:
        await session.execute(
            text(
                "UPDATE account_tokens SET created_at = created_at - make_interval(secs => :created),"
                " expires_at = expires_at - make_interval(secs => :expires)"
            ),
            {"created": created, "expires": expires},
        )
        await session.commit()


async def test_registration_mails_one_verification_link_that_works_once(
    client: AsyncClient, stub_broker: StubBroker, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await register(client)).status_code == 201
    [mail] = deliver_queued(stub_broker, settings)
    assert [path.suffix for path in mail_files(settings)] == [".eml"]
    assert mail["To"] == "ada@example.com"
    assert mail["From"] == settings.mail_from
    assert mail["Subject"] == "Confirm your email address"
    base, token = link_of(mail)
    assert base == f"{settings.public_base_url}/verify-email"
    assert token.startswith("ev_")
    async with session_factory() as session:
        payloads = (await session.scalars(select(OutboxMessage.payload))).all()
        assert token not in json.dumps(payloads)  # the job is sealed: the database holds no usable link

    response = await client.post("/v1/auth/email/verify", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json() == {"email_verified": True}
    again = await client.post("/v1/auth/email/verify", json={"token": token})
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_email_token"
    async with session_factory() as session:
        assert await session.scalar(select(User.email_verified_at)) is not None


async def test_resending_replaces_the_link_and_stops_once_verified(
    client: AsyncClient, stub_broker: StubBroker, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await register(client)).status_code == 201
    [first] = deliver_queued(stub_broker, settings)
    headers = bearer((await login(client)).json()["access_token"])
    # Within a minute of the last mail, whose link still works, no new one is sent.
    assert (await client.post("/v1/me/email/verification", headers=headers)).status_code == 202
    assert deliver_queued(stub_broker, settings) == []

    await age_tokens(session_factory, created=120)
    assert (await client.post("/v1/me/email/verification", headers=headers)).status_code == 202
    [second] = deliver_queued(stub_broker, settings)
    old = await client.post("/v1/auth/email/verify", json={"token": link_of(first)[1]})
    assert old.json()["code"] == "invalid_email_token"
    assert (await client.post("/v1/auth/email/verify", json={"token": link_of(second)[1]})).status_code == 200

    response = await client.post("/v1/me/email/verification", headers=headers)
    assert response.status_code == 409
    assert response.json()["code"] == "email_already_verified"


async def test_an_expired_link_is_refused(
    client: AsyncClient, stub_broker: StubBroker, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await register(client)).status_code == 201
    [mail] = deliver_queued(stub_broker, settings)
    await age_tokens(session_factory, created=0, expires=settings.email_verification_ttl + 1)
    response = await client.post("/v1/auth/email/verify", json={"token": link_of(mail)[1]})
    assert response.status_code == 400
    assert response.json()["code"] == "email_token_expired"


async def test_forgot_password_answers_alike_for_unknown_addresses(
    client: AsyncClient, stub_broker: StubBroker, settings: Settings
) -> None:
    assert (await register(client)).status_code == 201
    deliver_queued(stub_broker, settings)
    unknown = await client.post("/v1/auth/password/forgot", json={"email": "nobody@example.com"})
    assert deliver_queued(stub_broker, settings) == []
    known = await client.post("/v1/auth/password/forgot", json={"email": " ADA@example.com "})
    assert [mail["To"] for mail in deliver_queued(stub_broker, settings)] == ["ada@example.com"]
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    assert len(mail_files(settings)) == 2  # the verification and the one reset mail


async def test_reset_changes_the_password_once_and_ends_every_session(
    client: AsyncClient, stub_broker: StubBroker, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await register(client)).status_code == 201
    refresh_token = (await login(client)).json()["refresh_token"]
    assert (await client.post("/v1/auth/password/forgot", json={"email": "ada@example.com"})).status_code == 202
    [_, reset_mail] = deliver_queued(stub_broker, settings)
    assert reset_mail["Subject"] == "Reset your Namaskah SMS password"
    base, token = link_of(reset_mail)
    assert (base, token[:3]) == (f"{settings.public_base_url}/reset-password", "pr_")

    weak = await client.post("/v1/auth/password/reset", json={"token": token, "new_password": "qwertyuiop"})
    assert (weak.status_code, weak.json()["code"]) == (422, "weak_password")
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert (await client.post("/v1/auth/password/reset", json=body)).status_code == 204  # the weak try spent nothing

    assert (await login(client)).status_code == 401
    assert (await login(client, password=NEW_PASSWORD)).status_code == 200
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 401
    again = await client.post("/v1/auth/password/reset", json={**body, "new_password": "another-" + NEW_PASSWORD})
    assert (again.status_code, again.json()["code"]) == (400, "invalid_email_token")
    async with session_factory() as session:
        actions = (await session.scalars(text("SELECT action FROM audit_logs ORDER BY sequence"))).all()
        rows = (await session.execute(text("SELECT CAST(after AS TEXT), CAST(before AS TEXT) FROM audit_logs"))).all()
    assert actions.count("auth.password.reset") == 1
    assert all(token not in str(row) and NEW_PASSWORD not in str(row) for row in rows)


async def test_concurrent_resets_with_one_link_succeed_once(isolated_database: str, tmp_path: Path) -> None:
    settings = make_settings(DATABASE_URL=isolated_database, DATA_DIR=str(tmp_path))
    broker = StubBroker()
    app = create_app(settings, broker=broker)
    async with serve_in_loop(app) as client:
        assert (await register(client)).status_code == 201
        assert (await client.post("/v1/auth/password/forgot", json={"email": "ada@example.com"})).status_code == 202
        token = link_of(deliver_queued(broker, settings)[-1])[1]
        passwords = [f"{NEW_PASSWORD}-{i}" for i in range(4)]
        responses = await asyncio.gather(
            *(client.post("/v1/auth/password/reset", json={"token": token, "new_password": p}) for p in passwords)
        )
        assert sorted(r.status_code for r in responses) == [204, 400, 400, 400]
        winner = next(p for p, r in zip(passwords, responses, strict=True) if r.status_code == 204)
        logins = [(await login(client, password=p)).status_code for p in [PASSWORD, *passwords]]
        assert logins == [200 if p == winner else 401 for p in [PASSWORD, *passwords]]
    await app.state.engine.dispose()


async def test_change_password_checks_the_current_one_and_ends_other_sessions(client: AsyncClient) -> None:
    assert (await register(client)).status_code == 201
    mine, other = (await login(client)).json(), (await login(client)).json()
    headers = bearer(mine["access_token"])

    wrong = await client.post(
        "/v1/me/password", json={"current_password": "not-" + PASSWORD, "new_password": NEW_PASSWORD}, headers=headers
    )
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_credentials")
    weak = await client.post(
        "/v1/me/password", json={"current_password": PASSWORD, "new_password": "ada@example.com"}, headers=headers
    )
    assert (weak.status_code, weak.json()["code"]) == (422, "weak_password")
    key = await client.post("/v1/api-keys", json={"name": "shop", "scopes": ["wallet:read"]}, headers=headers)
    by_key = await client.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"X-API-Key": key.json()["key"]},
    )
    assert (by_key.status_code, by_key.json()["code"]) == (403, "insufficient_scope")

    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "refresh_token": mine["refresh_token"]}
    assert (await client.post("/v1/me/password", json=body, headers=headers)).status_code == 204
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 401
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": mine["refresh_token"]})).status_code == 200
    assert (await login(client)).status_code == 401
    assert (await login(client, password=NEW_PASSWORD)).status_code == 200


async def test_links_never_reach_the_log(client: AsyncClient, stub_broker: StubBroker, settings: Settings) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    assert (await register(client)).status_code == 201
    assert (await client.post("/v1/auth/password/forgot", json={"email": "ada@example.com"})).status_code == 202
    queued = list(stub_broker.queues[SendMail.queue_name].queue)
    # Dramatiq logs a failed message with its arguments: they must not hold the link either.
    rendered = " ".join(str(dramatiq.Message.decode(data)) for data in queued)
    tokens = [link_of(mail)[1] for mail in deliver_queued(stub_broker, settings)]
    verified = await client.post("/v1/auth/email/verify", json={"token": tokens[0]})
    reset = await client.post("/v1/auth/password/reset", json={"token": tokens[1], "new_password": NEW_PASSWORD})
    assert (verified.status_code, reset.status_code) == (200, 204)

    logged = stream.getvalue()
    lines = [json.loads(line) for line in logged.splitlines()]
    requested = [line for line in lines if line["event"] == "account_mail_requested"]
    assert [line["purpose"] for line in requested] == ["verify_email", "reset_password"]
    for token in tokens:
        assert token not in logged
        assert token not in rendered
        assert token.split("_", 1)[1] not in logged
    assert "ada@example.com" not in rendered
