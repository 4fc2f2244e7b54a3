"""Settings come from the environment (and .env); a bad one stops start-up with one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from namaskah.settings import Environment, Settings, SettingsError, load_settings
from tests.support.databases import run_cli

GOOD_SECRET = "s" * 40


def test_embedded_defaults_need_no_configuration() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.app_env is Environment.DEVELOPMENT
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith("var/namaskah.sqlite3")
    assert not settings.uses_redis
    assert settings.dev_routes_enabled


def test_values_are_converted_from_strings() -> None:
    settings = load_settings({"PORT": "9000", "DB_ECHO": "true", "DB_POOL_TIMEOUT": "2.5"}, env_file=None)
    assert (settings.port, settings.db_echo, settings.db_pool_timeout) == (9000, True, 2.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "eighty"), ("PORT", "70000"), ("LOG_LEVEL", "LOUD"), ("APP_ENV", "staging"), ("DB_POOL_SIZE", "0")],
)
def test_invalid_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^invalid setting {variable}: ") as raised:
        load_settings({variable: value}, env_file=None)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite+aiosqlite:///x.db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://db/namaskah"}, "REDIS_URL"),
        ({"DATABASE_URL": "postgresql://db/namaskah", "REDIS_URL": "redis://r"}, "SECRET_KEY"),
    ],
)
def test_production_refuses_dev_defaults(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"^invalid setting {variable}: "):
        load_settings({"APP_ENV": "production", "SECRET_KEY": GOOD_SECRET, **env} | _drop_secret(variable), None)


def _drop_secret(variable: str) -> dict[str, str]:
    return {"SECRET_KEY": "short"} if variable == "SECRET_KEY" else {}


def test_production_refuses_the_dev_secret_when_unset() -> None:
    env = {"APP_ENV": "production", "DATABASE_URL": "postgresql://db/namaskah", "REDIS_URL": "redis://r"}
    with pytest.raises(SettingsError, match=r"^invalid setting SECRET_KEY: "):
        load_settings(env, env_file=None)


def test_production_accepts_a_complete_configuration() -> None:
    settings = load_settings(
        {
            "APP_ENV": "production",
            "DATABASE_URL": "postgres://u:p@db:5432/namaskah",
            "REDIS_URL": "redis://redis:6379/0",
            "SECRET_KEY": GOOD_SECRET,
        },
        env_file=None,
    )
    assert settings.effective_database_url == "postgresql+asyncpg://u:p@db:5432/namaskah"
    assert not settings.dev_routes_enabled


PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgres://u:p@db:5432/namaskah",
    "REDIS_URL": "redis://:hunter2@redis:6379/0",
    "SECRET_KEY": GOOD_SECRET,
}


@pytest.mark.parametrize("missing", ["TEXTVERIFIED_USERNAME", "TEXTVERIFIED_API_KEY"])
def test_production_on_textverified_needs_its_credentials(missing: str) -> None:
    credentials = {"TEXTVERIFIED_USERNAME": "ops@example.com", "TEXTVERIFIED_API_KEY": "tv-key-1234567890"}
    env = {**PRODUCTION, "SMS_PROVIDER": "textverified", **credentials, missing: ""}
    with pytest.raises(SettingsError, match=rf"^invalid setting {missing}: "):
        load_settings(env, env_file=None)


def test_settings_never_show_a_credential() -> None:
    provider = {"SMS_PROVIDER": "textverified", "TEXTVERIFIED_USERNAME": "ops", "TEXTVERIFIED_API_KEY": "tvk-9"}
    env = {**PRODUCTION, **provider}
    shown = repr(load_settings(env, env_file=None))
    for secret in (GOOD_SECRET, "tvk-9", "hunter2", "u:p@"):
        assert secret not in shown
    assert "textverified_username='ops'" in shown
    assert "textverified_api_key=***" in shown


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('# comment\nPORT=9100\nexport HOST="0.0.0.0"\nLOG_LEVEL=DEBUG\n\n')
    settings = load_settings({"LOG_LEVEL": "WARNING"}, env_file=str(env_file))
    assert (settings.port, settings.host, settings.log_level) == (9100, "0.0.0.0", "WARNING")


def test_cli_stops_with_one_line_and_no_traceback() -> None:
    result = run_cli("database", "upgrade", env={"PORT": "not-a-port"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "namaskah: invalid setting PORT: Expected `int`, got `str`",
    ]


def test_env_example_lists_every_setting() -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip() for line in example.read_text().splitlines() if "=" in line
    }
    assert {field.upper() for field in Settings.__struct_fields__} <= documented
    # The example itself is a valid (development) configuration.
    load_settings({}, env_file=str(example))
