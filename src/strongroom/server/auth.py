"""Who is calling: API tokens in ``Authorization``, audited failures, and a per-address limit.

``Authorization: token <T>`` (what ESC clients send) and ``Authorization: Bearer <T>``
are both accepted. :meth:`Service.authenticate <strongroom.service.Service.authenticate>`
finds the token and compares its hash in constant time; a missing, malformed, unknown,
expired or revoked token is one answer, 401 with ``WWW-Authenticate``, so the reply
never tells which. Every failure is written to the audit log (``auth.failed``) and
counted against the client address: after ``auth_failure_limit`` failures within
``auth_failure_window`` the address gets 429 with ``Retry-After`` until the oldest
failure leaves the window. The count lives in this process's memory (each worker
counts on its own; a restart forgets).
"""

from __future__ import annotations

__all__ = ["FailureLimiter", "authenticate", "parse_authorization"]

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.requests import Request

from strongroom.access import Principal, parse_token
from strongroom.errors import AuthenticationError, StoreUnavailableError
from strongroom.model import AuditEvent
from strongroom.server.errors import RateLimitedError
from strongroom.server.state import ServerState, client_address, server_state
from strongroom.service import Service, format_time

_log = logging.getLogger("strongroom.server.auth")
_SCHEMES = ("token", "bearer")
#: The principal of a request, once authenticated (``request.state`` key).
_PRINCIPAL = "strongroom_principal"


class FailureLimiter:
    """Counts authentication failures per client address over a sliding window (thread-safe)."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FailureLimiter(limit={self.limit}, window={self.window})"

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or ``None`` when it is not blocked."""
        with self._lock:
            now = self._clock()
            times = self._recent(client, now)
            if times is None or len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def fail(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(client, now) or deque()
            times.append(now)
            self._failures[client] = times
            self._failures.move_to_end(client)
            while len(self._failures) > self._max_clients:  # bounded memory, whatever the address spread
                self._failures.popitem(last=False)


def parse_authorization(header: str | None) -> tuple[str | None, str]:
    """``(token, reason)``: the token of a ``token``/``Bearer`` header, or ``None`` and why not."""
    if header is None or not header.strip():
        return None, "missing"
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() not in _SCHEMES or not credentials.strip():
        return None, "malformed"
    return credentials.strip(), "rejected"


def _refuse(state: ServerState, request: Request, client: str, token: str | None, reason: str) -> None:
    """Count, audit and log one failure (the token itself never; its public id when it has one)."""
    state.limiter.fail(client)
    state.metrics.auth_failures.labels("missing" if reason == "missing" else "rejected").inc()
    details: list[tuple[str, str]] = [("reason", reason), ("route", request.url.path[:200])]
    parsed = parse_token(token) if token is not None else None
    if parsed is not None:
        details.append(("token_id", parsed[0]))
    event = AuditEvent(
        at=format_time(state.clock()),
        actor="anonymous",
        action="auth.failed",
        outcome="denied",
        client=client,
        details=tuple(sorted(details)),
    )
    try:
        state.require_store().append_audit([event])
    except StoreUnavailableError:
        _log.warning("could not audit an authentication failure from %s: the store is unavailable", client)
    _log.info("authentication failed from %s (%s)", client, reason)


def authenticate(request: Request) -> Principal:
    """The FastAPI dependency behind every authenticated route: the caller's :class:`Principal`."""
    cached = getattr(request.state, _PRINCIPAL, None)
    if isinstance(cached, Principal):
        return cached
    state = server_state(request)
    client = client_address(request)
    wait = state.limiter.retry_after(client)
    if wait is not None:
        state.metrics.auth_failures.labels("rate_limited").inc()
        raise RateLimitedError(
            f"too many failed authentications from {client}",
            retry_after=wait,
            hint=f"wait {wait} s and check the token you send",
        )
    token, reason = parse_authorization(request.headers.get("authorization"))
    store = state.require_store()
    principal: Principal | None = None
    if token is not None:
        checker = Service(store, load_keyring=state.keyring, actor="anonymous", client=client, clock=state.clock)
        principal = checker.authenticate(token)
    if principal is None:
        _refuse(state, request, client, token, reason)
        if reason == "missing":
            raise AuthenticationError(
                "authentication required", hint="send Authorization: token <TOKEN> (or Bearer <TOKEN>)"
            )
        raise AuthenticationError(
            "the token is invalid, expired or revoked",
            hint="send Authorization: token <TOKEN> with a live token (ask an admin for one)",
        )
    setattr(request.state, _PRINCIPAL, principal)
    return principal
