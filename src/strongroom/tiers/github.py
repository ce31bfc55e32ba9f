"""The GitHub tier: push an environment's ``githubSecrets`` into GitHub Actions secrets.

``plan_github_sync`` reads the projection, checks it (before any request), lists what
GitHub holds and compares it with what Strongroom owns; ``apply_github_sync`` writes the
changes (sealed boxes, a write budget, retries) and records ownership; ``github_status``
reports drift. For one stored environment, ``environment_status``, ``plan_environment`` and
``sync_environment`` open it, connect with its token, do the above and audit it, returning
data; ``run_sync`` / ``run_status`` (what ``strongroom sync`` calls, through ``sync_from_cli`` /
``status_from_cli``) print it and the web console renders it.
See ``docs/github.md``.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_API_URL",
    "CheckResult",
    "DeclaredSecret",
    "Drift",
    "GitHubPlan",
    "GitHubProjection",
    "GitHubStatus",
    "NoTokenError",
    "Outcome",
    "PlannedChange",
    "SyncReport",
    "SyncSettings",
    "apply_github_sync",
    "check_secrets_permission",
    "check_token",
    "environment_status",
    "format_outcomes",
    "format_plan",
    "format_status",
    "github_status",
    "load_owned",
    "owned_scopes",
    "parse_projection",
    "plan_environment",
    "plan_github_sync",
    "run_status",
    "run_sync",
    "save_owned",
    "status_from_cli",
    "sync_environment",
    "sync_from_cli",
    "validate_projection",
]

import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from strongroom.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    PathError,
    PermissionDeniedError,
    StrongroomError,
)
from strongroom.model import EnvRef, RevisionRef
from strongroom.tiers._github_client import (
    DEFAULT_API_URL,
    GitHubClient,
    RetryPolicy,
    WriteBudget,
    quote_segment,
    seal,
)
from strongroom.tiers._github_state import OwnedSecret, load_owned, owned_scopes, save_owned

if TYPE_CHECKING:
    from strongroom.language import EvalValue
    from strongroom.service import Service

PROJECTION = "githubSecrets"
MAX_VALUE_BYTES = 48 * 1024
MAX_PER_REPOSITORY = 100
MAX_PER_ORGANIZATION = 1000
VISIBILITIES = ("all", "private", "selected")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

ScopeKind = Literal["repo", "env", "org"]
Action = Literal["add", "change", "remove", "unchanged", "conflict", "orphan"]


# --------------------------------------------------------------------------- the projection


@dataclass(frozen=True, slots=True)
class Target:
    """Where secrets live: a repository, one of its deployment environments, or an organization.

    ``key`` is ``owner/repo``, ``owner/repo:environment`` or ``org:login``.
    """

    kind: ScopeKind
    owner: str
    repo: str = ""
    environment: str = ""

    @property
    def key(self) -> str:
        if self.kind == "org":
            return f"org:{self.owner}"
        base = f"{self.owner}/{self.repo}"
        return f"{base}:{self.environment}" if self.kind == "env" else base

    @property
    def path(self) -> str:
        """The secrets collection's API path."""
        if self.kind == "org":
            return f"/orgs/{quote_segment(self.owner)}/actions/secrets"
        repo = f"/repos/{quote_segment(self.owner)}/{quote_segment(self.repo)}"
        if self.kind == "env":
            return f"{repo}/environments/{quote_segment(self.environment)}/secrets"
        return f"{repo}/actions/secrets"

    @property
    def label(self) -> str:
        if self.kind == "org":
            return f"organization {self.owner}"
        if self.kind == "env":
            return f"environment {self.environment} of {self.owner}/{self.repo}"
        return f"repository {self.owner}/{self.repo}"

    @classmethod
    def parse(cls, key: str) -> Target:
        if key.startswith("org:"):
            return cls("org", key[4:])
        repo, _, environment = key.partition(":")
        owner, _, name = repo.partition("/")
        return cls("env", owner, name, environment) if environment else cls("repo", owner, name)


@dataclass(frozen=True, slots=True)
class DeclaredSecret:
    """One secret the projection declares. ``value`` is plaintext: never shown in a repr."""

    target: Target
    name: str  # upper case, as GitHub stores it
    value: str = field(repr=False)
    visibility: str | None = None
    selected_repositories: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"DeclaredSecret({self.target.key!r}, {self.name!r}, value='[secret]')"


