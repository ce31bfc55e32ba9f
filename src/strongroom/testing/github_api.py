"""A local GitHub REST API for GitHub Actions secrets, served over real HTTP for tests.

GitHub cannot be reached from the test machines, so code that pushes values into
GitHub Actions secrets is tested against this server instead. It reproduces the
documented behaviour of https://docs.github.com/rest/actions/secrets (repository,
environment and organization secrets), plus ``GET /user``, ``GET /repos/{owner}/{repo}``
and ``GET /rate_limit``, token authentication and permissions, pagination, and the
primary and secondary rate limits. ``docs/testing/github-api.md`` lists every
behaviour with the GitHub documentation it follows, and what is left out.

:class:`FakeGitHubAPI` holds the state (repositories, environments, organizations,
tokens, key pairs, secrets) and builds the Starlette app; :class:`GitHubAPIServer`
runs that app under uvicorn in a background thread on ``127.0.0.1`` and an ephemeral
port::

    with GitHubAPIServer() as server:
        server.api.add_repository("acme/app", id=101, environments=["production"])
        server.api.add_token("ghp_test", scopes={"repo"})
        sync_secrets(api_url=server.url, token="ghp_test", ...)   # the code under test
        assert server.api.plaintext("acme/app", "DATABASE_URL") == "postgres://..."
        assert server.api.count_requests("GET", r"/public-key$") == 1

Every ``encrypted_value`` the server receives is decrypted with the scope's private
key (``SealedBox(private_key).decrypt(...)``), so a test can compare the value GitHub
would hold with the one it expects. Values are never logged or shown in a repr.

Each instance owns its state; nothing is shared between instances and nothing is
done at import time.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_API_VERSIONS",
    "EnvironmentScope",
    "FakeGitHubAPI",
    "GitHubAPIServer",
    "OrgScope",
    "RecordedRequest",
    "RepoScope",
    "Scope",
    "SecretInfo",
    "TokenKind",
]

import asyncio
import base64
import http
import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias, get_args
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strongroom.testing._github_model import (
    CONTENT_METHODS,
    DEFAULT_API_VERSIONS,
    MAX_SECRET_VALUE_BYTES,
    VISIBILITIES,
    Docs,
    Environment,
    EnvironmentScope,
    KeyPair,
    Organization,
    OrgScope,
    PrimaryBucket,
    RecordedRequest,
    RepoScope,
    Repository,
    Scope,
    SecretInfo,
    SecretStore,
    StoredSecret,
    Token,
    TokenKind,
    invalid_secret_name,
    paginate,
    parse_scope,
)
from strongroom.testing._uvicorn import ThreadedServer

# --------------------------------------------------------------------------- replies and errors


@dataclass(slots=True)
class _Reply:
    """A response before the common headers are added; ``body`` ``None`` means no body."""

    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)


class _HTTPError(Exception):
    """An error response in GitHub's shape: ``{"message", "documentation_url", "status"}``."""

    def __init__(
        self,
        status: int,
        message: str,
        documentation_url: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        body: dict[str, object] = {"message": message, "documentation_url": documentation_url, "status": str(status)}
        if errors:
            body["errors"] = errors
        self.reply = _Reply(status, body, dict(headers or {}))


def _not_found(documentation_url: str) -> _HTTPError:
    return _HTTPError(404, "Not Found", documentation_url)


def _invalid(message: str, documentation_url: str) -> _HTTPError:
    return _HTTPError(422, message, documentation_url)


_SECONDARY_MESSAGE: Final = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@dataclass(slots=True)
class _Failure:
    """An injected failure: answers matching requests with ``status`` ``remaining`` more times."""

    method: str | None
    pattern: re.Pattern[str]
    status: int
    remaining: int | None
    retry_after: int | None
    message: str | None
    after: bool

    def matches(self, method: str, path: str, after: bool) -> bool:
        return (
            self.after == after
            and (self.remaining is None or self.remaining > 0)
            and (self.method is None or self.method == method)
            and self.pattern.search(path) is not None
        )

    def error(self) -> _HTTPError:
        if self.message is not None:
            message = self.message
        elif self.status in (403, 429):
            message = _SECONDARY_MESSAGE
        else:
            message = "Server Error" if self.status in (500, 502) else http.HTTPStatus(self.status).phrase
        headers = {"retry-after": str(self.retry_after)} if self.retry_after is not None else {}
        return _HTTPError(self.status, message, Docs.REST, headers=headers)


# --------------------------------------------------------------------------- routes

_Area: TypeAlias = Literal["user", "rate_limit", "repository", "repo", "env", "env_by_id", "org"]


@dataclass(frozen=True, slots=True)
class _Route:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    area: _Area
    action: str


def _route(methods: str, template: str, area: _Area, action: str) -> _Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return _Route(frozenset(methods.split()), re.compile(f"^{regex}$"), area, action)


def _routes() -> tuple[_Route, ...]:
    """The endpoints, most specific first (``public-key`` before ``{name}``)."""
    routes = [
        _route("GET", "/user", "user", "user"),
        _route("GET", "/rate_limit", "rate_limit", "rate_limit"),
        _route("GET", "/repos/{owner}/{repo}", "repository", "repository"),
    ]
    prefixes: list[tuple[str, _Area]] = [
        ("/repos/{owner}/{repo}/actions/secrets", "repo"),
        ("/repos/{owner}/{repo}/environments/{environment}/secrets", "env"),
        ("/repositories/{repository_id}/environments/{environment}/secrets", "env_by_id"),
        ("/orgs/{org}/actions/secrets", "org"),
    ]
    for prefix, area in prefixes:
        routes += [
            _route("GET", prefix + "/public-key", area, "public_key"),
            _route("GET", prefix, area, "list"),
            _route("GET PUT DELETE", prefix + "/{name}", area, "secret"),
        ]
    routes += [
        _route("GET PUT", "/orgs/{org}/actions/secrets/{name}/repositories", "org", "selected"),
        _route("PUT DELETE", "/orgs/{org}/actions/secrets/{name}/repositories/{repository_id}", "org", "selected_one"),
    ]
    return tuple(routes)


_STORE_KIND: Final[dict[_Area, str]] = {
    "repo": "repository",
    "env": "environment",
    "env_by_id": "environment",
    "org": "organization",
}

#: Anchors of https://docs.github.com/rest/actions/secrets, by (store kind, action, method).
_ANCHORS: Final[dict[tuple[str, str, str], str]] = {
    ("repository", "public_key", "GET"): "get-a-repository-public-key",
    ("repository", "list", "GET"): "list-repository-secrets",
    ("repository", "secret", "GET"): "get-a-repository-secret",
    ("repository", "secret", "PUT"): "create-or-update-a-repository-secret",
    ("repository", "secret", "DELETE"): "delete-a-repository-secret",
    ("environment", "public_key", "GET"): "get-an-environment-public-key",
    ("environment", "list", "GET"): "list-environment-secrets",
    ("environment", "secret", "GET"): "get-an-environment-secret",
    ("environment", "secret", "PUT"): "create-or-update-an-environment-secret",
    ("environment", "secret", "DELETE"): "delete-an-environment-secret",
    ("organization", "public_key", "GET"): "get-an-organization-public-key",
    ("organization", "list", "GET"): "list-organization-secrets",
    ("organization", "secret", "GET"): "get-an-organization-secret",
    ("organization", "secret", "PUT"): "create-or-update-an-organization-secret",
    ("organization", "secret", "DELETE"): "delete-an-organization-secret",
    ("organization", "selected", "GET"): "list-selected-repositories-for-an-organization-secret",
    ("organization", "selected", "PUT"): "set-selected-repositories-for-an-organization-secret",
    ("organization", "selected_one", "PUT"): "add-selected-repository-to-an-organization-secret",
    ("organization", "selected_one", "DELETE"): "remove-selected-repository-from-an-organization-secret",
}


def _doc(kind: str, action: str, method: str) -> str:
    anchor = _ANCHORS.get((kind, action, method))
    return f"{Docs.SECRETS}#{anchor}" if anchor else Docs.SECRETS


@dataclass(slots=True)
class _Call:
    """One request being handled (under the state lock)."""

    method: str
    path: str
    params: list[tuple[str, str]]
    body: bytes
    base_url: str
    token: Token | None = None


# --------------------------------------------------------------------------- the fake


class FakeGitHubAPI:
    """In-memory GitHub: repositories, environments, organizations, tokens and their Actions secrets.

    The constructor's keywords configure the limits; each is also an attribute that a
    test may change while the server runs (``reset()`` restores the constructor's):

    - ``rate_limit``: primary rate limit per token and hour (5,000, Docs.PRIMARY_RATE_LIMIT);
      ``rate_limit_status`` the status when it is exhausted (403; GitHub sends 403 or 429).
    - ``secondary_limit``: content-generating requests (PUT/POST/PATCH/DELETE) per token within
      ``secondary_window`` seconds (80 per 60 s, Docs.SECONDARY_RATE_LIMIT); ``secondary_status``
      403 or 429; ``secondary_retry_after`` a fixed ``Retry-After``, or ``None`` for the seconds
      until the oldest counted request leaves the window.
    - ``api_versions``: accepted ``X-GitHub-Api-Version`` values (Docs.API_VERSIONS).
    - ``latency``: seconds added to every request before it is handled.
    - ``clock``: the time source (epoch seconds) for timestamps and rate-limit windows.

    All methods are thread-safe: the server thread and the test share one lock.
    """

    def __init__(
        self,
        *,
        rate_limit: int = 5000,
        rate_limit_status: int = 403,
        secondary_limit: int = 80,
        secondary_window: float = 60.0,
        secondary_status: int = 403,
        secondary_retry_after: int | None = None,
        api_versions: Collection[str] = DEFAULT_API_VERSIONS,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_versions:
            raise ValueError("api_versions needs at least one version (the first is the default)")
        self._lock = threading.RLock()
        self._defaults: dict[str, Any] = {
            "rate_limit": rate_limit,
            "rate_limit_status": rate_limit_status,
            "secondary_limit": secondary_limit,
            "secondary_window": secondary_window,
            "secondary_status": secondary_status,
            "secondary_retry_after": secondary_retry_after,
            "api_versions": tuple(api_versions),
            "latency": latency,
            "clock": clock,
        }
        self.rate_limit = rate_limit
        self.rate_limit_status = rate_limit_status
        self.secondary_limit = secondary_limit
        self.secondary_window = secondary_window
        self.secondary_status = secondary_status
        self.secondary_retry_after = secondary_retry_after
        self.api_versions: tuple[str, ...] = tuple(api_versions)
        self.latency = latency
        self.clock = clock
        self._routes = _routes()
        self._init_state()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "PUT", "POST", "PATCH", "DELETE"])]
        )

    def _init_state(self) -> None:
        self._repos: dict[str, Repository] = {}
        self._repos_by_id: dict[int, Repository] = {}
        self._orgs: dict[str, Organization] = {}
        self._tokens: dict[str, Token] = {}
        self._requests: list[RecordedRequest] = []
        self._failures: list[_Failure] = []
        self._buckets: dict[str, PrimaryBucket] = {}
        self._anonymous = PrimaryBucket()
        self._writes: dict[str, deque[float]] = {}
        self._next_id = 1000

    def reset(self) -> None:
        """Forget every repository, organization, token, secret, request, failure and counter.

        Also restores the constructor's configuration, so one server can serve many tests.
        """
        with self._lock:
            self._init_state()
            for name, value in self._defaults.items():
                setattr(self, name, value)

    # ------------------------------------------------------------------ setup

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_repository(
        self,
        full_name: str,
        *,
        id: int | None = None,
        environments: Iterable[str] = (),
        private: bool = True,
    ) -> int:
        """Create repository ``"owner/name"`` (with deployment ``environments``); returns its id."""
        owner, slash, name = full_name.partition("/")
        if not (owner and slash and name) or "/" in name:
            raise ValueError(f"a repository is 'owner/name', not {full_name!r}")
        with self._lock:
            if full_name.lower() in self._repos:
                raise ValueError(f"repository {full_name} already exists")
            repo_id = self._new_id() if id is None else id
            if repo_id in self._repos_by_id:
                raise ValueError(f"repository id {repo_id} is already used")
            repo = Repository(owner, name, repo_id, private)
            self._repos[full_name.lower()] = repo
            self._repos_by_id[repo_id] = repo
            for environment in environments:
                self.add_environment(full_name, environment)
            return repo_id

    def add_environment(self, repository: str, name: str) -> None:
        """Create deployment environment ``name`` in ``repository`` (names compare case-insensitively)."""
        with self._lock:
            repo = self._repo(repository)
            if not name or name.lower() in repo.environments:
                raise ValueError(f"environment {name!r} is empty or already exists in {repository}")
            repo.environments[name.lower()] = Environment(name)

    def add_organization(self, login: str, *, id: int | None = None) -> int:
        """Create organization ``login``; returns its id."""
        if not login or "/" in login:
            raise ValueError(f"not an organization login: {login!r}")
        with self._lock:
            if login.lower() in self._orgs:
                raise ValueError(f"organization {login} already exists")
            org_id = self._new_id() if id is None else id
            self._orgs[login.lower()] = Organization(login, org_id)
            return org_id

    def add_token(
        self,
        token: str,
        *,
        scopes: Iterable[str] = (),
        kind: TokenKind = "classic",
        permissions: Mapping[str, str] | None = None,
        expired: bool = False,
        login: str = "strongroom-bot",
        rate_limit: int | None = None,
    ) -> None:
        """Accept ``token``.

        ``kind`` ``"classic"`` (a personal access token (classic) or OAuth token) is authorised by
        ``scopes``: ``repo`` for repository and environment secrets, ``admin:org`` for organization
        secrets. ``"fine-grained"`` (a fine-grained personal access token) and ``"app"`` (a GitHub
        App installation token) are authorised by ``permissions``, e.g. ``{"secrets": "write"}``
        (``"read"`` allows the GETs only); organization secrets use ``organization_secrets`` and
        fall back to ``secrets``. An ``expired`` token gets 401. ``rate_limit`` overrides the
        per-hour primary limit for this token.
        """
        if kind not in get_args(TokenKind):
            raise ValueError(f"token kind must be one of {get_args(TokenKind)}, not {kind!r}")
        levels = dict(permissions or {})
        for name, level in levels.items():
            if level not in ("read", "write"):
                raise ValueError(f"permission {name} must be 'read' or 'write', not {level!r}")
        with self._lock:
            self._tokens[token] = Token(
                value=token,
                kind=kind,
                scopes=frozenset(scopes),
                permissions=levels,
                expired=expired,
                login=login,
                user_id=self._new_id(),
                rate_limit=rate_limit,
            )

    def expire_token(self, token: str) -> None:
        """Make ``token`` expire: from now on it gets 401 Bad credentials."""
        with self._lock:
            self._tokens[token].expired = True

    # ------------------------------------------------------------------ secrets, as a test sees them

    def _repo(self, full_name: str) -> Repository:
        try:
            return self._repos[full_name.lower()]
        except KeyError:
            raise KeyError(f"no repository {full_name}") from None

    def _scope(self, scope: Scope | str) -> tuple[SecretStore, Organization | None]:
        parsed = parse_scope(scope)
        if isinstance(parsed, OrgScope):
            org = self._orgs.get(parsed.organization.lower())
            if org is None:
                raise KeyError(f"no organization {parsed.organization}")
            return org.store, org
        repo = self._repo(parsed.repository)
        if isinstance(parsed, RepoScope):
            return repo.store, None
        environment = repo.environments.get(parsed.environment.lower())
        if environment is None:
            raise KeyError(f"no environment {parsed.environment} in {parsed.repository}")
        return environment.store, None

    def _secret(self, scope: Scope | str, name: str) -> StoredSecret:
        store, _ = self._scope(scope)
        secret = store.secrets.get(name.upper())
        if secret is None:
            raise KeyError(f"no secret {name.upper()} in {parse_scope(scope)}")
        return secret

    def public_key(self, scope: Scope | str) -> tuple[str, str]:
        """``(key_id, key)`` of ``scope``, as ``GET .../secrets/public-key`` returns them."""
        with self._lock:
            store, _ = self._scope(scope)
            return store.key.key_id, store.key.public_key

    def rotate_key(self, scope: Scope | str) -> str:
        """Give ``scope`` a new key pair (values encrypted for the old ``key_id`` then get 422); new key id."""
        with self._lock:
            store, _ = self._scope(scope)
            store.key = KeyPair.generate()
            return store.key.key_id

    def plaintext(self, scope: Scope | str, name: str) -> str:
        """The decrypted value GitHub holds for secret ``name`` of ``scope`` (UTF-8); ``KeyError`` if none."""
        return self.plaintext_bytes(scope, name).decode("utf-8")

    def plaintext_bytes(self, scope: Scope | str, name: str) -> bytes:
        """The decrypted value of secret ``name`` of ``scope`` as bytes; ``KeyError`` if none."""
        with self._lock:
            return self._secret(scope, name).value

    def secret(self, scope: Scope | str, name: str) -> SecretInfo:
        """The metadata of secret ``name`` (never the value); ``KeyError`` if none."""
        with self._lock:
            return self._secret(scope, name).info()

    def secret_names(self, scope: Scope | str) -> list[str]:
        """The names of the secrets of ``scope``, sorted."""
        with self._lock:
            store, _ = self._scope(scope)
            return sorted(store.secrets)

    def set_secret(
        self,
        scope: Scope | str,
        name: str,
        value: str | bytes,
        *,
        visibility: str | None = None,
        selected_repository_ids: Iterable[int] = (),
    ) -> SecretInfo:
        """Create or replace a secret directly, as someone would in the web UI (no request is made).

        The name, size and count rules apply (``ValueError``). Organization secrets take a
        ``visibility`` (default ``"all"``) and, for ``"selected"``, repository ids.
        """
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        with self._lock:
            store, org = self._scope(scope)
            problem = invalid_secret_name(name)
            if problem:
                raise ValueError(problem)
            if len(raw) > MAX_SECRET_VALUE_BYTES:
                raise ValueError("secrets are limited to 48 KB")
            if name.upper() not in store.secrets and len(store.secrets) >= store.limit:
                raise ValueError(f"a {store.kind} can hold at most {store.limit} secrets")
            ids = list(selected_repository_ids)
            if org is None:
                if visibility is not None or ids:
                    raise ValueError("only organization secrets have a visibility")
            else:
                visibility = visibility or "all"
                if visibility not in VISIBILITIES:
                    raise ValueError(f"visibility must be one of {VISIBILITIES}")
                if (visibility == "selected") != bool(ids):
                    raise ValueError("selected_repository_ids go with visibility 'selected', and only with it")
                for repo_id in ids:
                    repo = self._repos_by_id.get(repo_id)
                    if repo is None or repo.owner.lower() != org.login.lower():
                        raise ValueError(f"repository {repo_id} is not a repository of {org.login}")
            return self._store_secret(store, name.upper(), raw, visibility, ids)[0].info()

    def touch(self, scope: Scope | str, name: str, value: str | bytes | None = None) -> SecretInfo:
        """Simulate someone editing the secret in the UI: a new value (random by default) and ``updated_at``."""
        with self._lock:
            secret = self._secret(scope, name)
            if value is None:
                value = f"edited-in-the-ui-{secrets.token_hex(8)}"
            secret.value = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            secret.updated_at = self._next_timestamp(secret.updated_at)
            return secret.info()

    def delete(self, scope: Scope | str, name: str) -> None:
        """Simulate someone deleting the secret in the UI; ``KeyError`` if there is none."""
        with self._lock:
            store, _ = self._scope(scope)
            if store.secrets.pop(name.upper(), None) is None:
                raise KeyError(f"no secret {name.upper()} in {parse_scope(scope)}")

    def _next_timestamp(self, previous: int | None) -> int:
        """Now, in whole seconds, but always after ``previous`` so every write moves ``updated_at``."""
        now = int(self.clock())
        return now if previous is None else max(now, previous + 1)

    def _store_secret(
        self, store: SecretStore, name: str, value: bytes, visibility: str | None, ids: list[int]
    ) -> tuple[StoredSecret, bool]:
        """Create or update; returns the secret and whether it was created."""
        existing = store.secrets.get(name)
        if existing is None:
            now = self._next_timestamp(None)
            secret = StoredSecret(name, value, now, now, visibility, sorted(set(ids)))
            store.secrets[name] = secret
            return secret, True
        existing.value = value
        existing.updated_at = self._next_timestamp(existing.updated_at)
        existing.visibility = visibility
        existing.selected_repository_ids = sorted(set(ids)) if visibility == "selected" else []
        return existing, False

    # ------------------------------------------------------------------ failures, requests, rate limits

    def inject_failure(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        times: int | None = 1,
        retry_after: int | None = None,
        *,
        message: str | None = None,
        after: bool = False,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` (``None``: any) and ``path_regex``
        (searched in the raw path) with ``status``, e.g. 500/502/503 or 429 with ``retry_after``.

        ``times=None`` keeps failing until :meth:`clear_failures`. By default the request is
        refused before it is handled; ``after=True`` handles it (a PUT is applied) and then
        replaces the response, as when a response is lost on the way back.
        """
        with self._lock:
            self._failures.append(
                _Failure(
                    method.upper() if method else None,
                    re.compile(path_regex),
                    status,
                    times,
                    retry_after,
                    message,
                    after,
                )
            )

    def clear_failures(self) -> None:
        """Drop every injected failure."""
        with self._lock:
            self._failures.clear()

    def _take_failure(self, method: str, path: str, *, after: bool) -> _HTTPError | None:
        for failure in self._failures:
            if failure.matches(method, path, after):
                if failure.remaining is not None:
                    failure.remaining -= 1
                return failure.error()
        return None

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy), oldest first: ``(method, raw path, raw query)``."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def count_requests(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many recorded requests have ``method`` (any if ``None``) and a path matching ``path_regex``."""
        pattern = re.compile(path_regex) if path_regex is not None else None
        with self._lock:
            return sum(
                1
                for request in self._requests
                if (method is None or request.method == method.upper())
                and (pattern is None or pattern.search(request.path))
            )

    def reset_rate_limits(self) -> None:
        """Start every token's primary and secondary rate-limit windows afresh."""
        with self._lock:
            self._buckets.clear()
            self._writes.clear()
            self._anonymous = PrimaryBucket()

    # ------------------------------------------------------------------ HTTP

    async def _endpoint(self, request: Request) -> Response:
        """The one Starlette endpoint: record, wait ``latency``, then handle under the state lock.

        Routing is done on the raw path so that percent-encoded slashes in environment names
        (``review%2Fapp``) stay inside their segment, as GitHub requires (Docs.TROUBLESHOOTING).
        """
        raw_path = request.scope.get("raw_path")
        path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
        query = request.url.query
        method = "GET" if request.method == "HEAD" else request.method
        with self._lock:
            self._requests.append(RecordedRequest(request.method, path, query))
            latency = self.latency
        if latency > 0:
            await asyncio.sleep(latency)
        body = await request.body()
        call = _Call(method, path, parse_qsl(query, keep_blank_values=True), body, str(request.base_url).rstrip("/"))
        with self._lock:
            reply = self._handle(call, request.headers)
        if reply.body is None:
            return Response(status_code=reply.status, headers=reply.headers)
        return Response(
            json.dumps(reply.body).encode("utf-8"),
            status_code=reply.status,
            headers=reply.headers,
            media_type="application/json; charset=utf-8",
        )

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        """The route for ``method`` and raw ``path`` and its decoded parameters; ``None`` (404) if none."""
        for route in self._routes:
            found = route.pattern.match(path)
            if found and method in route.methods:
                return route, {key: unquote(value) for key, value in found.groupdict().items()}
        return None

    def _handle(self, call: _Call, headers: Mapping[str, str]) -> _Reply:
        """Authenticate, rate-limit, route and answer one request; always returns a reply."""
        now = self.clock()
        presented = _presented_token(headers.get("authorization"))
        known = self._tokens.get(presented) if presented else None
        if known is not None and known.expired:
            known = None
        version = headers.get("x-github-api-version")
        matched = self._match(call.method, call.path)
        route = matched[0] if matched else None
        try:
            failure = self._take_failure(call.method, call.path, after=False)
            if failure is not None:
                raise failure
            if version is not None and version not in self.api_versions:
                supported = ", ".join(self.api_versions)
                raise _HTTPError(
                    400, f"API version {version} is not supported. Supported versions: {supported}.", Docs.API_VERSIONS
                )
            if known is None:
                if route is None or route.area != "rate_limit":
                    self._anonymous.roll(now)
                    self._anonymous.used += 1
                if presented is not None:
                    raise _HTTPError(401, "Bad credentials", Docs.REST)
                if route is None or route.area != "rate_limit":
                    raise _HTTPError(401, "Requires authentication", Docs.REST)
            else:
                call.token = known
                self._count(known, route, call.method, now)
            if matched is None:
                raise _not_found(Docs.REST)
            reply = self._dispatch(matched[0], matched[1], call)
            failure = self._take_failure(call.method, call.path, after=True)
            if failure is not None:
                raise failure
        except _HTTPError as error:
            reply = error.reply
        selected = version if version in self.api_versions else self.api_versions[0]
        self._decorate(reply, known, route, call.method, selected, now)
        return reply

    def _count(self, token: Token, route: _Route | None, method: str, now: float) -> None:
        """Charge the primary and (for writes) secondary rate limits (Docs.RATE_LIMITS); raise when over."""
        bucket = self._buckets.setdefault(token.value, PrimaryBucket())
        bucket.roll(now)
        if route is None or route.area != "rate_limit":  # GET /rate_limit is free (Docs.RATE_LIMIT_ENDPOINT)
            limit = token.rate_limit if token.rate_limit is not None else self.rate_limit
            if bucket.used >= limit:
                who = "installation" if token.kind == "app" else "user"
                raise _HTTPError(
                    self.rate_limit_status,
                    f"API rate limit exceeded for {who} ID {token.user_id}.",
                    Docs.PRIMARY_RATE_LIMIT,
                )
            bucket.used += 1
        if method in CONTENT_METHODS:
            window = self._writes.setdefault(token.value, deque())
            while window and window[0] <= now - self.secondary_window:
                window.popleft()
            if len(window) >= self.secondary_limit:
                retry_after = self.secondary_retry_after
                if retry_after is None:
                    retry_after = max(1, math.ceil(window[0] + self.secondary_window - now))
                raise _HTTPError(
                    self.secondary_status,
                    _SECONDARY_MESSAGE,
                    Docs.SECONDARY_RATE_LIMIT,
                    headers={"retry-after": str(retry_after)},
                )
            window.append(now)

    def _decorate(
        self, reply: _Reply, token: Token | None, route: _Route | None, method: str, version: str, now: float
    ) -> None:
        """Add the headers GitHub sends with every response (rate limit, OAuth scopes, version, ...)."""
        if token is not None:
            bucket = self._buckets.setdefault(token.value, PrimaryBucket())
            limit = token.rate_limit if token.rate_limit is not None else self.rate_limit
        else:
            bucket, limit = self._anonymous, 60
        bucket.roll(now)
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, limit - bucket.used)),
            "x-ratelimit-used": str(bucket.used),
            "x-ratelimit-reset": str(bucket.reset_at),
            "x-ratelimit-resource": "core",
            "x-github-api-version-selected": version,
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": secrets.token_hex(8).upper(),
            "server": "github.com",
        }
        if token is not None and token.kind == "classic":
            headers["x-oauth-scopes"] = ", ".join(sorted(token.scopes))
            headers["x-accepted-oauth-scopes"] = _accepted_scope(route)
        elif token is not None and route is not None:
            permission = _accepted_permission(route, method)
            if permission:
                headers["x-accepted-github-permissions"] = permission
        headers.update(reply.headers)
        reply.headers = headers

    # ------------------------------------------------------------------ endpoints

    def _dispatch(self, route: _Route, params: dict[str, str], call: _Call) -> _Reply:
        """Answer an authenticated, rate-limited request to a known endpoint.

        The secrets endpoints follow https://docs.github.com/rest/actions/secrets, section by
        section (see ``_ANCHORS``): public key ``{"key_id", "key"}``; list ``{"total_count",
        "secrets"}``; get one secret's metadata (404 if absent); PUT 201 ``{}`` when created,
        204 when updated; DELETE 204 (404 if absent); the organization's selected-repository
        endpoints 204, or 409 when the visibility is not ``selected``.
        """
        token = call.token
        if route.area == "rate_limit":
            return self._rate_limit(token)
        assert token is not None  # only /rate_limit is anonymous
        if route.area == "user":
            return self._user(token)
        if route.area == "repository":
            return self._repository(token, params, call)
        kind = _STORE_KIND[route.area]
        doc = _doc(kind, route.action, call.method)
        store, org = self._resolve(route.area, params, doc)
        self._authorize(token, "org" if route.area == "org" else "repo", write=call.method != "GET")
        if route.action == "public_key":
            return _Reply(200, {"key_id": store.key.key_id, "key": store.key.public_key})
        if route.action == "list":
            return self._list(store, org, call)
        name = params["name"]
        if route.action == "secret" and call.method == "PUT":
            return self._put(store, org, name, call, doc)
        secret = store.secrets.get(name.upper())
        if secret is None:
            raise _not_found(doc)
        if route.action == "secret" and call.method == "GET":
            return _Reply(200, _secret_json(secret, org, call.base_url))
        if route.action == "secret":  # DELETE
            del store.secrets[secret.name]
            return _Reply(204)
        assert org is not None
        if route.action == "selected" and call.method == "GET":
            return self._selected_list(secret, call)
        return self._selected_change(org, secret, route.action, params, call, doc)

    def _resolve(self, area: _Area, params: dict[str, str], doc: str) -> tuple[SecretStore, Organization | None]:
        """The secret store a path names; 404 for an unknown repository, environment or organization."""
        if area == "org":
            org = self._orgs.get(params["org"].lower())
            if org is None:
                raise _not_found(doc)
            return org.store, org
        if area == "env_by_id":
            try:
                repo: Repository | None = self._repos_by_id.get(int(params["repository_id"]))
            except ValueError:
                repo = None
        else:
            repo = self._repos.get(f"{params['owner']}/{params['repo']}".lower())
        if repo is None:
            raise _not_found(doc)
        if area == "repo":
            return repo.store, None
        environment = repo.environments.get(params["environment"].lower())
        if environment is None:
            raise _not_found(doc)
        return environment.store, None

    def _authorize(self, token: Token, area: Literal["repo", "org"], *, write: bool) -> None:
        """403 unless the token may use this endpoint (Docs.SECRETS, per endpoint; Docs.TROUBLESHOOTING)."""
        if token.kind == "classic":
            if ("admin:org" if area == "org" else "repo") in token.scopes:
                return
            raise _HTTPError(403, "Resource not accessible by personal access token", Docs.OAUTH_SCOPES)
        if area == "org":
            level = token.permissions.get("organization_secrets", token.permissions.get("secrets"))
        else:
            level = token.permissions.get("secrets")
        if level == "write" or (level == "read" and not write):
            return
        who = "integration" if token.kind == "app" else "personal access token"
        raise _HTTPError(403, f"Resource not accessible by {who}", Docs.TROUBLESHOOTING + "#resource-not-accessible")

    def _list(self, store: SecretStore, org: Organization | None, call: _Call) -> _Reply:
        """List secrets by name, paginated with a ``Link`` header (Docs.PAGINATION)."""
        ordered = [store.secrets[name] for name in sorted(store.secrets)]
        page, link = paginate(ordered, call.params, call.base_url + call.path)
        body = {"total_count": len(ordered), "secrets": [_secret_json(s, org, call.base_url) for s in page]}
        return _Reply(200, body, {"link": link} if link else {})

    def _put(self, store: SecretStore, org: Organization | None, name: str, call: _Call, doc: str) -> _Reply:
        """Create (201) or update (204) a secret, with GitHub's validation (Docs.SECRETS, Docs.SECRET_NAMES)."""
        data = _json_object(call.body, doc)
        problem = invalid_secret_name(name)
        if problem:
            raise _invalid(problem, Docs.SECRET_NAMES)
        encrypted_value = _required_string(data, "encrypted_value", doc)
        key_id = _required_string(data, "key_id", doc)
        visibility: str | None = None
        ids: list[int] = []
        if org is not None:
            visibility = _required_string(data, "visibility", doc)
            if visibility not in VISIBILITIES:
                raise _invalid(
                    f"Invalid request.\n\nFor 'properties/visibility', {json.dumps(visibility)} is not one of "
                    f"{json.dumps(list(VISIBILITIES))}.",
                    doc,
                )
            ids = _repository_ids(data, doc, required=False)
            if visibility == "selected" and not ids:
                raise _invalid("selected_repository_ids is required when visibility is selected.", doc)
            if visibility != "selected" and ids:
                raise _invalid("selected_repository_ids can only be provided when visibility is selected.", doc)
            self._check_org_repositories(org, ids, doc)
        if key_id != store.key.key_id:
            raise _invalid(f"key_id {key_id} does not match the current public key; fetch the public key again.", doc)
        try:
            value = store.key.open(encrypted_value)
        except ValueError as exc:
            raise _invalid(f"Invalid request.\n\n{exc}.", doc) from None
        if len(value) > MAX_SECRET_VALUE_BYTES:
            raise _invalid(
                f"Secret value is {len(value)} bytes; secrets are limited to 48 KB ({MAX_SECRET_VALUE_BYTES} bytes).",
                Docs.SECRET_LIMITS,
            )
        upper = name.upper()
        if upper not in store.secrets and len(store.secrets) >= store.limit:
            raise _invalid(
                f"Secret limit reached: a {store.kind} can hold at most {store.limit} secrets.", Docs.SECRET_LIMITS
            )
        _, created = self._store_secret(store, upper, value, visibility, ids)
        return _Reply(201, {}) if created else _Reply(204)

    def _check_org_repositories(self, org: Organization, ids: Iterable[int], doc: str) -> None:
        """422 unless every id is a repository owned by ``org``."""
        for repo_id in ids:
            repo = self._repos_by_id.get(repo_id)
            if repo is None or repo.owner.lower() != org.login.lower():
                raise _invalid(f"Repository {repo_id} is not a repository of the {org.login} organization.", doc)

    def _selected_list(self, secret: StoredSecret, call: _Call) -> _Reply:
        """``GET .../secrets/{name}/repositories``: the selected repositories, paginated (Docs.PAGINATION)."""
        repos = [self._repos_by_id[i] for i in secret.selected_repository_ids if i in self._repos_by_id]
        page, link = paginate(repos, call.params, call.base_url + call.path)
        body = {"total_count": len(repos), "repositories": [self._repo_json(r, call.base_url) for r in page]}
        return _Reply(200, body, {"link": link} if link else {})

    def _selected_change(
        self, org: Organization, secret: StoredSecret, action: str, params: dict[str, str], call: _Call, doc: str
    ) -> _Reply:
        """Set, add or remove selected repositories: 204, or 409 when visibility is not ``selected``."""
        if action == "selected":
            ids = _repository_ids(_json_object(call.body, doc), doc, required=True)
        else:
            try:
                ids = [int(params["repository_id"])]
            except ValueError:
                raise _not_found(doc) from None
        if secret.visibility != "selected":
            raise _HTTPError(409, "Conflict when visibility type is not set to selected", doc)
        if call.method == "DELETE":
            secret.selected_repository_ids = [i for i in secret.selected_repository_ids if i not in ids]
            return _Reply(204)
        self._check_org_repositories(org, ids, doc)
        current = set() if action == "selected" else set(secret.selected_repository_ids)
        secret.selected_repository_ids = sorted(current | set(ids))
        return _Reply(204)

    def _user(self, token: Token) -> _Reply:
        """``GET /user`` (Docs.AUTHENTICATED_USER); an installation token is not a user: 403."""
        if token.kind == "app":
            raise _HTTPError(403, "Resource not accessible by integration", Docs.AUTHENTICATED_USER)
        return _Reply(
            200,
            {
                "login": token.login,
                "id": token.user_id,
                "node_id": base64.b64encode(f"04:User{token.user_id}".encode()).decode("ascii"),
                "type": "User",
                "site_admin": False,
                "html_url": f"https://github.com/{token.login}",
            },
        )

    def _rate_limit(self, token: Token | None) -> _Reply:
        """``GET /rate_limit`` (Docs.RATE_LIMIT_ENDPOINT): the core resource; does not count itself."""
        if token is None:
            bucket, limit = self._anonymous, 60
        else:
            bucket = self._buckets.setdefault(token.value, PrimaryBucket())
            limit = token.rate_limit if token.rate_limit is not None else self.rate_limit
        bucket.roll(self.clock())
        core = {"limit": limit, "used": bucket.used, "remaining": max(0, limit - bucket.used), "reset": bucket.reset_at}
        return _Reply(200, {"resources": {"core": core}, "rate": core})

    def _repository(self, token: Token, params: dict[str, str], call: _Call) -> _Reply:
        """``GET /repos/{owner}/{repo}`` (Docs.GET_REPOSITORY); a private repository is 404 without ``repo``."""
        repo = self._repos.get(f"{params['owner']}/{params['repo']}".lower())
        if repo is None or (repo.private and token.kind == "classic" and "repo" not in token.scopes):
            raise _not_found(Docs.GET_REPOSITORY)
        body = self._repo_json(repo, call.base_url)
        body.update(
            {
                "visibility": "private" if repo.private else "public",
                "default_branch": "main",
                "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            }
        )
        return _Reply(200, body)

    def _repo_json(self, repo: Repository, base_url: str) -> dict[str, object]:
        """A minimal repository object, as in the selected-repositories listing."""
        org = self._orgs.get(repo.owner.lower())
        return {
            "id": repo.id,
            "node_id": base64.b64encode(f"010:Repository{repo.id}".encode()).decode("ascii"),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": {"login": repo.owner, "type": "Organization" if org else "User"},
            "html_url": f"https://github.com/{repo.full_name}",
            "url": f"{base_url}/repos/{repo.full_name}",
        }


# --------------------------------------------------------------------------- request helpers


def _presented_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <t>`` or ``token <t>``; ``""`` for any other credentials."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return ""


def _accepted_scope(route: _Route | None) -> str:
    if route is None:
        return ""
    if route.area == "org":
        return "admin:org"
    if route.area in ("repo", "env", "env_by_id", "repository"):
        return "repo"
    return ""


def _accepted_permission(route: _Route, method: str) -> str:
    level = "read" if method == "GET" else "write"
    if route.area == "org":
        return f"organization_secrets={level}"
    if route.area in ("repo", "env", "env_by_id"):
        return f"secrets={level}"
    if route.area == "repository":
        return "metadata=read"
    return ""


def _json_object(body: bytes, doc: str) -> dict[str, Any]:
    """The request body as a JSON object: 400 "Problems parsing JSON" / "Body should be a JSON object"."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise _HTTPError(400, "Problems parsing JSON", doc) from None
    if not isinstance(data, dict):
        raise _HTTPError(400, "Body should be a JSON object", doc)
    return data


def _required_string(data: Mapping[str, Any], key: str, doc: str) -> str:
    if key not in data or data[key] is None:
        raise _invalid(f'Invalid request.\n\n"{key}" wasn\'t supplied.', doc)
    value = data[key]
    if not isinstance(value, str):
        raise _invalid(f"Invalid request.\n\nFor 'properties/{key}', {json.dumps(value)} is not a string.", doc)
    return value


def _repository_ids(data: Mapping[str, Any], doc: str, *, required: bool) -> list[int]:
    value = data.get("selected_repository_ids")
    if value is None:
        if required:
            raise _invalid('Invalid request.\n\n"selected_repository_ids" wasn\'t supplied.', doc)
        return []
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise _invalid(
            f"Invalid request.\n\nFor 'properties/selected_repository_ids', {json.dumps(value)} is not an array "
            "of integers.",
            doc,
        )
    return list(value)


def _secret_json(secret: StoredSecret, org: Organization | None, base_url: str) -> dict[str, object]:
    """A secret as GitHub lists it: name and timestamps; organization secrets add visibility (and URL)."""
    body: dict[str, object] = {
        "name": secret.name,
        "created_at": secret.info().created_at,
        "updated_at": secret.info().updated_at,
    }
    if org is not None:
        body["visibility"] = secret.visibility
        if secret.visibility == "selected":
            body["selected_repositories_url"] = (
                f"{base_url}/orgs/{org.login}/actions/secrets/{secret.name}/repositories"
            )
    return body


# --------------------------------------------------------------------------- the server


class GitHubAPIServer:
    """Runs a :class:`FakeGitHubAPI` under uvicorn in a background thread on ``127.0.0.1:<ephemeral>``.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). ``url`` is the
    base URL to pass as ``--api-url`` (no trailing slash); ``api`` the state to set up
    and inspect; ``requests`` what was received. ``latency`` (seconds) is added to every
    request, e.g. 0.05 to benchmark against a realistic round trip.
    """

    def __init__(
        self, api: FakeGitHubAPI | None = None, *, latency: float | None = None, startup_timeout: float = 10.0
    ) -> None:
        self.api = api if api is not None else FakeGitHubAPI()
        if latency is not None:
            self.api.latency = latency
        self._startup_timeout = startup_timeout
        self._runner = ThreadedServer(self.api.app, name="fake GitHub API server")

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; only while running."""
        if self._runner.url is None:
            raise RuntimeError("the fake GitHub API server is not running; use start() or a with block")
        return self._runner.url

    @property
    def port(self) -> int:
        """The port the server listens on; only while running."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far: ``(method, raw path, raw query)`` (see ``FakeGitHubAPI.requests``)."""
        return self.api.requests

    @property
    def latency(self) -> float:
        """Seconds added to each request."""
        return self.api.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.api.latency = seconds

    def start(self) -> Self:
        """Bind a loopback socket on port 0, serve it from a background thread, wait until it serves."""
        self._runner.start(self._startup_timeout)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; the port is released. Safe to call twice."""
        self._runner.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
