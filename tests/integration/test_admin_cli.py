"""`namaskah users create-admin` and `namaskah audit verify`, run as real commands against a database of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from namaskah.app import create_app
from namaskah.db.engine import create_session_factory
from namaskah.domain.audit.chain import entry_hash
from namaskah.domain.audit.models import AuditLog
from namaskah.domain.audit.service import AuditService
from tests.conftest import serve_in_loop
from tests.support.databases import make_settings, run_cli, settings_env

STRONG = "quartz-meadow-lantern-42"


@pytest.fixture
async def engine(isolated_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(isolated_database, poolclass=NullPool)
    yield engine
    await engine.dispose()


def cli(database: str, *args: str):
    return run_cli(*args, env=settings_env(DATABASE_URL=database))


async def test_create_admin_makes_an_operator_who_reaches_admin_routes(
    isolated_database: str, engine: AsyncEngine, stub_broker: StubBroker
) -> None:
    result = cli(isolated_database, "users", "create-admin", "--email", " Ops@Example.com", "--password", STRONG)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("created operator ops@example.com (")
    assert STRONG not in result.stdout + result.stderr

    app = create_app(make_settings(DATABASE_URL=isolated_database), broker=stub_broker)
    async with serve_in_loop(app) as client:
        login = await client.post("/v1/auth/login", json={"email": "ops@example.com", "password": STRONG})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        users = await client.get("/v1/admin/users", headers=headers)
        assert users.status_code == 200, users.text
        [operator] = users.json()["items"]
        assert (operator["role"], operator["email_verified"]) == ("operator", True)
        logs = await client.get("/v1/admin/audit-logs", params={"action": "admin.user.created"}, headers=headers)
        [entry] = logs.json()["items"]
    assert (entry["actor_type"], entry["actor_user_id"], entry["subject_id"]) == ("cli", None, operator["id"])
    assert entry["after"] == {"email": "ops@example.com", "role": "operator"}
    assert STRONG not in logs.text


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("ops@example.com", STRONG, "ops@example.com already has an account"),
        ("new@example.com", "short1!", "10"),
        ("new@example.com", "qwertyuiop", "common"),
    ],
    ids=["duplicate", "too short", "common"],
)
def test_create_admin_refuses_with_one_line(isolated_database: str, email: str, password: str, message: str) -> None:
    assert (
        cli(isolated_database, "users", "create-admin", "--email", "ops@example.com", "--password", STRONG).returncode
        == 0
    )
    result = cli(isolated_database, "users", "create-admin", "--email", email, "--password", password)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("namaskah: ")
    assert message in lines[0].lower()
    assert password not in result.stderr


async def write_entries(engine: AsyncEngine, commits: int = 3, per_commit: int = 2) -> list[str]:
    """Several commits of several entries each; returns their ids in sequence order."""
    factory = create_session_factory(engine)
    for commit in range(commits):
        async with factory() as session:
            audit = AuditService(session)
            for index in range(per_commit):
                await audit.record(
                    "test.entry", subject_type="test", subject_id=f"{commit}-{index}", after={"tier": "free"}
                )
            await session.commit()
    async with engine.connect() as connection:
        return [str(row) for row in (await connection.scalars(text("SELECT id FROM audit_logs ORDER BY sequence")))]


async def test_verify_passes_on_an_empty_and_on_a_clean_chain(isolated_database: str, engine: AsyncEngine) -> None:
    empty = cli(isolated_database, "audit", "verify")
    assert (empty.returncode, empty.stdout.split(",")[0]) == (0, "audit chain OK: 0 entries")
    await write_entries(engine)
    clean = cli(isolated_database, "audit", "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.startswith("audit chain OK: 6 entries, head ")


async def test_verify_names_the_entry_whose_content_was_changed(isolated_database: str, engine: AsyncEngine) -> None:
    ids = await write_entries(engine)
    async with engine.begin() as connection:
        await connection.execute(text("""UPDATE audit_logs SET after = '{"tier": "enterprise"}' WHERE sequence = 4"""))
    result = cli(isolated_database, "audit", "verify")
    assert result.returncode == 1
    assert f"broken at sequence 4 (id {ids[3]})" in result.stdout
    assert "content does not match its hash" in result.stdout


async def test_verify_names_the_entry_after_a_deleted_one(isolated_database: str, engine: AsyncEngine) -> None:
    ids = await write_entries(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM audit_logs WHERE sequence = 2"))
    result = cli(isolated_database, "audit", "verify")
    assert result.returncode == 1
    assert f"broken at sequence 3 (id {ids[2]}): entry 2 is missing" in result.stdout


async def test_verify_notices_a_deleted_last_entry(isolated_database: str, engine: AsyncEngine) -> None:
    await write_entries(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM audit_logs WHERE sequence = 6"))
    result = cli(isolated_database, "audit", "verify")
    assert result.returncode == 1
    assert "broken at sequence 6: the log ends at sequence 5 but its head records sequence 6" in result.stdout


async def test_verify_notices_a_rewritten_entry_whose_hash_was_recomputed(
    isolated_database: str, engine: AsyncEngine
) -> None:
    ids = await write_entries(engine)
    async with create_session_factory(engine)() as session:
        entry = await session.scalar(select(AuditLog).where(AuditLog.sequence == 4))
        assert entry is not None
        entry.after = {"tier": "enterprise"}
        entry.hash = entry_hash(entry)
        await session.commit()
    result = cli(isolated_database, "audit", "verify")
    assert result.returncode == 1
    assert f"broken at sequence 5 (id {ids[4]}): its prev_hash is not the previous entry's hash" in result.stdout
