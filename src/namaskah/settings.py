"""Typed settings read from the environment (and an optional .env file); the only source of configuration."""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and is one line."""


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - refused in production by Settings.__post_init__
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
SECRET_FIELDS = frozenset({"secret_key", "textverified_api_key", "database_url", "redis_url"})
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every variable, with the embedded development default; `.env.example` documents each one."""

    app_env: Environment = Environment.DEVELOPMENT
    secret_key: str = DEV_SECRET_KEY
    data_dir: str = "./var"
    database_url: str = ""
    db_pool_size: PositiveInt = 10
    db_max_overflow: Annotated[int, msgspec.Meta(ge=0)] = 10
    db_pool_timeout: NonNegativeFloat = 5.0
    db_echo: bool = False
    redis_url: str = ""
    dramatiq_namespace: str = "namaskah"
    worker_threads: PositiveInt = 8
    outbox_sweep_interval: NonNegativeFloat = 5.0
    outbox_sweep_after: NonNegativeFloat = 10.0
    outbox_batch_size: PositiveInt = 500
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_quiet_paths: str = "/health/live,/health/ready,/metrics"
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    web_concurrency: PositiveInt = 1
    prometheus_multiproc_dir: str = ""
    ready_timeout: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    jwt_issuer: str = "namaskah"
    jwt_audience: str = "namaskah-api"
    access_token_ttl: Annotated[int, msgspec.Meta(ge=60, le=3600)] = 900
    refresh_token_ttl: Annotated[int, msgspec.Meta(ge=3600)] = 2_592_000
    argon2_time_cost: Annotated[int, msgspec.Meta(ge=1)] = 3
    argon2_memory_cost: Annotated[int, msgspec.Meta(ge=8192)] = 65_536
    argon2_parallelism: Annotated[int, msgspec.Meta(ge=1)] = 4
    totp_issuer: str = "Namaskah SMS"
    login_max_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    login_failure_window: Annotated[int, msgspec.Meta(ge=1)] = 900
    login_max_failures_per_ip: Annotated[int, msgspec.Meta(ge=1)] = 50
    rate_limit_anonymous: Annotated[int, msgspec.Meta(ge=1)] = 60
    caller_cache_seconds: NonNegativeFloat = 10.0
    caller_cache_size: PositiveInt = 10_000
    public_base_url: str = "http://127.0.0.1:8000"
    mail_from: str = "Namaskah SMS <no-reply@namaskah.local>"
    email_verification_ttl: Annotated[int, msgspec.Meta(ge=300)] = 172_800
    password_reset_ttl: Annotated[int, msgspec.Meta(ge=300, le=86_400)] = 3600
    fx_rates: str = "USD=1600"
    sms_provider: Literal["simulator", "textverified"] = "simulator"
    verification_window: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 900
    verification_poll_interval: PositiveFloat = 5.0
    verification_events_interval: PositiveFloat = 1.0
    verification_expiry_sweep_interval: NonNegativeFloat = 30.0
    rental_sweep_interval: NonNegativeFloat = 60.0
    rental_poll_interval: PositiveFloat = 30.0
    rental_pending_timeout: Annotated[int, msgspec.Meta(ge=60)] = 600
    textverified_base_url: str = "https://www.textverified.com"
    textverified_username: str = ""
    textverified_api_key: str = ""
    textverified_connect_timeout: PositiveFloat = 5.0
    textverified_read_timeout: PositiveFloat = 20.0
    textverified_write_timeout: PositiveFloat = 10.0
    textverified_pool_timeout: PositiveFloat = 5.0
    textverified_max_connections: PositiveInt = 20
    textverified_max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    textverified_retry_base_delay: NonNegativeFloat = 0.5
    textverified_retry_max_delay: NonNegativeFloat = 10.0
    textverified_token_refresh_margin: NonNegativeFloat = 60.0

    def __repr__(self) -> str:
        # Settings end up in tracebacks and debug output: never with a credential in them.
        fields = (
            f"{name}={'***' if name in SECRET_FIELDS and getattr(self, name) else repr(getattr(self, name))}"
            for name in self.__struct_fields__
        )
        return f"Settings({', '.join(fields)})"

    @property
    def exchange_rates(self) -> dict[str, Decimal]:
        """`FX_RATES="USD=1600,EUR=1750"`: units of our currency per unit of each provider currency."""
        return _parse_rates(self.fx_rates)

    @property
    def is_dev(self) -> bool:
        return self.app_env is Environment.DEVELOPMENT

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under the data directory."""
        if self.database_url:
            return _with_async_driver(self.database_url)
        return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'namaskah.sqlite3'}"

    @property
    def dev_routes_enabled(self) -> bool:
        """`/v1/dev/*` exists everywhere but production (dev mode and the test suite's servers)."""
        return self.app_env is not Environment.PRODUCTION

    @property
    def uses_redis(self) -> bool:
        return bool(self.redis_url)

    @property
    def quiet_paths(self) -> frozenset[str]:
        """Probe and scrape paths: counted in metrics, in the access log only when they fail."""
        return frozenset(p.strip() for p in self.log_quiet_paths.split(",") if p.strip())

    def __post_init__(self) -> None:
        _parse_rates(self.fx_rates)  # a bad FX_RATES stops start-up, not the first purchase
        if self.app_env is Environment.PRODUCTION:
            _require(bool(self.database_url), "DATABASE_URL", "is required in production")
            _require(
                self.database_url.startswith(("postgresql", "postgres:")),
                "DATABASE_URL",
                "must be PostgreSQL in production",
            )
            _require(bool(self.redis_url), "REDIS_URL", "is required in production")
            if self.sms_provider == "textverified":
                _require(bool(self.textverified_username), "TEXTVERIFIED_USERNAME", "is required by SMS_PROVIDER")
                _require(bool(self.textverified_api_key), "TEXTVERIFIED_API_KEY", "is required by SMS_PROVIDER")
            _require(
                self.secret_key != DEV_SECRET_KEY and len(self.secret_key) >= 32,
                "SECRET_KEY",
                "must be set to a random value of at least 32 characters in production",
            )


_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def _parse_rates(text: str) -> dict[str, Decimal]:
    rates: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        currency, _, rate = part.partition("=")
        try:
            value = Decimal(rate.strip())
        except InvalidOperation:
            value = Decimal(0)
        _require(len(currency.strip()) == 3 and value > 0, "FX_RATES", f"has a bad entry {part!r} (want USD=1600)")
        rates[currency.strip().upper()] = value
    return rates


def _with_async_driver(url: str) -> str:
    """Accept the plain URLs managed services hand out (postgres://...) and name the async driver."""
    scheme, sep, rest = url.partition("://")
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}{sep}{rest}"


def _require(condition: bool, variable: str, message: str) -> None:
    if not condition:
        raise SettingsError(f"invalid setting {variable}: {message}")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; blank lines and # comments are skipped, one level of quotes is removed."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


_FIELDS = {name.upper(): name for name in Settings.__struct_fields__}


def load_settings(environ: dict[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Build Settings from `.env` (if present) overlaid by the environment; raise SettingsError on bad input."""
    source: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        source.update(read_env_file(Path(env_file)))
    source.update(os.environ if environ is None else environ)
    raw: dict[str, Any] = {field: source[var] for var, field in _FIELDS.items() if var in source}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_describe(str(exc))) from None


def _describe(message: str) -> str:
    """Turn msgspec's `... - at `$.port`` into a line naming the environment variable."""
    text, _, where = message.rpartition(" - at `$.")
    if not where:
        return f"invalid settings: {message}"
    return f"invalid setting {where.rstrip('`').upper()}: {text}"


@cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