@dataclass(frozen=True, slots=True)
class GitHubProjection:
    """The parsed ``githubSecrets`` block: its secrets by scope, and the token it names (if any)."""

    secrets: tuple[DeclaredSecret, ...]
    token: str | None = field(default=None, repr=False)
    problems: tuple[str, ...] = ()

    @property
    def targets(self) -> list[Target]:
        seen: dict[str, Target] = {}
        for s in self.secrets:
            seen.setdefault(s.target.key, s.target)
        return [seen[k] for k in sorted(seen)]

    def __repr__(self) -> str:
        return f"GitHubProjection(secrets={len(self.secrets)}, token={'[secret]' if self.token else None})"


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _plain(node: EvalValue, where: str, problems: list[str]) -> Any:
    if isinstance(node.value, dict):
        return {k: _plain(c, f"{where}.{k}", problems) for k, c in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(c, f"{where}[{i}]", problems) for i, c in enumerate(node.value)]
    if node.unknown:
        problems.append(f"{where}: the value is unknown (it could not be evaluated)")
        return None
    return node.value


def parse_projection(node: EvalValue) -> GitHubProjection:
    """The ``githubSecrets`` value, opened (plaintext), as a :class:`GitHubProjection`.

    Shape problems are collected in ``problems``; :func:`validate_projection` adds the
    GitHub rules.
    """
    problems: list[str] = []
    data = _plain(node, PROJECTION, problems)
    if not isinstance(data, dict):
        return GitHubProjection((), None, (f"{PROJECTION} must be an object",))
    secrets: list[DeclaredSecret] = []

    def mapping(value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            problems.append(f"{where} must be an object")
            return {}
        return value

    def add_secrets(target: Target, values: Any, where: str, **extra: Any) -> None:
        for name, value in mapping(values, where).items():
            if value is None or isinstance(value, dict | list):
                problems.append(f"{where}.{name}: a secret's value must be a string")
                continue
            secrets.append(DeclaredSecret(target, name, _text(value), **extra))

    for key in data:
        if key not in ("repositories", "organizations", "token"):
            problems.append(f"{PROJECTION}.{key}: unknown key (expected repositories, organizations or token)")
    for repo, body in mapping(data.get("repositories"), f"{PROJECTION}.repositories").items():
        where = f"{PROJECTION}.repositories.{repo}"
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            problems.append(f"{where}: a repository is named owner/name")
            continue
        body = mapping(body, where)
        for k in body:
            if k not in ("secrets", "environments"):
                problems.append(f"{where}.{k}: unknown key (expected secrets or environments)")
        add_secrets(Target("repo", owner, name), body.get("secrets"), f"{where}.secrets")
        for env_name, env_secrets in mapping(body.get("environments"), f"{where}.environments").items():
            add_secrets(Target("env", owner, name, env_name), env_secrets, f"{where}.environments.{env_name}")
    for org, body in mapping(data.get("organizations"), f"{PROJECTION}.organizations").items():
        where = f"{PROJECTION}.organizations.{org}"
        body = mapping(body, where)
        for k in body:
            if k not in ("secrets", "visibility", "selectedRepositories"):
                problems.append(f"{where}.{k}: unknown key (expected secrets, visibility or selectedRepositories)")
        visibility = body.get("visibility", "private")
        selected = body.get("selectedRepositories") or []
        if visibility not in VISIBILITIES:
            problems.append(f"{where}.visibility: must be all, private or selected")
        if not isinstance(selected, list) or not all(isinstance(r, str) and r for r in selected):
            problems.append(f"{where}.selectedRepositories: must be a list of repository names")
            selected = []
        if visibility == "selected" and not selected:
            problems.append(f"{where}: visibility selected needs selectedRepositories")
        if visibility != "selected" and selected:
            problems.append(f"{where}: selectedRepositories needs visibility: selected")
        repos = tuple(sorted({r.rpartition("/")[2] for r in selected}))
        add_secrets(
            Target("org", org),
            body.get("secrets"),
            f"{where}.secrets",
            visibility=visibility,
            selected_repositories=repos,
        )
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        problems.append(f"{PROJECTION}.token must be a string")
        token = None
    return GitHubProjection(tuple(secrets), token or None, tuple(problems))


def validate_projection(projection: GitHubProjection) -> list[str]:
    """Every rule GitHub would enforce, checked locally (no request is made). Never quotes a value."""
    problems = list(projection.problems)
    counts: dict[str, int] = {}
    seen: dict[tuple[str, str], str] = {}
    normalised: list[DeclaredSecret] = []
    for s in projection.secrets:
        where = f"{s.target.key} {s.name}"
        if not _NAME.match(s.name):
            problems.append(f"{where}: a secret name has only letters, digits and _ and does not start with a digit")
        elif s.name.upper().startswith("GITHUB_"):
            problems.append(f"{where}: a secret name must not start with GITHUB_")
        upper = s.name.upper()
        other = seen.get((s.target.key, upper))
        if other is not None:
            problems.append(f"{where}: the same name as {other} (GitHub names are not case-sensitive)")
        seen[(s.target.key, upper)] = s.name
        size = len(s.value.encode("utf-8", "surrogatepass"))
        if size > MAX_VALUE_BYTES:
            problems.append(f"{where}: the value is {size} bytes; GitHub takes at most 48 KB ({MAX_VALUE_BYTES})")
        counts[s.target.key] = counts.get(s.target.key, 0) + 1
        normalised.append(replace(s, name=upper))
    for key, count in sorted(counts.items()):
        limit = MAX_PER_ORGANIZATION if key.startswith("org:") else MAX_PER_REPOSITORY
        if count > limit:
            problems.append(f"{key}: {count} secrets; GitHub allows at most {limit} here")
    return problems


def _normalised(projection: GitHubProjection) -> GitHubProjection:
    return replace(projection, secrets=tuple(replace(s, name=s.name.upper()) for s in projection.secrets))


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One line of a plan: never a value."""

    scope: str
    name: str
    action: Action
    reason: str = ""


@dataclass(slots=True)
class _ScopeState:
    target: Target
    remote: dict[str, str | None]  # upper-case name -> updated_at (None for a scope not listed)
    owned: dict[str, OwnedSecret]
    listed: bool = True


@dataclass(slots=True)
class GitHubPlan:
    """What a sync would do. ``changes`` are sorted by scope and name."""

    env: EnvRef
    revision: int
    api_url: str
    changes: list[PlannedChange]
    declared: dict[tuple[str, str], DeclaredSecret] = field(repr=False)
    hmacs: dict[tuple[str, str], str] = field(repr=False)
    scopes: dict[str, _ScopeState] = field(repr=False)
    repository_ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def writes(self) -> list[PlannedChange]:
        return [c for c in self.changes if c.action in ("add", "change", "remove")]

    def summary(self) -> str:
        return (
            f"{self.count('add')} to add, {self.count('change')} to change, {self.count('remove')} to remove, "
            f"{self.count('unchanged')} unchanged"
            + (f", {self.count('conflict')} in conflict" if self.count("conflict") else "")
            + (f", {self.count('orphan')} no longer declared (kept)" if self.count("orphan") else "")
        )


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Knobs of a sync: the write budget (content-creating requests per ``window`` seconds),
    the number of concurrent workers, and the retry policy."""

    budget: int = 80
    window: float = 60.0
    concurrency: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    transport: httpx.BaseTransport | None = None


def _later(a: str | None, b: str | None) -> bool:
    """True when timestamp ``a`` is later than ``b`` (ISO 8601, ``Z``)."""
    if a is None or b is None:
        return False
    return _parse_time(a) > _parse_time(b)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _open_projection(service: Service, ref: RevisionRef) -> tuple[int, GitHubProjection]:
    revision = service.resolve(ref).number
    try:
        node, _ev = service.open(RevisionRef(ref.env, revision), (PROJECTION,))
    except PathError:
        raise InvalidInputError(
            f"{ref.env} declares no {PROJECTION}",
            hint="add a githubSecrets block (see docs/github.md)",
        ) from None
    projection = parse_projection(node)
    problems = validate_projection(projection)
    if problems:
        shown = "; ".join(problems[:20]) + ("; ..." if len(problems) > 20 else "")
        raise InvalidInputError(
            f"{PROJECTION} in {ref.env}@{revision} has {len(problems)} problem(s): {shown}",
            hint=f"fix them with `strongroom env edit {ref.env}`; nothing was sent to GitHub",
        )
    return revision, _normalised(projection)


class NoTokenError(AuthenticationError):
    """No GitHub token at all (neither ``GITHUB_TOKEN`` nor the projection's ``token``): not configured."""


def _token(projection: GitHubProjection, environ: Mapping[str, str]) -> str:
    token = projection.token or environ.get("GITHUB_TOKEN") or ""
    if not token.strip():
        raise NoTokenError(
            "no GitHub token",
            hint=f"set GITHUB_TOKEN, or name a stored value as `token: ${{...}}` in {PROJECTION}",
        )
    return token.strip()


_T = TypeVar("_T")
_R = TypeVar("_R")


def _each(
    fn: Callable[[_T], _R], items: Sequence[_T], concurrency: int
) -> list[_R | StrongroomError]:
    """``fn`` over ``items``, ``concurrency`` at a time (one request per scope, so scopes don't wait
    on each other's latency); a Strongroom error is returned in the item's place, anything else raises."""

    def call(item: _T) -> _R | StrongroomError:
        try:
            return fn(item)
        except StrongroomError as exc:
            return exc

    if len(items) <= 1 or concurrency <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(call, items))


