"""``strongroom incident``: mark compromised, rotate now, blast radius, audit trail, incident records; no leaks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from strongroom.cli import app as cli_app
from strongroom.model import EnvRef, RevisionRef
from test_rotation_catalog import T0, Clock, clock, environ, make_service, service  # noqa: F401

BASE = EnvRef("acme", "base")
PROD = EnvRef("acme", "prod")
OTHER = EnvRef("acme", "other")
OLD = "CANARYOLD0a1b2c3d4e5f60718293a4b5c6d7e8f"
GH_OLD = "ghp_CANARYOLDgithubtoken0123456789abcdef"
BASE_DEFINITION = f"""values:
  app:
    token: {{fn::secret: {OLD}}}
    gh: {{fn::secret: {GH_OLD}}}
    plain: not-a-secret
  kubernetesSecrets:
    api-token:
      namespaces: [api, "preview-*"]
      data:
        TOKEN: ${{app.token}}
        OTHER: unrelated
rotation:
  app.token:
    schedule: annually
    usedBy: [api, prometheus]
    rotator: {{random: {{bytes: 32, encoding: hex}}}}
  app.gh:
    schedule: annually
    usedBy: [deploy workflow]
    rotator: {{manual: {{minLength: 20}}}}
    procedure:
      url: https://github.com/settings/tokens
      prefix: ghp_
      revokeUrl: https://github.com/settings/tokens/revoke
"""
PROD_DEFINITION = """imports:
  - acme/base
values:
  githubSecrets:
    repositories:
      acme/api:
        secrets:
          API_TOKEN: ${app.token}
          UNRELATED: hello
