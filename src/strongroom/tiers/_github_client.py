"""A small GitHub REST client for Actions secrets: auth, retries, rate limits, pagination.

GitHub's errors become Strongroom's (:mod:`strongroom.errors`) here, at the edge. The
token is sent in the ``Authorization`` header only; it never goes into an error, a log
line or a repr.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_API_URL",
    "GitHubClient",
    "GitHubError",
    "RetryPolicy",
    "WriteBudget",
    "seal",
]

import base64
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from strongroom.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StrongroomError,
)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_CONTENT_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


class GitHubError(StrongroomError):
    """GitHub could not be reached, or kept failing after the retries."""

    http_status = 502
    code = "github_unavailable"


def seal(public_key_b64: str, value: str) -> str:
    """``value`` in a libsodium sealed box for the scope's public key, base64 (what PUT takes)."""
    from nacl.public import PublicKey, SealedBox

    box = SealedBox(PublicKey(base64.b64decode(public_key_b64)))
    return base64.b64encode(box.encrypt(value.encode("utf-8"))).decode("ascii")


def quote_segment(text: str) -> str:
    return quote(text, safe="")


class WriteBudget:
    """At most ``budget`` content-creating requests in any ``window`` seconds.

    A bucket of ``budget`` tokens: each write takes one, and the token comes back one
    window after that write's response arrived (so the server, which counts arrivals,
    never sees more than ``budget`` in a window). ``hold(seconds)`` pauses every writer,
    as a ``Retry-After`` asks.
    """

    def __init__(self, budget: int = 80, window: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if budget < 1:
            raise ValueError("the write budget must be at least 1")
        self.budget = budget
        self.window = window
        self._clock = clock
        self._changed = threading.Condition()
        self._slots: list[list[float]] = []
        self._held_until = 0.0

    def acquire(self) -> list[float]:
        """Wait for a token; returns the slot to pass to :meth:`release`."""
        with self._changed:
            while True:
                now = self._clock()
                self._slots = [s for s in self._slots if s[0] > now - self.window]
                if self._held_until > now:
                    self._changed.wait(self._held_until - now)
                    continue
                if len(self._slots) < self.budget:
                    slot = [float("inf")]
                    self._slots.append(slot)
                    return slot
                oldest = min(s[0] for s in self._slots)
                # All tokens out: wait for one to come back (or for a release to tell us when).
                self._changed.wait(None if oldest == float("inf") else max(0.001, oldest + self.window - now))

    def release(self, slot: list[float]) -> None:
        with self._changed:
            slot[0] = self._clock()
            self._changed.notify_all()

    def hold(self, seconds: float) -> None:
        with self._changed:
            self._held_until = max(self._held_until, self._clock() + seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed requests are retried: ``attempts`` in all, exponential back-off from
    ``delay`` seconds, and at most ``max_wait`` seconds for one ``Retry-After`` or rate-limit reset."""

    attempts: int = 5
    delay: float = 1.0
    max_wait: float = 900.0


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    writes: int = 0
    retries: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    writes_in_flight: int = 0
    max_writes_in_flight: int = 0


class GitHubClient:
    """Requests to one GitHub API with one token (thread-safe; used by a few workers at once)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        budget: WriteBudget | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.budget = budget if budget is not None else WriteBudget()
        self.retry = retry if retry is not None else RetryPolicy()
        self.stats = ClientStats()
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.api_url,
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "strongroom",
            },
        )

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        what: str = "",
        scope_kind: str = "repo",
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """One request, retried on 5xx, network errors and rate limits; other errors raised.

        ``what`` names the target in messages; ``scope_kind`` (``repo``, ``env``, ``org``)
        chooses the permission a 403 names when GitHub does not say.
        """
        write = method in _CONTENT_METHODS
        last_problem = "no response"
        for attempt in range(self.retry.attempts):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
            slot = self.budget.acquire() if write else None
            self._enter(write)
            try:
                response = self._http.request(method, path, json=json, params=params)
            except httpx.HTTPError as exc:
                last_problem = f"{type(exc).__name__} talking to {self.api_url}"
                self._sleep(self._backoff(attempt))
                continue
            finally:
                self._leave(write)
                if slot is not None:
                    self.budget.release(slot)
            if response.status_code in ok:
                return response
            wait = self._rate_limit_wait(response)
            if wait is not None:
                if wait > self.retry.max_wait:
                    raise GitHubError(
                        f"GitHub rate limit reached for {what or path}; it resets in {int(wait)} s",
                        hint="try again later, or lower the write budget",
                    )
                if write and response.headers.get("retry-after"):
                    self.budget.hold(wait)
                last_problem = f"rate limited ({response.status_code})"
                self._sleep(wait)
                continue
            if response.status_code >= 500:
                last_problem = f"GitHub answered {response.status_code}"
                self._sleep(self._backoff(attempt))
                continue
            if method == "DELETE" and response.status_code == 404 and attempt:
                return response  # our earlier attempt deleted it; the response was lost
            raise self._error(response, what or path, scope_kind)
        raise GitHubError(
            f"{method} {what or path} failed after {self.retry.attempts} attempts: {last_problem}",
            hint="GitHub may be unavailable; run the sync again (it is safe to repeat)",
        )

    def paginate(self, path: str, key: str, *, what: str, scope_kind: str) -> Iterator[dict[str, Any]]:
        """Every item of a listing, following the ``Link: rel="next"`` pages."""
        url: str | None = path
        params: dict[str, str] | None = {"per_page": "100"}
        while url is not None:
            response = self.request("GET", url, params=params, what=what, scope_kind=scope_kind)
            yield from response.json().get(key, [])
            url = response.links.get("next", {}).get("url")
            params = None  # the next link keeps per_page

    # ------------------------------------------------------------------ helpers

    def _enter(self, write: bool) -> None:
        with self._lock:
            s = self.stats
            s.requests += 1
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
            if write:
                s.writes += 1
                s.writes_in_flight += 1
                s.max_writes_in_flight = max(s.max_writes_in_flight, s.writes_in_flight)

    def _leave(self, write: bool) -> None:
        with self._lock:
            self.stats.in_flight -= 1
            if write:
                self.stats.writes_in_flight -= 1

    def _backoff(self, attempt: int) -> float:
        return float(min(self.retry.delay * (2**attempt), self.retry.max_wait))

    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying, when ``response`` is a rate limit; else ``None``."""
        status = response.status_code
        if status not in (403, 429):
            return None
        headers = response.headers
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return self.retry.delay
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                return max(0.0, float(headers["x-ratelimit-reset"]) - self._wall_clock()) + 1.0
            except ValueError:
                return self.retry.delay
        message = _message(response).lower()
        if status == 429 or "rate limit" in message:
            return self.retry.delay
        return None

    def _error(self, response: httpx.Response, what: str, scope_kind: str) -> StrongroomError:
        status = response.status_code
        message = _message(response)
        if status == 401:
            return AuthenticationError(
                "GitHub token invalid or expired",
                hint="create a new token and set GITHUB_TOKEN (or the projection's token)",
            )
        if status == 403:
            return PermissionDeniedError(
                f"the GitHub token may not access {what}: it needs {_missing_permission(response, scope_kind)}",
                hint="grant it and run the sync again",
            )
        if status == 404:
            return NotFoundError(
                f"{what} not found on GitHub, or the token cannot see it",
                hint="check the name in githubSecrets and the token's access",
            )
        detail = f": {message}" if message else ""
        return InvalidInputError(f"GitHub refused {what} ({status}){detail}")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:300] if message else ""


def _missing_permission(response: httpx.Response, scope_kind: str) -> str:
    """The permission a 403 asks for, in words: from GitHub's headers when it sends them."""
    scopes = response.headers.get("x-accepted-oauth-scopes", "").strip()
    if scopes:
        names = " or ".join(f"`{s.strip()}`" for s in scopes.split(","))
        return f"the {names} scope (classic token)"
    permissions = response.headers.get("x-accepted-github-permissions", "").strip()
    if permissions:
        parts = []
        for item in permissions.split(";"):
            name, _, level = item.strip().partition("=")
            parts.append(f"`{name}` ({level or 'write'})")
        return f"the {' or '.join(parts)} permission (fine-grained token or GitHub App)"
    if scope_kind == "org":
        return "the `admin:org` scope (classic token) or the `secrets` permission (GitHub App)"
    return "the `repo` scope (classic token) or the `secrets` permission (GitHub App)"