def _list_remote(client: GitHubClient, target: Target) -> dict[str, str | None]:
    return {
        str(item["name"]).upper(): item.get("updated_at")
        for item in client.paginate(target.path, "secrets", what=f"secrets of {target.label}", scope_kind=target.kind)
    }


def plan_github_sync(
    service: Service,
    ref: RevisionRef,
    client: GitHubClient,
    projection: GitHubProjection,
    revision: int,
    *,
    prune: bool = False,
    adopt: bool = False,
    concurrency: int = 4,
) -> GitHubPlan:
    """Compare the projection with GitHub and with what ``ref.env`` owns. Reads only.

    The scopes' secret lists are fetched ``concurrency`` at a time (one list per scope).
    """
    env = ref.env
    store = service.store
    declared = {(s.target.key, s.name): s for s in projection.secrets}
    hmacs = {key: service.value_hmac(s.value) for key, s in declared.items()}
    scopes: dict[str, _ScopeState] = {}
    targets = list(projection.targets)
    for target, remote in zip(targets, _each(lambda t: _list_remote(client, t), targets, concurrency), strict=True):
        if isinstance(remote, StrongroomError):
            raise remote
        scopes[target.key] = _ScopeState(target, remote, load_owned(store, env, target.key))
    for key in owned_scopes(store, env):
        if key not in scopes:
            scopes[key] = _ScopeState(Target.parse(key), {}, load_owned(store, env, key), listed=False)
    repository_ids: dict[tuple[str, str], int] = {}
    for s in projection.secrets:
        for repo in s.selected_repositories:
            if (s.target.owner, repo) not in repository_ids:
                response = client.request(
                    "GET",
                    f"/repos/{quote_segment(s.target.owner)}/{quote_segment(repo)}",
                    what=f"repository {s.target.owner}/{repo}",
                )
                repository_ids[(s.target.owner, repo)] = int(response.json()["id"])

    changes: list[PlannedChange] = []
    for key, state in sorted(scopes.items()):
        names = {n for (k, n) in declared if k == key} | set(state.owned)
        for name in sorted(names):
            secret = declared.get((key, name))
            owned = state.owned.get(name)
            exists = name in state.remote
            if secret is None:
                assert owned is not None
                if not prune:
                    changes.append(PlannedChange(key, name, "orphan", "no longer declared; --prune deletes it"))
                elif state.listed and not exists:
                    changes.append(PlannedChange(key, name, "remove", "already deleted on GitHub"))
                else:
                    changes.append(PlannedChange(key, name, "remove", "no longer declared"))
                continue
            if owned is None:
                if not exists:
                    changes.append(PlannedChange(key, name, "add"))
                elif adopt:
                    changes.append(PlannedChange(key, name, "change", "adopted: exists on GitHub, not created here"))
                else:
                    changes.append(
                        PlannedChange(key, name, "conflict", "exists on GitHub and Strongroom did not create it")
                    )
                continue
            if not exists:
                changes.append(PlannedChange(key, name, "add", "deleted on GitHub since the last push"))
            elif owned.pending:
                changes.append(PlannedChange(key, name, "change", "an earlier push was interrupted"))
            elif owned.hmac != hmacs[(key, name)]:
                changes.append(PlannedChange(key, name, "change", "value changed"))
            elif owned.visibility != secret.visibility or owned.selected_repositories != secret.selected_repositories:
                changes.append(PlannedChange(key, name, "change", "visibility changed"))
            elif _later(state.remote[name], owned.updated_at):
                changes.append(PlannedChange(key, name, "change", "edited on GitHub since the last push"))
            else:
                changes.append(PlannedChange(key, name, "unchanged"))
    return GitHubPlan(env, revision, client.api_url, changes, declared, hmacs, scopes, repository_ids)


