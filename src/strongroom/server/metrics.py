"""Prometheus metrics: one registry per app, and the ``/metrics`` route that serves it.

``/metrics`` is off (404) unless ``STRONGROOM_METRICS_TOKEN`` is set; then it needs
``Authorization: Bearer <token>``, compared with :func:`hmac.compare_digest`. Labels
never carry values: routes are their templates (``/api/esc/environments/{orgName}``),
environments their names.
"""

from __future__ import annotations

__all__ = ["Metrics", "router"]

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from strongroom.errors import AuthenticationError, NotFoundError
from strongroom.server.state import ServerState, server_state

#: Request latency buckets (seconds): most requests take milliseconds, an open with many imports longer.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metric families of one app, in their own :class:`~prometheus_client.CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "strongroom_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "strongroom_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.opens = Counter(
            "strongroom_opens",
            "Environments opened (values served with secrets in plaintext), by environment.",
            ["environment"],
            registry=self.registry,
        )
        self.audit_write_failures = Counter(
            "strongroom_audit_write_failures",
            "Audit records that could not be written because the store was unavailable.",
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "strongroom_auth_failures",
            "Requests refused for want of valid credentials, by reason (missing, rejected, rate_limited).",
            ["reason"],
            registry=self.registry,
        )
        self.rotations = Counter(
            "strongroom_rotations",
            "Secret rotations, by environment, provider and outcome.",
            ["environment", "provider", "outcome"],
            registry=self.registry,
        )

    def __repr__(self) -> str:
        return "Metrics()"

    def render(self) -> bytes:
        return generate_latest(self.registry)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, state: Annotated[ServerState, Depends(server_state)]) -> Response:
    """Prometheus text format; 404 when metrics are off, 401 without the right bearer token."""
    expected = state.config.metrics_token
    if expected is None:
        raise NotFoundError("not found", hint="metrics are off: set STRONGROOM_METRICS_TOKEN to turn them on")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    ok = hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), expected.encode("utf-8"))
    if scheme.lower() != "bearer" or not ok:
        raise AuthenticationError(
            "the metrics endpoint needs its bearer token", hint="send Authorization: Bearer <STRONGROOM_METRICS_TOKEN>"
        )
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
