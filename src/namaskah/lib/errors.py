"""RFC 9457 problem+json for every error: domain errors, framework errors, database outages and the unexpected."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap
from sqlalchemy import exc as sa_exc

from namaskah.lib.logging import bound_context, get_logger

PROBLEM_JSON = "application/problem+json"
logger = get_logger(__name__)


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str
    source: str = "body"


class Problem(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None
    errors: list[FieldError] | None = None
    checks: dict[str, str] | None = None
    retry_after: int | None = None


class DomainError(Exception):
    """A business rule said no; subclasses pin the status, code and title."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response[Problem]:
    problem = Problem(
        type=f"/problems/{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        request_id=bound_context().get("request_id"),
        **extensions,
    )
    return Response(content=problem, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# Framework statuses we answer with a stable code of our own.
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("not_authenticated", "Not authenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
    503: ("service_unavailable", "Service unavailable"),
}


def _on_domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    return problem_response(exc.status_code, exc.code, exc.title, exc.detail, headers=exc.headers)


def _on_validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    if not isinstance(exc.extra, list) or not exc.extra:
        # Litestar raises this bare for an undecodable body.
        return problem_response(400, "malformed_body", "Malformed request body", _malformed_detail(exc.detail))
    errors = [
        FieldError(
            field=str(item.get("key") or "body"),
            message=str(item.get("message", "invalid value")),
            source=str(item.get("source") or "body"),
        )
        for item in exc.extra
        if isinstance(item, dict)
    ]
    fields = ", ".join(e.field for e in errors)
    return problem_response(422, "validation_failed", "Validation failed", f"Invalid fields: {fields}", errors=errors)


def _malformed_detail(detail: str) -> str:
    return detail if "malformed" in detail.lower() else f"The request body could not be decoded: {detail}"


def _on_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if status >= 500:
        return _internal_error(exc)
    code, title = _HTTP_CODES.get(status, ("http_error", "HTTP error"))
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        code, title = "malformed_json", "Malformed JSON"
    detail = exc.detail if exc.detail and exc.detail != title else title
    return problem_response(status, code, title, detail, headers=dict(exc.headers or {}))


def _on_connection_failure(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Drivers raise plain OSError/TimeoutError while connecting (SQLAlchemy does not wrap those)."""
    if _raised_by_database_driver(exc):
        return _on_database_unavailable(request, exc)
    logger.error("dependency_unavailable", error=type(exc).__name__)
    return problem_response(
        503,
        "service_unavailable",
        "Service unavailable",
        "A service this request needs could not be reached; try again shortly.",
        headers={"Retry-After": "5"},
    )


def _raised_by_database_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if module.startswith(("sqlalchemy.", "asyncpg.", "aiosqlite.")):
            return True
        traceback = traceback.tb_next
    return False


def _on_database_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    logger.error("database_unavailable", error=type(exc).__name__)
    return problem_response(
        503,
        "database_unavailable",
        "Database unavailable",
        "The database could not be reached; try again shortly.",
        headers={"Retry-After": "5"},
    )


def _on_integrity_error(_: Request[Any, Any, Any], exc: sa_exc.IntegrityError) -> Response[Problem]:
    logger.warning("integrity_conflict", error=str(exc.orig).splitlines()[0] if exc.orig else "")
    return problem_response(409, "conflict", "Conflict", "The change conflicts with the current state.")


def _on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    return _internal_error(exc)


def _internal_error(exc: Exception) -> Response[Problem]:
    logger.error("unhandled_exception", exc_info=exc)
    request_id = bound_context().get("request_id", "unknown")
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal server error",
        f"An unexpected error occurred. Quote request id {request_id} when reporting it.",
    )


def _is_unavailable(exc: sa_exc.DBAPIError) -> bool:
    return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def _on_dbapi_error(request: Request[Any, Any, Any], exc: sa_exc.DBAPIError) -> Response[Problem]:
    if _is_unavailable(exc):
        return _on_database_unavailable(request, exc)
    return _internal_error(exc)


exception_handlers: ExceptionHandlersMap = {
    DomainError: _on_domain_error,
    ValidationException: _on_validation_error,
    HTTPException: _on_http_exception,
    sa_exc.IntegrityError: _on_integrity_error,
    sa_exc.DBAPIError: _on_dbapi_error,
    sa_exc.TimeoutError: _on_database_unavailable,  # no pooled connection free within DB_POOL_TIMEOUT
    ConnectionError: _on_connection_failure,
    TimeoutError: _on_connection_failure,
    Exception: _on_unexpected,
}

__all__ = [
    "PROBLEM_JSON",
    "DomainError",
    "Problem",
    "exception_handlers",
    "problem_response",
]