# --------------------------------------------------------------------------- apply


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one secret: ``created``, ``updated``, ``deleted``, ``unchanged`` or ``failed``."""

    scope: str
    name: str
    result: str
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.result == "failed"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_github_sync(
    service: Service,
    plan: GitHubPlan,
    client: GitHubClient,
    *,
    concurrency: int = 4,
    on_progress: Callable[[Outcome], None] | None = None,
    clock: Callable[[], str] = _now,
) -> list[Outcome]:
    """Write the plan's changes and record ownership; one :class:`Outcome` per secret.

    Each write is marked pending in the store before it is sent and settled after, so an
    interrupted sync leaves secrets Strongroom may have created marked as its own.
    """
    conflicts = [c for c in plan.changes if c.action == "conflict"]
    if conflicts:
        shown = ", ".join(f"{c.scope} {c.name}" for c in conflicts[:10])
        raise ConflictError(
            f"{len(conflicts)} secret(s) exist on GitHub and were not created by Strongroom: {shown}",
            hint="run again with --adopt to take them over, or rename them; nothing was changed",
        )
    store = service.store
    env = plan.env
    outcomes: list[Outcome] = [
        Outcome(c.scope, c.name, "unchanged") for c in plan.changes if c.action in ("unchanged", "orphan")
    ]
    writes = plan.writes
    # Write-ahead: every secret about to be written is marked pending first.
    for key in sorted({c.scope for c in writes}):
        state = plan.scopes[key]
        for c in writes:
            if c.scope == key and c.action != "remove":
                prior = state.owned.get(c.name)
                if prior is not None:
                    state.owned[c.name] = replace(prior, pending=True)
                else:
                    state.owned[c.name] = OwnedSecret(c.name, "", plan.revision, None, clock(), pending=True)
        save_owned(store, env, key, state.owned)

    keys: dict[str, tuple[str, str]] = {}
    failed_keys: dict[str, str] = {}

    def public_key(key: str) -> tuple[str, str]:
        target = plan.scopes[key].target
        body = client.request(
            "GET", f"{target.path}/public-key", what=f"the public key of {target.label}", scope_kind=target.kind
        ).json()
        return str(body["key_id"]), str(body["key"])

    key_scopes = sorted({c.scope for c in writes if c.action != "remove"})
    for key, fetched in zip(key_scopes, _each(public_key, key_scopes, concurrency), strict=True):
        if isinstance(fetched, StrongroomError):
            failed_keys[key] = fetched.message
        else:
            keys[key] = fetched

    def write(change: PlannedChange) -> Outcome:
        state = plan.scopes[change.scope]
        target = state.target
        what = f"{change.name} in {target.label}"
        if change.action == "remove":
            client.request("DELETE", f"{target.path}/{change.name}", what=what, scope_kind=target.kind, ok=(204, 404))
            return Outcome(change.scope, change.name, "deleted")
        if change.scope in failed_keys:
            return Outcome(change.scope, change.name, "failed", failed_keys[change.scope])
        secret = plan.declared[(change.scope, change.name)]
        key_id, key = keys[change.scope]
        body: dict[str, Any] = {"encrypted_value": seal(key, secret.value), "key_id": key_id}
        if target.kind == "org":
            body["visibility"] = secret.visibility or "private"
            if secret.visibility == "selected":
                body["selected_repository_ids"] = sorted(
                    plan.repository_ids[(target.owner, r)] for r in secret.selected_repositories
                )
        response = client.request(
            "PUT", f"{target.path}/{change.name}", json=body, what=what, scope_kind=target.kind, ok=(201, 204)
        )
        return Outcome(change.scope, change.name, "created" if response.status_code == 201 else "updated")

    def settle(change: PlannedChange, outcome: Outcome, definite_failure: bool) -> None:
        owned = plan.scopes[change.scope].owned
        if outcome.result == "deleted":
            owned.pop(change.name, None)
        elif outcome.result in ("created", "updated"):
            secret = plan.declared[(change.scope, change.name)]
            owned[change.name] = OwnedSecret(
                change.name,
                plan.hmacs[(change.scope, change.name)],
                plan.revision,
                None,
                clock(),
                visibility=secret.visibility,
                selected_repositories=secret.selected_repositories,
                pending=False,
            )
        elif definite_failure and change.action != "remove":
            prior = plan.scopes[change.scope].owned.get(change.name)
            if prior is not None and not prior.hmac:
                owned.pop(change.name, None)  # never pushed, and GitHub refused: not ours
            elif prior is not None:
                owned[change.name] = replace(prior, pending=False)
        save_owned(store, env, change.scope, owned)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(write, c): c for c in writes}
        for future in as_completed(futures):
            change = futures[future]
            definite = False
            try:
                outcome = future.result()
            except StrongroomError as exc:
                definite = exc.http_status < 500
                outcome = Outcome(change.scope, change.name, "failed", exc.message)
            settle(change, outcome, definite)
            outcomes.append(outcome)
            if on_progress is not None:
                on_progress(outcome)

    # GitHub's updated_at of each pushed secret: one listing per scope written.
    pushed = sorted({o.scope for o in outcomes if o.result in ("created", "updated")})
    listed = _each(lambda k: _list_remote(client, plan.scopes[k].target), pushed, concurrency)
    for key, remote in zip(pushed, listed, strict=True):
        state = plan.scopes[key]
        if isinstance(remote, StrongroomError):
            continue  # the next status shows no updated_at; the values are pushed
        for o in outcomes:
            if o.scope == key and o.result in ("created", "updated") and o.name in state.owned:
                state.owned[o.name] = replace(state.owned[o.name], updated_at=remote.get(o.name))
        save_owned(store, env, key, state.owned)
    # Owned entries of scopes that were never declared nor pruned stay as they are.
    return sorted(outcomes, key=lambda o: (o.scope, o.name))


def _record(service: Service, plan: GitHubPlan, outcomes: list[Outcome], mode: str) -> None:
    failed = any(o.failed for o in outcomes)
    details = [("mode", mode), ("api_url", plan.api_url)]
    details.extend((f"secret:{o.scope}/{o.name}", o.result) for o in outcomes)
    details.extend(
        (f"hmac:{key}/{name}", plan.hmacs[(key, name)])
        for o in outcomes
        if o.result in ("created", "updated")
        for key, name in [(o.scope, o.name)]
    )
    event = service.event(  # the service builds events with its actor and clock
        "sync.github", env=plan.env, revision=plan.revision, outcome="error" if failed else "ok", details=details
    )
    service.record(event)


# --------------------------------------------------------------------------- status (drift)


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between GitHub and what Strongroom pushed or declares."""

    scope: str
    name: str
    kind: str  # edited, deleted, missing, unowned, outdated, interrupted
    detail: str


