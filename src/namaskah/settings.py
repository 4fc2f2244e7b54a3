"""Typed settings read from the environment (and an optional .env file); the only source of configuration."""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal, InvalidOperation
from email.utils import parseaddr
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
SECRET_FIELDS = frozenset(
    {"secret_key", "textverified_api_key", "database_url", "redis_url", "smtp_password", "textverified_webhook_secret"}
    | {"paystack_secret_key"}
)
DEV_PAYSTACK_SECRET_KEY = "sk_test_namaskah_dev"  # noqa: S105 - the sandbox's key, refused in production
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
    # Milliseconds an idle queue's consumer sleeps at most between fetches (Dramatiq backs off up to it, with
    # jitter): the delay the first job after a quiet spell sees at each hop, e.g. a pushed SMS to the webhook.
    worker_idle_poll: Annotated[int, msgspec.Meta(ge=10, le=10_000)] = 100
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9191
    dramatiq_heartbeat_timeout: PositiveFloat = 60.0
    dramatiq_dead_message_ttl: PositiveFloat = 604_800.0
    dramatiq_maintenance_chance: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 1000
    scheduler_lock_ttl: Annotated[float, msgspec.Meta(ge=0.5)] = 30.0
    scheduler_in_process: bool = True
    scheduler_outbox_sweep_interval: NonNegativeFloat = 5.0
    scheduler_verification_expiry_interval: NonNegativeFloat = 30.0
    scheduler_rental_sweep_interval: NonNegativeFloat = 60.0
    scheduler_subscription_sweep_interval: NonNegativeFloat = 300.0
    scheduler_webhook_sweep_interval: NonNegativeFloat = 60.0
    scheduler_reconciliation_interval: NonNegativeFloat = 86_400.0
    scheduler_topup_sweep_interval: NonNegativeFloat = 60.0
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
    smtp_host: str = ""
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: PositiveFloat = 10.0
    email_verification_ttl: Annotated[int, msgspec.Meta(ge=300)] = 172_800
    password_reset_ttl: Annotated[int, msgspec.Meta(ge=300, le=86_400)] = 3600
    fx_rates: str = "USD=1600"
    tax_mode: Literal["inclusive", "exclusive"] = "inclusive"
    tax_point: Literal["payment", "usage"] = "payment"
    tax_default_country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] = "NG"
    invoice_seller_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "Namaskah SMS"
    invoice_seller_address: Annotated[str, msgspec.Meta(max_length=500)] = "Lagos, Nigeria"
    invoice_seller_tax_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    sms_provider: Literal["simulator", "textverified"] = "simulator"
    verification_window: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 900
    verification_poll_interval: PositiveFloat = 5.0
    verification_events_interval: PositiveFloat = 1.0
    verification_expiry_sweep_interval: NonNegativeFloat = 30.0
    rental_sweep_interval: NonNegativeFloat = 60.0
    rental_poll_interval: PositiveFloat = 30.0
    rental_pending_timeout: Annotated[int, msgspec.Meta(ge=60)] = 600
    webhook_allow_http: bool = False
    webhook_allow_private_hosts: bool = False
    webhook_connect_timeout: PositiveFloat = 5.0
    webhook_timeout: PositiveFloat = 15.0
    webhook_retry_base_delay: PositiveFloat = 20.0
    webhook_retry_max_delay: PositiveFloat = 14_400.0
    webhook_retry_window: Annotated[int, msgspec.Meta(ge=60, le=604_800)] = 86_400
    webhook_disable_after_failures: PositiveInt = 15
    webhook_disable_after: Annotated[int, msgspec.Meta(ge=0)] = 86_400
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
    textverified_webhook_secret: str = ""
    provider_event_match_attempts: PositiveInt = 12
    provider_event_match_interval: PositiveFloat = 5.0
    paystack_secret_key: str = ""
    paystack_base_url: str = "https://api.paystack.co"
    paystack_connect_timeout: PositiveFloat = 5.0
    paystack_timeout: PositiveFloat = 15.0
    paystack_max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    paystack_retry_base_delay: NonNegativeFloat = 0.5
    paystack_retry_max_delay: NonNegativeFloat = 8.0
    paystack_webhook_ips: str = ""
    paystack_trusted_proxies: str = ""
    reconciliation_lookback: PositiveFloat = 172_800.0
    reconciliation_page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    reconciliation_max_pages: PositiveInt = 1_000
    topup_min_amount: PositiveInt = 10_000
    topup_max_amount: PositiveInt = 100_000_000
    topup_currencies: str = "NGN"
    topup_initializing_timeout: Annotated[int, msgspec.Meta(ge=60)] = 900
    subscription_grace_days: Annotated[int, msgspec.Meta(ge=0, le=60)] = 3

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
    def paystack_key(self) -> str:
        """PAYSTACK_SECRET_KEY; unset, the sandbox's key outside production and none in production (billing then
        answers 503 `paystack_not_configured`: a publicly known key would let anyone sign webhooks)."""
        if self.paystack_secret_key or self.app_env is Environment.PRODUCTION:
            return self.paystack_secret_key
        return DEV_PAYSTACK_SECRET_KEY

    @property
    def paystack_sandbox(self) -> bool:
        """The embedded Paystack (local checkout page, answers from our own tables): the dev key, never production."""
        return self.app_env is not Environment.PRODUCTION and self.paystack_key == DEV_PAYSTACK_SECRET_KEY

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
        _check_mail(self)
        _check_paystack(self)
        if self.app_env is Environment.PRODUCTION:
            _require(bool(self.database_url), "DATABASE_URL", "is required in production")
            _require(
                self.database_url.startswith(("postgresql", "postgres:")),
                "DATABASE_URL",
                "must be PostgreSQL in production",
            )
            _require(bool(self.redis_url), "REDIS_URL", "is required in production")
            # Webhooks to plain http or internal addresses are for a developer's own machine only.
            _require(not self.webhook_allow_http, "WEBHOOK_ALLOW_HTTP", "must be false in production")
            _require(not self.webhook_allow_private_hosts, "WEBHOOK_ALLOW_PRIVATE_HOSTS", "must be false in production")
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


