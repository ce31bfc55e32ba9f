"""The GitHub tier over real HTTP against the local GitHub API server.

Every value pushed is checked on the server side, where it was decrypted with the
scope's private key (``api.plaintext``). Canary values and tokens prove nothing leaks
into plans, messages or the audit log.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from strongroom.cli.context import AppContext
from strongroom.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
)
from strongroom.model import EnvRef, RevisionRef
from strongroom.service import Service
from strongroom.testing.github_api import FakeGitHubAPI, GitHubAPIServer
from strongroom.tiers import github
from strongroom.tiers._github_client import RetryPolicy
from strongroom.tiers.github import SyncSettings, check_secrets_permission, check_token, load_owned

ENV = EnvRef("aphiria.com", "Production")
REF = RevisionRef(ENV)
TOKEN = "ghp_CANARYTOKEN_" + uuid.uuid4().hex
REPO = "acme/app"
ENV_SCOPE = "acme/app:production"
ORG = "org:acme"
FAST = SyncSettings(retry=RetryPolicy(attempts=4, delay=0.01, max_wait=5.0), timeout=10.0)


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def secret(value: str) -> dict[str, str]:
    return {"fn::secret": value}


@pytest.fixture(scope="module")
def server() -> Iterator[GitHubAPIServer]:
    with GitHubAPIServer() as s:
        yield s


@pytest.fixture
def api(server: GitHubAPIServer) -> FakeGitHubAPI:
    api = server.api
    api.reset()
    api.add_organization("acme", id=9)
    api.add_repository(REPO, id=101, environments=["production"])
    api.add_repository("acme/site", id=102)
    api.add_token(TOKEN, scopes={"repo", "admin:org"})
    return api


@pytest.fixture
def service(tmp_path: Any) -> Iterator[Service]:
    environ = {
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        "STRONGROOM_ACTOR": "tester",
    }
    AppContext(environ).open_store(create=True).close()
    app = AppContext(environ)
    yield app.service()
    app.close()


Define = Callable[..., None]


@pytest.fixture
def define(service: Service) -> Define:
    """``define(values)``: create or replace the environment with ``values``."""

    def run(values: dict[str, Any], github_secrets: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = dict(values)
        if github_secrets is not None:
            body["githubSecrets"] = github_secrets
        text = json.dumps({"values": body})
        try:
            service.resolve(REF)
        except Exception:
            service.create_environment(ENV, text)
        else:
            service.replace_definition(ENV, text)

    return run


class Run:
    """Runs ``sync`` / ``status`` and keeps what they printed."""

    def __init__(self, service: Service, server: GitHubAPIServer) -> None:
        self.service = service
        self.server = server
        self.lines: list[str] = []

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def sync(self, settings: SyncSettings = FAST, token: str = TOKEN, **options: Any) -> int:
        self.lines.clear()
        return github.run_sync(
            self.service,
            REF,
            api_url=self.server.url,
            environ={"GITHUB_TOKEN": token},
            settings=settings,
            echo=self.lines.append,
            progress=False,
            **options,
        )

    def status(self, token: str = TOKEN) -> int:
        self.lines.clear()
        return github.run_status(
            self.service,
            REF,
            api_url=self.server.url,
            environ={"GITHUB_TOKEN": token},
            settings=FAST,
            echo=self.lines.append,
        )


@pytest.fixture
def run(service: Service, server: GitHubAPIServer) -> Run:
    return Run(service, server)


def three_scopes(values: dict[str, str]) -> dict[str, Any]:
    return {
        "repositories": {
            REPO: {
                "secrets": {"PULUMI_ACCESS_TOKEN": "${ci.pulumi}", "plain_name": "${ci.plain}"},
                "environments": {"production": {"DEPLOY_KEY": "${ci.deploy}"}},
            }
        },
        "organizations": {"acme": {"visibility": "private", "secrets": {"SHARED_TOKEN": "${ci.shared}"}}},
    }


@pytest.fixture
def values() -> dict[str, str]:
    return {"pulumi": canary(), "plain": "not-secret", "deploy": canary(), "shared": canary()}


def ci(values: dict[str, str]) -> dict[str, Any]:
    return {"ci": {k: (v if k == "plain" else secret(v)) for k, v in values.items()}}


# --------------------------------------------------------------------------- pushing


def test_sync_pushes_decrypted_values_with_one_key_fetch_per_scope(
    api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]
) -> None:
    define(ci(values), three_scopes(values))
    assert run.sync() == 0, run.output
    assert api.plaintext(REPO, "PULUMI_ACCESS_TOKEN") == values["pulumi"]
    assert api.plaintext(REPO, "PLAIN_NAME") == "not-secret"  # stored upper case
    assert api.plaintext(ENV_SCOPE, "DEPLOY_KEY") == values["deploy"]
    assert api.plaintext(ORG, "SHARED_TOKEN") == values["shared"]
    assert api.secret(ORG, "SHARED_TOKEN").visibility == "private"
    assert api.count_requests("GET", r"/public-key$") == 3
    assert "4 created" in run.output
    for v in values.values():
        if v != "not-secret":
            assert v not in run.output


def test_201_then_204_and_no_writes_when_nothing_changed(
    api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]
) -> None:
    define(ci(values), three_scopes(values))
    assert run.sync() == 0
    assert "created" in run.output and "updated" not in run.output.split("synced")[0]

    api.clear_requests()
    assert run.sync() == 0
    assert api.count_requests("PUT") == api.count_requests("DELETE") == 0
    assert api.count_requests("GET", r"/public-key$") == 0
    assert "4 unchanged" in run.output

    new = canary()
    define(ci({**values, "deploy": new}), three_scopes(values))
    api.clear_requests()
    assert run.sync() == 0
    assert api.count_requests("PUT") == 1
    assert api.plaintext(ENV_SCOPE, "DEPLOY_KEY") == new
    assert f"{ENV_SCOPE} DEPLOY_KEY: updated" in run.output  # GitHub answered 204


def test_state_records_hmac_revision_and_updated_at(
    api: FakeGitHubAPI, run: Run, define: Define, service: Service, values: dict[str, str]
) -> None:
    define(ci(values), three_scopes(values))
    assert run.sync() == 0
    owned = load_owned(service.store, ENV, REPO)["PULUMI_ACCESS_TOKEN"]
    assert owned.hmac == service.value_hmac(values["pulumi"])
    assert owned.revision == 1
    assert owned.updated_at == api.secret(REPO, "PULUMI_ACCESS_TOKEN").updated_at
    assert not owned.pending
    raw = service.store.get_meta(f"github:{ENV}:{REPO}") or ""
    assert values["pulumi"] not in raw


# --------------------------------------------------------------------------- ownership


def test_unowned_secret_is_a_conflict_unless_adopted(
    api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]
) -> None:
    api.set_secret(REPO, "PULUMI_ACCESS_TOKEN", "set-by-hand")
    define(ci(values), three_scopes(values))
    api.clear_requests()
    with pytest.raises(ConflictError, match="PULUMI_ACCESS_TOKEN"):
        run.sync()
    assert api.count_requests("PUT") == 0
    assert api.plaintext(REPO, "PULUMI_ACCESS_TOKEN") == "set-by-hand"

    assert run.sync(plan_only=True) == 1
    assert "conflict" in run.output

    assert run.sync(adopt=True) == 0
    assert api.plaintext(REPO, "PULUMI_ACCESS_TOKEN") == values["pulumi"]
    assert run.sync() == 0  # owned now


def test_prune_deletes_only_owned_secrets_no_longer_declared(
    api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]
) -> None:
    api.set_secret(REPO, "HAND_MADE", "x")
    define(ci(values), three_scopes(values))
    assert run.sync() == 0
    smaller = three_scopes(values)
    del smaller["repositories"][REPO]["secrets"]["plain_name"]
    del smaller["organizations"]
    define(ci(values), smaller)

    assert run.sync() == 0  # without --prune: kept
    assert "PLAIN_NAME" in api.secret_names(REPO)
    assert "SHARED_TOKEN" in api.secret_names(ORG)

    assert run.sync(prune=True) == 0
    assert api.secret_names(REPO) == ["HAND_MADE", "PULUMI_ACCESS_TOKEN"]
    assert api.secret_names(ORG) == []
    api.clear_requests()
    assert run.sync(prune=True) == 0
    assert api.count_requests("DELETE") == 0


# --------------------------------------------------------------------------- drift


def test_status_reports_drift_and_sync_repairs_it(
    api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]
) -> None:
    define(ci(values), three_scopes(values))
    assert run.status() == 1
    assert run.output.count("missing") == 4

    assert run.sync() == 0
    assert run.status() == 0, run.output

    api.touch(REPO, "PULUMI_ACCESS_TOKEN")  # edited in the web UI
    api.delete(ENV_SCOPE, "DEPLOY_KEY")  # deleted in the web UI
    assert run.status() == 1
    assert f"{REPO} PULUMI_ACCESS_TOKEN: edited" in run.output
    assert f"{ENV_SCOPE} DEPLOY_KEY: deleted" in run.output

    assert run.sync() == 0
    assert api.plaintext(REPO, "PULUMI_ACCESS_TOKEN") == values["pulumi"]
    assert api.plaintext(ENV_SCOPE, "DEPLOY_KEY") == values["deploy"]
    assert run.status() == 0, run.output


# --------------------------------------------------------------------------- authentication


def test_401_says_token_invalid_and_never_shows_it(
    api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]
) -> None:
    define(ci(values), three_scopes(values))
    api.expire_token(TOKEN)
    with pytest.raises(AuthenticationError) as caught:
        run.sync()
    assert "token invalid or expired" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in run.output


def test_403_names_the_missing_permission(api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]) -> None:
    define(ci(values), three_scopes(values))
    repo_only = "ghp_repo_only_" + uuid.uuid4().hex
    api.add_token(repo_only, scopes={"repo"})
    with pytest.raises(PermissionDeniedError, match="admin:org") as caught:
        run.sync(token=repo_only)
    assert repo_only not in str(caught.value)

    app = "ghs_app_" + uuid.uuid4().hex
    api.add_token(app, kind="app", permissions={})
    with pytest.raises(PermissionDeniedError, match="`secrets`") as caught:
        run.sync(token=app)
    assert app not in str(caught.value)
    assert api.count_requests("PUT") == 0


def test_token_from_the_projection(api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]) -> None:
    gs = three_scopes(values)
    gs["token"] = "${ci.token}"
    define({"ci": {**ci(values)["ci"], "token": secret(TOKEN)}}, gs)
    assert run.sync(token="") == 0
    assert api.plaintext(REPO, "PULUMI_ACCESS_TOKEN") == values["pulumi"]
    assert "TOKEN" not in api.secret_names(REPO)


def test_no_token_is_a_clear_error(api: FakeGitHubAPI, run: Run, define: Define, values: dict[str, str]) -> None:
    define(ci(values), three_scopes(values))
    with pytest.raises(AuthenticationError, match="GITHUB_TOKEN"):
        run.sync(token="")


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("GITHUB_TOKEN_X", "v", "GITHUB_"),
        ("github_lower", "v", "GITHUB_"),
        ("1STARTS_WITH_DIGIT", "v", "does not start with a digit"),
        ("HAS-DASH", "v", "only letters"),
        ("TOO_BIG", "x" * (48 * 1024 + 1), "48 KB"),
    ],
)
def test_names_and_sizes_are_rejected_before_any_request(
    api: FakeGitHubAPI, run: Run, define: Define, name: str, value: str, problem: str
) -> None:
    value_canary = canary() + value
    define({"v": secret(value_canary)}, {"repositories": {REPO: {"secrets": {name: "${v}"}}}})
    api.clear_requests()
    with pytest.raises(InvalidInputError, match=problem) as caught:
        run.sync()
    assert api.requests == []
    assert value_canary not in str(caught.value)


def test_duplicates_and_counts_are_rejected_before_any_request(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    many = {f"S{i}": "v" for i in range(101)}
    define({}, {"repositories": {REPO: {"secrets": {"Name": "a", "NAME": "b"}}, "acme/site": {"secrets": many}}})
    api.clear_requests()
    with pytest.raises(InvalidInputError) as caught:
        run.sync()
    assert "not case-sensitive" in str(caught.value)
    assert "at most 100" in str(caught.value)
    assert api.requests == []


def test_exactly_48_kb_is_accepted(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    big = "y" * (48 * 1024)
    define({"v": secret(big)}, {"repositories": {REPO: {"secrets": {"BIG": "${v}"}}}})
    assert run.sync() == 0
    assert api.plaintext(REPO, "BIG") == big


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_retry_after_is_honoured(api: FakeGitHubAPI, run: Run, define: Define, status: int) -> None:
    api.secondary_limit = 3
    api.secondary_window = 1.0
    api.secondary_status = status
    api.secondary_retry_after = 1
    names = {f"S{i}": f"v{i}" for i in range(5)}
    define({}, {"repositories": {REPO: {"secrets": names}}})
    started = time.monotonic()
    assert run.sync() == 0, run.output
    assert time.monotonic() - started >= 1.0  # waited for Retry-After
    for name, value in names.items():
        assert api.plaintext(REPO, name) == value
    assert api.count_requests("PUT") > 5  # some were refused and retried


def test_write_budget_keeps_within_the_secondary_limit(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    api.secondary_limit = 4
    api.secondary_window = 1.0
    names = {f"S{i}": f"v{i}" for i in range(10)}
    define({}, {"repositories": {REPO: {"secrets": names}}})
    settings = SyncSettings(budget=4, window=1.0, concurrency=4, retry=FAST.retry)
    started = time.monotonic()
    assert run.sync(settings=settings) == 0
    assert time.monotonic() - started >= 1.0
    assert api.count_requests("PUT") == 10  # never refused


def test_rate_limit_reset_is_honoured(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    define({}, {"repositories": {REPO: {"secrets": {"A": "1"}}}})
    api.inject_failure("PUT", r"/A$", 429, retry_after=None)
    assert run.sync() == 0
    assert api.plaintext(REPO, "A") == "1"


# --------------------------------------------------------------------------- pagination, partial failure


def test_listing_follows_pagination(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    for i in range(150):
        api.set_secret(ORG, f"EXISTING_{i:03d}", "x", visibility="all")
    define({}, {"organizations": {"acme": {"visibility": "all", "secrets": {"EXISTING_149": "mine"}}}})
    api.clear_requests()
    with pytest.raises(ConflictError, match="EXISTING_149"):  # found only on page 2
        run.sync()
    assert api.count_requests("GET", r"/orgs/acme/actions/secrets$") == 2


def test_partial_failure_reports_each_secret_and_exits_non_zero(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    define({}, {"repositories": {REPO: {"secrets": {"GOOD": "1", "BAD": "2", "ALSO_GOOD": "3"}}}})
    api.inject_failure("PUT", r"/BAD$", 502, times=None)
    assert run.sync() == 1
    assert f"{REPO} BAD: failed" in run.output
    assert f"{REPO} GOOD: created" in run.output
    assert f"{REPO} ALSO_GOOD: created" in run.output
    api.clear_failures()
    assert run.sync() == 0
    assert api.plaintext(REPO, "BAD") == "2"


def test_lost_response_is_retried_idempotently(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    define({}, {"repositories": {REPO: {"secrets": {"A": "1"}}}})
    api.inject_failure("PUT", r"/A$", 502, after=True)  # applied, then the response is lost
    assert run.sync() == 0
    assert api.plaintext(REPO, "A") == "1"
    assert run.status() == 0


def test_interrupted_push_stays_owned(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    define({}, {"repositories": {REPO: {"secrets": {"A": "1"}}}})
    api.inject_failure("PUT", r"/A$", 502, times=None, after=True)  # applied, never confirmed
    assert run.sync() == 1
    assert run.status() == 1 and "interrupted" in run.output
    api.clear_failures()
    assert run.sync() == 0  # ours: no conflict
    assert run.status() == 0


# --------------------------------------------------------------------------- plan, organizations, audit


def test_plan_lists_changes_without_values(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    value = canary()
    define({"v": secret(value)}, {"repositories": {REPO: {"secrets": {"NEW": "${v}", "SAME": "same"}}}})
    assert run.sync(plan_only=True) == 0
    assert f"+ {REPO} NEW: add" in run.output
    assert value not in run.output
    assert api.count_requests("PUT") == 0
    run.sync()
    value2 = canary()
    define({"v": secret(value2)}, {"repositories": {REPO: {"secrets": {"NEW": "${v}"}}}})
    assert run.sync(plan_only=True, prune=True) == 0
    assert f"~ {REPO} NEW: change" in run.output
    assert f"- {REPO} SAME: remove" in run.output
    assert value2 not in run.output and value not in run.output
    assert "1 to change, 1 to remove" in run.output


def test_organization_visibility_and_selected_repositories(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    gs = {
        "organizations": {
            "acme": {"visibility": "selected", "selectedRepositories": ["app", "site"], "secrets": {"S": "v"}}
        }
    }
    define({}, gs)
    assert run.sync() == 0
    info = api.secret(ORG, "S")
    assert info.visibility == "selected"
    assert sorted(info.selected_repository_ids) == [101, 102]
    gs["organizations"]["acme"] = {"visibility": "all", "secrets": {"S": "v"}}
    define({}, gs)
    assert run.sync() == 0
    assert api.secret(ORG, "S").visibility == "all"
    assert api.plaintext(ORG, "S") == "v"


def test_bad_visibility_is_rejected_locally(api: FakeGitHubAPI, run: Run, define: Define) -> None:
    define({}, {"organizations": {"acme": {"visibility": "selected", "secrets": {"S": "v"}}}})
    api.clear_requests()
    with pytest.raises(InvalidInputError, match="selectedRepositories"):
        run.sync()
    assert api.requests == []


def test_each_sync_is_an_audit_event_without_values(
    api: FakeGitHubAPI, run: Run, define: Define, service: Service, values: dict[str, str]
) -> None:
    define(ci(values), three_scopes(values))
    run.sync()
    events = [r.event for r in service.audit_log(action="sync.github")]
    assert len(events) == 1
    details = dict(events[0].details)
    assert details[f"secret:{REPO}/PULUMI_ACCESS_TOKEN"] == "created"
    assert details[f"hmac:{REPO}/PULUMI_ACCESS_TOKEN"] == service.value_hmac(values["pulumi"])
    assert events[0].outcome == "ok" and events[0].revision == 1
    dumped = repr(events[0])
    assert all(v not in dumped for v in values.values() if v != "not-secret") and TOKEN not in dumped


# --------------------------------------------------------------------------- doctor checks and the CLI


def test_doctor_checks(api: FakeGitHubAPI, server: GitHubAPIServer) -> None:
    assert check_token(server.url, TOKEN).ok
    bad = check_token(server.url, "ghp_nope")
    assert not bad.ok and "invalid or expired" in bad.message
    assert check_secrets_permission(server.url, TOKEN, REPO).ok
    weak = "ghp_weak_" + uuid.uuid4().hex
    api.add_token(weak, scopes={"read:user"})
    result = check_secrets_permission(server.url, weak, REPO)
    assert not result.ok and "`repo`" in result.message and weak not in result.message


def test_cli_sync_and_status(api: FakeGitHubAPI, server: GitHubAPIServer, run_cli: Any, tmp_path: Any) -> None:
    definition = tmp_path / "env.yaml"
    definition.write_text(
        json.dumps(
            {
                "values": {
                    "t": secret("cli-value"),
                    "githubSecrets": {"repositories": {REPO: {"secrets": {"T": "${t}"}}}},
                }
            }
        )
    )
    assert run_cli("init").exit_code == 0
    assert run_cli("env", "init", str(ENV), "-f", str(definition)).exit_code == 0
    env = {"GITHUB_TOKEN": TOKEN}
    result = run_cli("sync", str(ENV), "--to", "github", "--api-url", server.url, "--plan", env=env)
    assert result.exit_code == 0, result.output
    assert "+ acme/app T: add" in result.output and "cli-value" not in result.output
    result = run_cli("sync", str(ENV), "--to", "github", "--api-url", server.url, env=env)
    assert result.exit_code == 0, result.output
    assert api.plaintext(REPO, "T") == "cli-value"
    result = run_cli("sync", "status", str(ENV), "--to", "github", "--api-url", server.url, env=env)
    assert result.exit_code == 0, result.output
    api.expire_token(TOKEN)
    result = run_cli("sync", str(ENV), "--to", "github", "--api-url", server.url, env=env)
    assert result.exit_code == 1
    assert TOKEN not in result.output
