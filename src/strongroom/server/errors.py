"""Errors translated at the edge: every failure is ``{"code": <HTTP status>, "message": "..."}``.

That is the error model of Pulumi ESC's API (``pulumi_esc_sdk.models.Error``: ``code``
an integer, ``message`` a string). A :class:`~strongroom.errors.DefinitionError`
adds ``diagnostics`` in ESC's shape, which is what ESC routes return for a 400.
Messages come from Strongroom's errors, which never hold a secret; request
validation errors name the field and the rule, never the value sent.
"""

from __future__ import annotations

__all__ = [
    "WWW_AUTHENTICATE",
    "RateLimitedError",
    "RequestTooLargeError",
    "error_body",
    "error_response",
    "install_error_handlers",
]

import http
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from strongroom.errors import AuthenticationError, DefinitionError, StrongroomError
from strongroom.server.routes import route_table

WWW_AUTHENTICATE = 'Bearer realm="strongroom"'


class RateLimitedError(StrongroomError):
    """Too many authentication failures from one client address (HTTP 429)."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class RequestTooLargeError(HTTPException):
    """A request body larger than the configured limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            detail=f"the request body is larger than the {limit} byte limit; nothing was changed",
            headers={"Connection": "close"},
        )


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": status, "message": message, **extra}


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, message, **extra), status_code=status, headers=headers)


def strongroom_error_response(exc: StrongroomError) -> JSONResponse:
    """The response for a Strongroom error: its status, its message and hint, and diagnostics if any."""
    from strongroom.server.esc_values import diagnostic_json

    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, DefinitionError):
        extra["diagnostics"] = [diagnostic_json(d) for d in exc.diagnostics]
    return error_response(exc.http_status, str(exc), headers=headers or None, **extra)


def _validation_message(exc: RequestValidationError) -> str:
    problems: list[str] = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        if error.get("type") == "json_invalid":
            problems.append("the body is not valid JSON")
        else:
            problems.append(f"{loc}: {error.get('msg', 'invalid')}")
    more = len(exc.errors()) - len(problems)
    return "invalid request: " + "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


async def _strongroom_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StrongroomError)
    return strongroom_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 404:
        message = "not found: no such route"
    elif status == 405:
        allowed = route_table(request.app).allowed(request.url.path) or headers.get("Allow", "").split(", ")
        headers["Allow"] = ", ".join(allowed)
        message = f"method not allowed; this route allows {headers['Allow']}"
    elif isinstance(exc.detail, str) and exc.detail:
        message = exc.detail
    else:
        message = http.HTTPStatus(status).phrase
    if status == 401:
        headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    return error_response(status, message, headers=headers or None)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, _validation_message(exc))


async def _not_unicode(_request: Request, _exc: Exception) -> JSONResponse:
    # A YAML escape such as "\ud800" makes a lone surrogate, which no store or response can encode.
    # Raised before anything is written (encryption and the store's insert both encode first).
    return error_response(
        400,
        "the request holds text that is not valid Unicode (a lone surrogate, e.g. from a YAML escape like "
        "\\ud800); nothing was saved",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer Strongroom errors, HTTP errors (404, 405, 413, 415) and validation errors as ``{code, message}``."""
    app.add_exception_handler(StrongroomError, _strongroom_error)
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