def _check_mail(settings: Settings) -> None:
    _require("@" in parseaddr(settings.mail_from)[1], "MAIL_FROM", "must hold an address (Name <user@domain>)")
    _require(settings.public_base_url.startswith(("http://", "https://")), "PUBLIC_BASE_URL", "must be an http(s) URL")
    _require(
        bool(settings.smtp_username) == bool(settings.smtp_password),
        "SMTP_PASSWORD" if settings.smtp_username else "SMTP_USERNAME",
        "is required with the other SMTP credential",
    )
    # A password sent in clear to a relay across the network is a password given away.
    _require(
        settings.app_env is not Environment.PRODUCTION
        or not settings.smtp_password
        or settings.smtp_tls != "none"
        or settings.smtp_host in {"localhost", "127.0.0.1", "::1"},
        "SMTP_TLS",
        "must be starttls or tls in production when SMTP credentials are set (unless SMTP_HOST is local)",
    )


def _check_paystack(settings: Settings) -> None:
    _require(
        not settings.paystack_secret_key or settings.paystack_secret_key.startswith("sk_"),
        "PAYSTACK_SECRET_KEY",
        "must be a secret key (sk_...)",
    )
    _require(
        settings.app_env is not Environment.PRODUCTION or settings.paystack_secret_key != DEV_PAYSTACK_SECRET_KEY,
        "PAYSTACK_SECRET_KEY",
        "must be the account's own key in production (the sandbox key is refused)",
    )
    _require(
        settings.paystack_base_url.startswith("https://") or settings.app_env is not Environment.PRODUCTION,
        "PAYSTACK_BASE_URL",
        "must be https in production",
    )
    _require(settings.topup_min_amount <= settings.topup_max_amount, "TOPUP_MAX_AMOUNT", "must be >= TOPUP_MIN_AMOUNT")
    for currency in filter(None, (c.strip() for c in settings.topup_currencies.split(","))):
        # A wallet holds naira only (lib.money.CURRENCY): crediting another currency would need a conversion.
        _require(currency == "NGN", "TOPUP_CURRENCIES", f"lists {currency!r}; wallets hold NGN only")
    for name in ("paystack_webhook_ips", "paystack_trusted_proxies"):
        for part in filter(None, (p.strip() for p in getattr(settings, name).split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                _require(False, name.upper(), f"has {part!r}, which is not an IP address or network")


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