def github_status(
    service: Service, ref: RevisionRef, client: GitHubClient, projection: GitHubProjection, revision: int
) -> list[Drift]:
    """Owned secrets edited or deleted on GitHub, declared ones missing or not owned, stale values."""
    plan = plan_github_sync(service, ref, client, projection, revision, adopt=False)
    drift: list[Drift] = []
    for key, state in sorted(plan.scopes.items()):
        if not state.listed:
            state.remote = _list_remote(client, state.target)
        for name in sorted(set(state.owned) | {n for (k, n) in plan.declared if k == key}):
            owned = state.owned.get(name)
            declared = (key, name) in plan.declared
            exists = name in state.remote
            if owned is None:
                if not exists:
                    drift.append(Drift(key, name, "missing", "declared, not on GitHub"))
                else:
                    drift.append(Drift(key, name, "unowned", "on GitHub, not created by Strongroom"))
            elif not exists:
                drift.append(Drift(key, name, "deleted", "pushed by Strongroom, deleted on GitHub"))
            elif owned.pending:
                drift.append(Drift(key, name, "interrupted", "a push was interrupted; its outcome is unknown"))
            elif _later(state.remote[name], owned.updated_at):
                drift.append(
                    Drift(key, name, "edited", f"updated on GitHub at {state.remote[name]}, pushed {owned.updated_at}")
                )
            elif declared and owned.hmac != plan.hmacs[(key, name)]:
                drift.append(Drift(key, name, "outdated", f"the value changed in {ref.env}; run the sync"))
            elif not declared:
                drift.append(Drift(key, name, "orphan", "no longer declared; --prune deletes it"))
    return drift


