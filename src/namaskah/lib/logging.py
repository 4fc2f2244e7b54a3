"""Structured logging: one structlog pipeline for our code, uvicorn, SQLAlchemy and Dramatiq, with secret redaction."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"

# Keys whose values are secrets wherever they appear (headers, kwargs, bound context).
_SECRET_KEY = re.compile(
    r"(authorization|api[_-]?key|passw(or)?d|secret|token|cookie|totp|otp|recovery|signature|credential)",
    re.IGNORECASE,
)
# Secret-shaped substrings inside free text (a message that quotes a header, a URL with a password...).
_SECRET_VALUE = re.compile(
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|\b(?:nsk|whsec|sk_live|sk_test|pk_live|rt)_[A-Za-z0-9_]{8,}"  # our keys, webhook and Paystack secrets
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"  # user:password in URLs
)


def _scrub_text(text: str) -> str:
    return _SECRET_VALUE.sub(REDACTED, text) if text else text


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace secret values by key name and secret-shaped text anywhere in the event."""
    for key, value in event_dict.items():
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    return msgspec.json.encode(event_dict, enc_hook=str).decode()


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds a duplicate, ANSI-coloured copy of its message.
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def configure_logging(
    level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None, *, sql_echo: bool = False
) -> None:
    """Send every log line, ours and the libraries', to `stream` as JSON (or console text on a terminal)."""
    stream = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Processor = _render_json if use_json else structlog.dev.ConsoleRenderer(colors=stream.isatty())

    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq", "sqlalchemy", "alembic"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    # Our access log replaces uvicorn's; SQL statements only when asked for.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if sql_echo else logging.WARNING)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bound_context() -> MutableMapping[str, Any]:
    """The context bound to the current request or job (request_id and friends)."""
    return structlog.contextvars.get_contextvars()