"""
OTHER_DEFINITION = "values:\n  x: 1\n"


@pytest.fixture
def envs(service):  # type: ignore[no-untyped-def]  # noqa: F811
    service.create_environment(BASE, BASE_DEFINITION)
    service.create_environment(PROD, PROD_DEFINITION)
    service.create_environment(OTHER, OTHER_DEFINITION)
    return service


@pytest.fixture
def run(environ, monkeypatch):  # type: ignore[no-untyped-def]  # noqa: F811
    monkeypatch.setitem(cli_app._LAZY, "incident", ("strongroom.cli.incident", "incident"))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, actor: str = "tester", **extra: str) -> Result:
        env = {**environ, "STRONGROOM_ACTOR": actor, "COLUMNS": "200", **extra}
        return runner.invoke(cli_app.cli, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


def current(svc: Any, env: EnvRef = BASE, path: str = "app.token") -> str:
    return str(svc.read(RevisionRef(env), tuple(path.split(".")), show_secrets=True).reveal())


def test_incident_random_whole_flow(envs, run) -> None:  # type: ignore[no-untyped-def]
    opened = run("env", "open", str(BASE), actor="alice")
    assert opened.exit_code == 0, opened.output
    res = run("incident", str(BASE), "app.token", "--yes")
    assert res.exit_code == 0, res.output
    out = res.output
    new = current(envs)
    assert new != OLD and len(new) == 64
    # rotated through the engine, every step shown
    for step in ("create", "set", "test", "finish", "propagate"):
        assert f"rotate: {step}:" in out
    # blast radius
    assert "imported by: acme/prod" in out
    assert "acme/other" not in out
    assert "kubernetes secret: api,preview-*/api-token (keys TOKEN; from acme/base)" in out
    assert "github secret: acme/api API_TOKEN (from acme/prod)" in out
    assert "UNRELATED" not in out and "OTHER" not in out
    assert "used by: api" in out and "used by: prometheus" in out
    # no re-sync options: the commands to run
    assert "kubernetes secret: api,preview-*/api-token (keys TOKEN; from acme/prod)" in out  # inherited
    assert "to re-sync: strongroom sync acme/base --to kubernetes" in out
    assert "to re-sync: strongroom sync acme/prod --to github" in out
    # the audit trail lists alice's open
    trail = out.split("opened since", 1)[1]
    assert "alice open (acme/base" in trail
    # audit events, no values
    records = list(envs.store.list_audit(environment=str(BASE)))
    marked = [r for r in records if r.event.action == "incident.compromised"]
    assert len(marked) == 1 and dict(marked[0].event.details)["path"] == "app.token"
    assert any(r.event.action == "rotation.done" for r in records)
    # never a value
    for value in (OLD, new):
        assert value not in out
        assert value not in repr([r.event for r in envs.store.list_audit()])
    # the record
    ls = run("incident", "ls", "--format", "json")
    rows = json.loads(ls.output)
    assert [(r["environment"], r["path"], r["actor"], r["rotation"]) for r in rows] == [
        ("acme/base", "app.token", "tester", "done")
    ]
    assert rows[0]["openedBy"] == ["alice"]
    assert rows[0]["blastRadius"]["importers"] == ["acme/prod"]
    assert OLD not in ls.output and new not in ls.output
    table = run("incident", "ls")
    assert table.exit_code == 0 and rows[0]["id"] in table.output and "done" in table.output


def test_since_excludes_older_opens(envs, run) -> None:  # type: ignore[no-untyped-def]
    # the fixture's service wrote at T0 (2025): a decrypt then is outside a 1-day window
    envs.read(RevisionRef(BASE), ("app", "token"), show_secrets=True)
    res = run("incident", str(BASE), "app.token", "--yes", "--since", "1d")
    assert res.exit_code == 0, res.output
    assert "\n  nobody\n" in res.output.split("opened since", 1)[1]
    res = run("incident", str(BASE), "app.token", "--yes", "--since", "2000-01-01")
    assert "tester decrypt" in res.output.split("opened since", 1)[1]


def test_incident_manual_reads_stdin(envs, run) -> None:  # type: ignore[no-untyped-def]
    new = "ghp_NEWCANARYtoken0123456789abcdefghijk"
    res = run("incident", str(BASE), "app.gh", "--yes", input=new + "\n")
    assert res.exit_code == 0, res.output
    assert current(envs, path="app.gh") == new
    assert new not in res.output and GH_OLD not in res.output
    assert "used by: deploy workflow" in res.output
    rows = json.loads(run("incident", "ls", "--format", "json").output)
    assert rows[-1]["path"] == "app.gh" and rows[-1]["rotation"] == "done"


def test_incident_manual_bad_value_is_recorded_as_failed(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run("incident", str(BASE), "app.gh", "--yes", input="nope\n")
    assert res.exit_code == 1
    assert current(envs, path="app.gh") == GH_OLD
    assert "nope" not in res.output.replace("failed", "")
    rows = json.loads(run("incident", "ls", "--format", "json").output)
    assert rows[-1]["rotation"] == "failed"


def test_incident_without_rotator_still_records(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run("incident", str(BASE), "app.plain", "--yes")
    assert res.exit_code == 1
    assert "not rotated" in res.output and "not-a-secret" not in res.output
    rows = json.loads(run("incident", "ls", "--format", "json").output)
    assert rows[-1]["rotation"] == "not rotated"


def test_incident_asks_first(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run("incident", str(BASE), "app.token", input="n\n")
    assert res.exit_code == 1
    assert current(envs) == OLD
    assert not [r for r in envs.store.list_audit() if r.event.action == "incident.compromised"]


def test_incident_propagates_through_the_engine_seam(envs, run, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from strongroom.tiers import github, kubernetes

    calls: list[tuple[str, str, str]] = []

    def fake_github(svc, ref, *, api_url, **_kw):  # type: ignore[no-untyped-def]
        assert current(svc) != OLD  # propagation runs after promotion: a re-sync pushes the new value
        calls.append(("github", str(ref.env), api_url))
        return 0

    def fake_kube(svc, ref, options):  # type: ignore[no-untyped-def]
        calls.append(("kubernetes", str(ref.env), str(options["kube_context"])))
        return 1

    monkeypatch.setattr(github, "run_sync", fake_github)
    monkeypatch.setattr(kubernetes, "sync_from_cli", fake_kube)
    res = run(
        "incident",
        str(BASE),
        "app.token",
        "--yes",
        "--context",
        "kind-test",
        "--github-api-url",
        "http://127.0.0.1:1",
        GITHUB_TOKEN="x",
    )
    # acme/prod inherits base's kubernetesSecrets: the same Secrets, which base owns, so base re-syncs them
    assert sorted(calls) == [
        ("github", "acme/prod", "http://127.0.0.1:1"),
        ("kubernetes", "acme/base", "kind-test"),
    ]
    assert "re-synced github from acme/prod: ok" in res.output
    assert "re-synced kubernetes from acme/base: failed" in res.output
    assert "to re-sync" not in res.output
    assert res.exit_code == 1  # a failed re-sync is a failed response
    rows = json.loads(run("incident", "ls", "--format", "json").output)
    assert sorted((p["tier"], p["environment"], p["outcome"]) for p in rows[-1]["propagation"]) == [
        ("github", "acme/prod", "ok"),
        ("kubernetes", "acme/base", "failed"),
    ]


def test_unknown_environment_records_nothing(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run("incident", "acme/nope", "app.token", "--yes")
    assert res.exit_code != 0
    assert "no incidents recorded" in run("incident", "ls").output


def test_bad_since_is_a_usage_error(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run("incident", str(BASE), "app.token", "--yes", "--since", "whenever")
    assert res.exit_code == 2 and current(envs) == OLD