# --------------------------------------------------------------------------- one environment


def _client(api_url: str, token: str, settings: SyncSettings) -> GitHubClient:
    return GitHubClient(
        api_url,
        token,
        budget=WriteBudget(settings.budget, settings.window),
        retry=settings.retry,
        timeout=settings.timeout,
        transport=settings.transport,
    )


@contextmanager
def _connect(
    service: Service,
    ref: RevisionRef,
    api_url: str | None,
    environ: Mapping[str, str] | None,
    settings: SyncSettings,
) -> Iterator[tuple[int, GitHubProjection, GitHubClient]]:
    """Open ``ref``'s projection (checked before any request) and a client with its token."""
    revision, projection = _open_projection(service, ref)
    token = _token(projection, os.environ if environ is None else environ)
    with _client(api_url or DEFAULT_API_URL, token, settings) as client:
        yield revision, projection, client


@dataclass(frozen=True, slots=True)
class GitHubStatus:
    """How GitHub differs from revision ``revision`` of ``env``: no drift means in sync."""

    env: EnvRef
    revision: int
    drift: list[Drift]


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What :func:`sync_environment` did: the plan it carried out and one :class:`Outcome` per secret."""

    plan: GitHubPlan
    outcomes: list[Outcome]

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)

    @property
    def failed(self) -> int:
        return self.count("failed")


def environment_status(
    service: Service,
    ref: RevisionRef,
    *,
    api_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    settings: SyncSettings | None = None,
) -> GitHubStatus:
    """Open ``ref``'s ``githubSecrets`` and compare it with GitHub (:func:`github_status`).

    The token is the projection's ``token`` or ``GITHUB_TOKEN`` of ``environ`` (``os.environ`` when ``None``).
    """
    with _connect(service, ref, api_url, environ, settings or SyncSettings()) as (revision, projection, client):
        drift = github_status(service, ref, client, projection, revision)
    return GitHubStatus(ref.env, revision, drift)


def plan_environment(
    service: Service,
    ref: RevisionRef,
    *,
    api_url: str | None = None,
    prune: bool = False,
    adopt: bool = False,
    environ: Mapping[str, str] | None = None,
    settings: SyncSettings | None = None,
) -> GitHubPlan:
    """What a sync of ``ref`` would change, without changing anything; audited as a ``plan``."""
    settings = settings or SyncSettings()
    with _connect(service, ref, api_url, environ, settings) as (revision, projection, client):
        plan = plan_github_sync(
            service, ref, client, projection, revision, prune=prune, adopt=adopt, concurrency=settings.concurrency
        )
    _record(service, plan, [], "plan")
    return plan


def sync_environment(
    service: Service,
    ref: RevisionRef,
    *,
    api_url: str | None = None,
    prune: bool = False,
    adopt: bool = False,
    environ: Mapping[str, str] | None = None,
    settings: SyncSettings | None = None,
    on_planned: Callable[[GitHubPlan], None] | None = None,
    on_progress: Callable[[Outcome], None] | None = None,
) -> SyncReport:
    """Plan and apply a sync of ``ref``; audited as an ``apply``.

    ``ConflictError`` (nothing written) when a declared secret exists on GitHub and Strongroom
    did not create it, unless ``adopt``. ``on_planned`` sees the plan before any write;
    ``on_progress`` each secret's outcome.
    """
    settings = settings or SyncSettings()
    with _connect(service, ref, api_url, environ, settings) as (revision, projection, client):
        plan = plan_github_sync(
            service, ref, client, projection, revision, prune=prune, adopt=adopt, concurrency=settings.concurrency
        )
        if on_planned is not None:
            on_planned(plan)
        outcomes = apply_github_sync(service, plan, client, concurrency=settings.concurrency, on_progress=on_progress)
    _record(service, plan, outcomes, "apply")
    return SyncReport(plan, outcomes)


# --------------------------------------------------------------------------- CLI


_SIGN = {"add": "+", "change": "~", "remove": "-", "unchanged": "=", "conflict": "!", "orphan": "?"}


def format_plan(plan: GitHubPlan) -> list[str]:
    lines = [f"plan for {plan.env}@{plan.revision} -> GitHub ({plan.api_url}):"]
    for c in plan.changes:
        reason = f" ({c.reason})" if c.reason else ""
        lines.append(f"  {_SIGN[c.action]} {c.scope} {c.name}: {c.action}{reason}")
    lines.append(plan.summary())
    return lines


def format_outcomes(report: SyncReport) -> list[str]:
    """One line per secret, then the counts. Never a value."""
    lines = []
    for o in report.outcomes:
        reason = f": {o.reason}" if o.reason else ""
        lines.append(f"  {o.scope} {o.name}: {o.result}{reason}")
    plan = report.plan
    lines.append(
        f"synced {plan.env}@{plan.revision} to GitHub: {report.count('created')} created, "
        f"{report.count('updated')} updated, {report.count('deleted')} deleted, "
        f"{report.count('unchanged')} unchanged, {report.failed} failed"
    )
    return lines


def format_status(status: GitHubStatus) -> list[str]:
    lines = [f"  {d.scope} {d.name}: {d.kind} ({d.detail})" for d in status.drift]
    if not status.drift:
        lines.append(f"no drift: GitHub matches {status.env}@{status.revision}")
    else:
        lines.append(f"{len(status.drift)} secret(s) drifted from {status.env}@{status.revision}")
    return lines


#: A sync shows a progress bar (on a terminal) when it writes at least this many secrets.
PROGRESS_THRESHOLD = 10


class _ProgressBar:
    """A Rich progress bar on stderr, started once the plan is known (when enabled and the plan
    writes at least ``PROGRESS_THRESHOLD`` secrets)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def start(self, plan: GitHubPlan) -> None:
        if not self._enabled or len(plan.writes) < PROGRESS_THRESHOLD:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("syncing to GitHub"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("sync", total=len(plan.writes))
        self._bar.start()

    def advance(self, _outcome: Outcome) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_sync(
    service: Service,
    ref: RevisionRef,
    *,
    api_url: str | None = None,
    plan_only: bool = False,
    prune: bool = False,
    adopt: bool = False,
    environ: Mapping[str, str] | None = None,
    settings: SyncSettings | None = None,
    echo: Callable[[str], None] = print,
    progress: bool | None = None,
) -> int:
    """``strongroom sync ENV --to github``: plan, then (unless ``plan_only``) apply, and print; the exit code."""
    if plan_only:
        plan = plan_environment(
            service, ref, api_url=api_url, prune=prune, adopt=adopt, environ=environ, settings=settings
        )
        for line in format_plan(plan):
            echo(line)
        return 1 if plan.count("conflict") else 0
    bar = _ProgressBar(progress if progress is not None else sys.stderr.isatty())
    try:
        report = sync_environment(
            service,
            ref,
            api_url=api_url,
            prune=prune,
            adopt=adopt,
            environ=environ,
            settings=settings,
            on_planned=bar.start,
            on_progress=bar.advance,
        )
    finally:
        bar.stop()
    for line in format_outcomes(report):
        echo(line)
    return 1 if report.failed else 0


def run_status(
    service: Service,
    ref: RevisionRef,
    *,
    api_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    settings: SyncSettings | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """``strongroom sync status ENV --to github``: drift, one line each; 1 when there is any."""
    status = environment_status(service, ref, api_url=api_url, environ=environ, settings=settings)
    for line in format_status(status):
        echo(line)
    return 1 if status.drift else 0


def _echo(line: str) -> None:
    import click

    click.echo(line)


def sync_from_cli(service: Service, ref: RevisionRef, options: Mapping[str, Any]) -> int:
    """What ``strongroom sync ENV --to github`` calls (Kubernetes options are ignored)."""
    return run_sync(
        service,
        ref,
        api_url=options.get("api_url"),
        plan_only=bool(options.get("plan_only")),
        prune=bool(options.get("prune")),
        adopt=bool(options.get("adopt")),
        echo=_echo,
    )


def status_from_cli(service: Service, ref: RevisionRef, options: Mapping[str, Any]) -> int:
    """What ``strongroom sync status ENV --to github`` calls."""
    return run_status(service, ref, api_url=options.get("api_url"), echo=_echo)


# --------------------------------------------------------------------------- doctor checks


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One doctor check: its name, whether it passed, and a line for the person reading it."""

    name: str
    ok: bool
    message: str
    hint: str | None = None


def check_token(
    api_url: str, token: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 10.0
) -> CheckResult:
    """Does the token authenticate? (``GET /user``; a GitHub App token is not a user but authenticates.)"""
    name = "github.token"
    if not token:
        return CheckResult(name, False, "no GitHub token", "set GITHUB_TOKEN")
    retry = RetryPolicy(attempts=2, delay=0.5, max_wait=5.0)
    with GitHubClient(api_url, token, retry=retry, timeout=timeout, transport=transport) as client:
        try:
            response = client.request("GET", "/user", what="the authenticated user", ok=(200, 403))
        except AuthenticationError as exc:
            return CheckResult(name, False, exc.message, exc.hint)
        except StrongroomError as exc:
            return CheckResult(name, False, f"GitHub could not be asked: {exc.message}", exc.hint)
    if response.status_code == 403:
        return CheckResult(name, True, "the token authenticates (a GitHub App installation token)")
    login = response.json().get("login", "?")
    scopes = response.headers.get("x-oauth-scopes")
    shown = f" with scopes {scopes}" if scopes is not None else ""
    return CheckResult(name, True, f"the token authenticates as {login}{shown}")


def check_secrets_permission(
    api_url: str,
    token: str,
    target: str,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 10.0,
) -> CheckResult:
    """Can the token read ``target``'s public key (``owner/repo``, ``owner/repo:env`` or ``org:login``)?

    Reading the key needs the same permission as writing secrets: ``repo`` / ``admin:org``
    (classic) or ``secrets`` (fine-grained, GitHub App).
    """
    name = f"github.secrets:{target}"
    scope = Target.parse(target)
    retry = RetryPolicy(attempts=2, delay=0.5, max_wait=5.0)
    with GitHubClient(api_url, token, retry=retry, timeout=timeout, transport=transport) as client:
        try:
            client.request(
                "GET", f"{scope.path}/public-key", what=f"the public key of {scope.label}", scope_kind=scope.kind
            )
        except (AuthenticationError, PermissionDeniedError) as exc:
            return CheckResult(name, False, exc.message, exc.hint)
        except StrongroomError as exc:
            return CheckResult(name, False, exc.message, exc.hint)
    return CheckResult(name, True, f"the token can read the public key of {scope.label}")
