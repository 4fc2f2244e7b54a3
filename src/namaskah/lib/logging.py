"""Structured logging: one pipeline for our code, uvicorn, SQLAlchemy and Dramatiq, with secret redaction."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from functools import lru_cache
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
    r"|\b(?:nsk|whsec|sk_live|sk_test|pk_live|rt|ev|pr)_[A-Za-z0-9_-]{8,}"  # our keys and tokens; webhook, Paystack
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"  # user:password in URLs
)

# The request's (or job's) context: request_id and what else gets bound; merged into every line.
_context: ContextVar[dict[str, Any] | None] = ContextVar("namaskah_log_context", default=None)


def bind_context(**values: Any) -> Token[dict[str, Any] | None]:
    """Start a new context for this request or job; hand the token back to `reset_context`."""
    return _context.set(values)


def reset_context(token: Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


def clear_context() -> None:
    _context.set(None)


def bound_context() -> dict[str, Any]:
    """The context bound to the current request or job (request_id and friends); empty outside one."""
    return _context.get() or {}


SCOPE_KEY = "_scope"  # the ASGI scope: `route` is read from it when a line is written, once routing happened


def _merge_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    context = _context.get()
    if context:
        for key, value in context.items():
            if key == SCOPE_KEY:
                if route := value.get("path_template"):
                    event_dict.setdefault("route", route)
            else:
                event_dict.setdefault(key, value)
    return event_dict


def _scrub_text(text: str) -> str:
    # Every secret shape above contains one of these markers; most log strings contain none, and the regex
    # costs far more than the `in` tests.
    if "_" in text or "://" in text or "eyJ" in text or "bearer" in text.lower():
        return _SECRET_VALUE.sub(REDACTED, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if type(value) is str:
        return _scrub_text(value)
    if depth > 4:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


@lru_cache(maxsize=4096)
def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace secret values by key name and secret-shaped text anywhere in the event."""
    for key, value in event_dict.items():
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        elif type(value) is str:
            event_dict[key] = _scrub_text(value)
        elif isinstance(value, Mapping | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


_json = msgspec.json.Encoder(enc_hook=str)


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    return _json.encode(event_dict).decode()


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn adds a duplicate, ANSI-coloured copy of its message.
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        _merge_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


class AccessLog:
    """One line per request. In JSON mode it is written straight to the stream: the access line is the one
    log call every request makes, and structlog plus stdlib logging cost more than the request itself.

    Lines are flushed at most FLUSH_DELAY seconds after being written (one syscall for many requests);
    every other log line flushes the shared stream at once, so a crash loses at most that much access log."""

    FLUSH_DELAY = 0.2

    def __init__(self, stream: TextIO, *, as_json: bool, enabled: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.enabled = enabled
        self.fallback = get_logger("namaskah.access")
        self._flush_scheduled = False

    def request(self, **fields: Any) -> None:
        if not self.enabled:
            return
        if not self.as_json:
            self.fallback.info("request", **fields)
            return
        event: EventDict = {"event": "request", **fields}
        _merge_context(None, "info", event)
        event["level"] = "info"
        event["logger"] = "namaskah.access"
        event["timestamp"] = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        redact_secrets(None, "info", event)
        self.stream.write(_json.encode(event).decode() + "\n")
        if not self._flush_scheduled:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.stream.flush()
            return
        self._flush_scheduled = True
        loop.call_later(self.FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.stream.flush()


_access_log = AccessLog(sys.stdout, as_json=False, enabled=True)


def access_log() -> AccessLog:
    return _access_log


def configure_logging(
    level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None, *, sql_echo: bool = False
) -> None:
    """Send every log line, ours and the libraries', to `stream` as JSON (or console text on a terminal)."""
    global _access_log  # noqa: PLW0603 - logging configuration is process-wide by nature
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
    # httpx notes every provider call at INFO; ours log the operation and outcome instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
    _access_log = AccessLog(stream, as_json=use_json, enabled=logging.getLevelName(level) <= logging.INFO)
