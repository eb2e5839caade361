"""RFC 9457 problem details with stable machine codes, and the handlers that make
every error a client can cause answer 4xx instead of 500.

Raise ``Problem(status, code, detail)`` anywhere; the ``code`` is part of the
API contract (clients switch on it), the ``detail`` is for humans.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncpg.exceptions import CannotConnectNowError, PostgresConnectionError
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://kefu.dev/problems/"


class Problem(Exception):
    """An answer in problem details (RFC 9457) with a stable ``code``; ``headers`` go on the
    response (``Retry-After``), ``extra`` into the body."""

    def __init__(self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def check_text(value: str, *, code: str, what: str, max_length: int = 200) -> str:
    """A trimmed, non-empty text of at most ``max_length`` characters, or a 400 ``code``."""
    text = value.strip()
    if not text or len(text) > max_length:
        raise Problem(400, code, f"{what} must have 1 to {max_length} characters")
    return text


def not_found(what: str = "resource") -> Problem:
    """The same answer for a missing row and for another tenant's row."""
    return Problem(404, "not_found", f"{what} not found")


def problem_response(status: int, code: str, detail: str, request: Request | None = None, **extra: Any) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _problem_handler(request: Request, exc: Problem) -> Response[dict[str, Any]]:
    response = problem_response(exc.status, exc.code, exc.detail, request, **exc.extra)
    response.headers.update(exc.headers)
    return response


def _validation_handler(request: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    detail = exc.detail or "the request is not valid"
    code = "malformed_body" if "decode" in detail.lower() or "json" in detail.lower() and not errors else "validation_error"
    return problem_response(400, code, detail, request, errors=[_clean_error(e) for e in errors])


def _clean_error(error: Any) -> Any:
    if isinstance(error, dict):
        return {k: v for k, v in error.items() if k in ("key", "message", "source")}
    return str(error)


def _http_handler(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        log.error("server error on %s: %s", request.url.path, exc.detail)
        return problem_response(status, "internal_error", "the server could not complete the request", request)
    code = _STATUS_CODES.get(status, "client_error")
    detail = exc.detail or code.replace("_", " ")
    if isinstance(exc, NotAuthorizedException):
        code = "unauthorized"
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    elif isinstance(exc, NotFoundException):
        code, detail = "not_found", "not found"
    if status == 400 and any(word in detail.lower() for word in ("json", "decode", "truncated")):  # msgspec: "Input data was truncated"
        code = "malformed_body"
    return problem_response(status, code, detail, request)


def _database_handler(request: Request, exc: DBAPIError) -> Response[dict[str, Any]]:
    """A connection the database server dropped (a restart, a fail-over) is transient:
    503 ``database_unavailable`` with Retry-After, not a 500.  SQLAlchemy has already
    invalidated the pool, so the retry gets fresh connections."""
    if exc.connection_invalidated:
        log.warning("database connection lost on %s %s: %s", request.method, request.url.path, exc.orig)
        response = problem_response(503, "database_unavailable", "the database connection was lost; retry the request", request)
        response.headers["Retry-After"] = "1"
        return response
    return _internal_handler(request, exc)


def _unreachable_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """A connection that could not even be opened: PostgreSQL restarting or failing over
    (asyncpg's "cannot connect now", a refused connection) — 503, not a 500."""
    log.warning("a service was unreachable on %s %s: %r", request.method, request.url.path, exc)
    database = type(exc).__module__.startswith("asyncpg")
    response = problem_response(
        503, "database_unavailable" if database else "service_unavailable",
        "the database cannot be reached; retry shortly" if database else "a service this request needs cannot be reached; retry shortly",
        request,
    )
    response.headers["Retry-After"] = "2"
    return response


def _operational_handler(request: Request, exc: OperationalError) -> Response[dict[str, Any]]:
    """SQLite's "database is locked" (a busy snapshot under concurrent writes) is
    transient: 503 with Retry-After, so clients retry instead of seeing a 500."""
    if exc.connection_invalidated:
        return _database_handler(request, exc)
    message = str(exc.orig).lower() if exc.orig is not None else ""
    if "locked" in message or "busy" in message:
        log.warning("database busy on %s %s: %s", request.method, request.url.path, message)
        response = problem_response(503, "database_busy", "the database is busy; retry the request", request)
        response.headers["Retry-After"] = "1"
        return response
    return _internal_handler(request, exc)


def _internal_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "the server could not complete the request", request
    )


exception_handlers = {
    Problem: _problem_handler,
    ValidationException: _validation_handler,
    HTTPException: _http_handler,
    OperationalError: _operational_handler,
    DBAPIError: _database_handler,
    ConnectionRefusedError: _unreachable_handler,
    PostgresConnectionError: _unreachable_handler,
    CannotConnectNowError: _unreachable_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: _internal_handler,
}
