"""Structure checks for the deployment files (Containerfile, compose.prod.yaml, config/), never run in CI."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from namaskah.settings import Environment, Settings, load_settings, read_env_file

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "api", "worker", "scheduler")
LONG_RUNNING = ("api", "worker", "scheduler", "postgres", "redis")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@$]+@")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.prod.yaml").read_text(encoding="utf-8"))
    return data


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _env_files(service: dict[str, Any]) -> list[str]:
    """`env_file` may be a string, a list of strings or a list of {path: ...}."""
    return [e["path"] if isinstance(e, dict) else e for e in _as_list(service.get("env_file", []))]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (item.partition("=") for item in env)}
    return dict(env)


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


# --- compose.prod.yaml -------------------------------------------------------------------------


def test_compose_defines_the_six_services() -> None:
    assert set(_services()) == {"migrate", "api", "worker", "scheduler", "postgres", "redis"}


def test_app_services_share_the_image_built_from_the_containerfile() -> None:
    services = _services()
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        assert services[name]["build"]["dockerfile"] == "Containerfile", name


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_read_env_prod(name: str) -> None:
    assert ".env.prod" in _env_files(_services()[name])


def test_app_services_run_the_right_commands() -> None:
    services = _services()
    assert _command(services["migrate"]) == ["namaskah", "database", "upgrade"]
    assert _command(services["worker"]) == ["namaskah", "worker"]
    assert _command(services["scheduler"]) == ["namaskah", "scheduler"]
    assert _command(services["api"])[:2] == ["namaskah", "run"]


def test_restart_policies() -> None:
    services = _services()
    # Unquoted `no` would load as False, which compose rejects: it must be the string.
    assert services["migrate"]["restart"] == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name


@pytest.mark.parametrize(
    ("name", "probe"),
    [
        ("api", "/health/ready"),
        ("postgres", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("worker", "REDIS_URL"),
        ("scheduler", "REDIS_URL"),
    ],
)
def test_long_running_services_have_healthchecks(name: str, probe: str) -> None:
    service = _services()[name]
    assert not service["healthcheck"].get("disable", False)
    assert probe in _healthcheck_text(service)


def test_migrate_disables_the_image_http_healthcheck() -> None:
    assert _services()["migrate"]["healthcheck"] == {"disable": True}


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_waits_for_migration_and_healthy_backing_services(name: str) -> None:
    depends_on = _services()[name]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_migrate_waits_for_healthy_postgres() -> None:
    assert _services()["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_publishes_port_8000() -> None:
    ports = [str(p) for p in _services()["api"]["ports"]]
    assert any(p.endswith(":8000") for p in ports)


def test_no_inline_secret_values() -> None:
    for name, service in _services().items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                assert value is None or str(value).startswith("${"), f"{name}: {key} has a literal value"
            assert not URL_WITH_PASSWORD.search(str(value)), f"{name}: {key} embeds credentials"
    assert not URL_WITH_PASSWORD.search((ROOT / "compose.prod.yaml").read_text(encoding="utf-8"))


def test_postgres_and_redis_keep_data_in_named_volumes() -> None:
    compose = _compose()
    services, volumes = compose["services"], compose.get("volumes") or {}
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"].startswith("postgres:16")
    assert ".env.prod" in _env_files(postgres)
    assert redis["image"].startswith("redis:7")
    assert "--appendonly yes" in " ".join(_command(redis))
    for service, target in ((postgres, "/var/lib/postgresql/data"), (redis, "/data")):
        source, _, mounted_at = service["volumes"][0].partition(":")
        assert mounted_at == target
        assert source in volumes


# --- Containerfile ---------------------------------------------------------------------------


def _stages() -> list[list[tuple[str, str]]]:
    """Instructions as (KEYWORD, arguments), continuation lines joined, grouped by FROM."""
    text = (ROOT / "Containerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        assert stages, "instruction before the first FROM"
        stages[-1].append((keyword.upper(), " ".join(arguments.split())))
    return stages


def _args(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for kw, arguments in stage if kw == keyword]


def test_containerfile_is_multi_stage_on_python_311_slim() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        assert stage[0][1].startswith("python:3.11-slim")


def test_builder_installs_a_pinned_uv_and_syncs_from_the_lockfile() -> None:
    builder = _stages()[0]
    runs = _args(builder, "RUN")
    assert any(re.search(r"pip install .*\buv==\d", run) for run in runs)
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) >= 2
    assert all("--frozen" in run and "--no-dev" in run for run in syncs)
    assert "--no-install-project" in syncs[0]
    assert "--no-editable" in syncs[-1]


def test_builder_copies_the_lockfile_before_the_sources() -> None:
    copies = _args(_stages()[0], "COPY")
    lock_at = next(i for i, c in enumerate(copies) if "uv.lock" in c)
    src_at = next(i for i, c in enumerate(copies) if c.startswith("src"))
    assert lock_at < src_at


def test_runtime_copies_only_the_venv() -> None:
    copies = _args(_stages()[-1], "COPY")
    assert copies
    for copy in copies:
        assert copy.startswith("--from="), copy
        assert ".venv" in copy, copy


def test_runtime_runs_as_a_non_root_user() -> None:
    users = _args(_stages()[-1], "USER")
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_runtime_environment_and_port() -> None:
    runtime = _stages()[-1]
    env = " ".join(_args(runtime, "ENV"))
    for setting in (
        "APP_ENV=production",
        "PYTHONUNBUFFERED=1",
        "LOG_FORMAT=json",
        "PROMETHEUS_MULTIPROC_DIR=",
    ):
        assert setting in env
    assert "/app/.venv/bin" in env
    assert "8000" in _args(runtime, "EXPOSE")


def test_runtime_healthcheck_probes_liveness_with_python() -> None:
    healthchecks = _args(_stages()[-1], "HEALTHCHECK")
    assert len(healthchecks) == 1
    assert "/health/live" in healthchecks[0]
    assert "urllib" in healthchecks[0]
    assert "curl" not in healthchecks[0]


def test_runtime_serves_the_production_api() -> None:
    cmd = _args(_stages()[-1], "CMD")
    assert len(cmd) == 1
    assert json.loads(cmd[0]) == ["namaskah", "run", "--host", "0.0.0.0", "--port", "8000"]


def test_ignore_files_match_and_exclude_local_state() -> None:
    containerignore = (ROOT / ".containerignore").read_text(encoding="utf-8")
    assert (ROOT / ".dockerignore").read_text(encoding="utf-8") == containerignore
    patterns = {line.strip() for line in containerignore.splitlines()}
    for pattern in (".venv", ".tools", ".git", "var", "tests", "bench", ".env.*"):
        assert pattern in patterns, pattern
    assert not patterns & {"src", "jobs", "migrations", "uv.lock", "pyproject.toml", "README.md"}


# --- config/ ---------------------------------------------------------------------------------


def _example_env() -> dict[str, str]:
    return read_env_file(ROOT / "config" / "env.prod.example")


def test_env_example_names_only_real_settings() -> None:
    known = {name.upper() for name in Settings.__struct_fields__}
    names = set(_example_env())
    assert {"APP_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= names
    assert names - known == {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


def test_env_example_ships_no_secret() -> None:
    env = _example_env()
    assert env["SECRET_KEY"] == ""
    assert env["POSTGRES_PASSWORD"] == ""


def test_env_example_is_a_valid_production_config_once_filled_in() -> None:
    env = _example_env() | {"SECRET_KEY": "x" * 48}
    settings = load_settings(env, env_file=None)
    assert settings.app_env is Environment.PRODUCTION
    services = set(_services())
    assert urlsplit(env["DATABASE_URL"]).hostname in services
    assert urlsplit(env["REDIS_URL"]).hostname in services


def test_prometheus_scrapes_the_api() -> None:
    config = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = config["scrape_configs"]
    api = [job for job in jobs if any("api:8000" in c["targets"] for c in job["static_configs"])]
    assert len(api) == 1
    assert api[0].get("metrics_path", "/metrics") == "/metrics"
