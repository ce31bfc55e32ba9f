"""ASGI middleware: request metrics, security headers, a last-resort 500, and the body limit.

Outermost first, as ``create_app`` stacks them:

* :class:`MetricsMiddleware` counts every response by method, route template and status;
* :class:`SecurityHeadersMiddleware` adds ``nosniff``, ``no-store`` and friends to every response;
* :class:`CatchAllMiddleware` turns an unexpected exception into ``{"code": 500, ...}`` and logs
  only its type and where it was raised (an exception's text could hold anything);
* :class:`BodyLimitMiddleware` answers 413 before reading a body whose ``Content-Length`` is too
  large, and stops a streamed body as soon as it passes the limit.
"""

from __future__ import annotations

__all__ = ["BodyLimitMiddleware", "CatchAllMiddleware", "MetricsMiddleware", "SecurityHeadersMiddleware"]

import json
import logging
import time
import traceback
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.server.errors import RequestTooLargeError, error_body
from strongroom.server.metrics import Metrics
from strongroom.server.routes import RouteTable

_log = logging.getLogger("strongroom.server")

_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


async def _send_json(send: Send, status: int, message: str, *, close: bool = False) -> None:
    body = json.dumps(error_body(status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts and times every HTTP response (``strongroom_http_requests_total`` and the latency histogram).

    ``routes`` gives the app's :class:`RouteTable` (full templates, prefixes included); it is
    asked for on the first request, when every router has been included.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Callable[[], RouteTable]) -> None:
        self.app = app
        self.metrics = metrics
        self._routes = routes

    def _template(self, route: object) -> str:
        if route is None:
            return "unmatched"
        known = self._routes().template(route)
        return known or str(getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope.get("method", "GET") if scope.get("method") in _METHODS else "OTHER"
            labels = (method, self._template(scope.get("route")), str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


class SecurityHeadersMiddleware:
    """Adds headers that keep API responses out of caches, frames and content sniffing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in _SECURITY_HEADERS if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CatchAllMiddleware:
    """The last resort: an unexpected exception becomes a 500 ``{code, message}``, logged without its text."""

    def __init__(self, app: ASGIApp, routes: Callable[[], RouteTable]) -> None:
        self.app = app
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except RequestTooLargeError as exc:
            if not started:
                await _send_json(send, 413, str(exc.detail), close=True)
        except Exception as exc:  # the edge: nothing may escape as a traceback with a message in it
            frames = traceback.extract_tb(exc.__traceback__)
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
            _log.error(
                "internal error %s at %s answering %s %s",
                type(exc).__name__,
                where,
                scope.get("method"),
                self._routes().template(scope.get("route")) or "unmatched",
            )
            if not started:
                await _send_json(send, 500, "internal error; the server log has its type and place")


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` with 413, without reading them whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length" and value.strip().isdigit() and int(value) > self.max_bytes:
                await _send_json(send, 413, str(RequestTooLargeError(self.max_bytes).detail), close=True)
                return
        total = 0

        async def limited_receive() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.max_bytes:
                    raise RequestTooLargeError(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
