"""The rotation engine: random and manual rotators, staged write-ahead steps, crash safety, locking, no leaks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from strongroom.cli import app as cli_app
from strongroom.errors import InvalidInputError
from strongroom.model import EnvRef, RevisionRef
from strongroom.rotation.engine import STEPS, RotationEngine, RotationInProgressError
from strongroom.rotation.rotators import ManualRotator, RandomRotator, RotatorIO
from test_rotation_catalog import T0, Clock, clock, environ, make_service, service  # noqa: F401

ENV = EnvRef("acme", "prod")
OLD = "CANARYOLD0a1b2c3d4e5f60718293a4b5c6d7e8f"
GH_OLD = "ghp_CANARYOLDgithubtoken0123456789abcdef"
DEFINITION = f"""values:
  app:
    token: {{fn::secret: {OLD}}}
    gh: {{fn::secret: {GH_OLD}}}
rotation:
  app.token:
    schedule: annually
    rotator: {{random: {{bytes: 32, encoding: hex}}}}
  app.gh:
    schedule: annually
    rotator: {{manual: {{minLength: 20}}}}
    procedure:
      url: https://github.com/settings/tokens
      scopes: [read:packages]
      expiry: 1 year
      prefix: ghp_
      steps: [Generate new token (classic)]
      revokeUrl: https://github.com/settings/tokens/revoke
"""


class Crash(BaseException):
    """A simulated kill: not an ``Exception``, so nothing in the engine handles it."""


def current(svc, path: str = "app.token") -> str:  # type: ignore[no-untyped-def]
    return svc.read(RevisionRef(ENV), tuple(path.split(".")), show_secrets=True).reveal()


def audit_actions(svc) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.event.action for r in svc.store.list_audit(environment=str(ENV)) if r.event.action.startswith("rot")]


def everything_stored(svc) -> str:  # type: ignore[no-untyped-def]
    """Audit records and the rotation meta, as text, to look for plaintext in."""
    parts = [repr(r.event) for r in svc.store.list_audit()]
    for path in ("app.token", "app.gh"):
        for prefix in ("rotation:state:", "rotation:lock:"):
            parts.append(svc.store.get_meta(f"{prefix}{ENV}:{path}") or "")
    return "\n".join(parts)


@pytest.fixture
def env(service):  # type: ignore[no-untyped-def]  # noqa: F811
    service.create_environment(ENV, DEFINITION)
    return service


def test_random_rotation_end_to_end(env, clock) -> None:  # noqa: F811
    before = env.store.get_environment(ENV).latest_revision
    result = RotationEngine(env, clock=clock).rotate(ENV, "app.token")
    assert result.outcome == "done"
    assert [s for s, _ in result.steps] == list(STEPS)
    assert result.revision == before + 1 == env.store.get_environment(ENV).latest_revision
    new = current(env)
    assert new != OLD and len(new) == 64 and int(new, 16) >= 0
    assert audit_actions(env) == ["rotation.started", "rotation.done"]
    [done_record] = env.store.list_audit(action="rotation.done")
    done = done_record.event
    assert dict(done.details)["value_hmac"] == env.value_hmac(new)
    state = RotationEngine(env, clock=clock).state(ENV, "app.token")
    assert state is not None and state["status"] == "done" and state["propagation"] == "pending"
    assert state["pending"] is None
    assert env._decryptor(ENV)(state["previous"]) == OLD  # kept, sealed, for the grace period
    stored = everything_stored(env)
    assert OLD not in stored and new not in stored


@pytest.mark.parametrize("encoding", ["hex", "base64", "urlsafe"])
def test_random_formats(encoding: str) -> None:
    r = RandomRotator()
    value = r.create(None, {"bytes": 24, "encoding": encoding})
    r.test(value, {"bytes": 24, "encoding": encoding})
    with pytest.raises(InvalidInputError):
        r.test(value + "!", {"bytes": 24, "encoding": encoding})


def test_retire_after_grace_and_propagators(env, clock) -> None:  # noqa: F811
    seen = []
    engine = RotationEngine(env, clock=clock, propagators=[lambda e, p, rev: seen.append((e, p, rev))])
    result = engine.rotate(ENV, "app.token")
    assert seen == [(ENV, ("app", "token"), result.revision)]
    assert engine.state(ENV, "app.token")["propagation"] == "done"  # type: ignore[index]
    clock.now = T0 + timedelta(days=2)
    engine.resume()
    assert engine.state(ENV, "app.token")["previous"] is None  # type: ignore[index]


def manual_engine(svc, clock, typed: str, out: list[str]) -> RotationEngine:  # type: ignore[no-untyped-def]  # noqa: F811
    io = RotatorIO(echo=out.append, read_secret=lambda _label: typed)
    return RotationEngine(svc, clock=clock, rotators={"manual": ManualRotator(io)})


def test_manual_rotation(env, clock) -> None:  # noqa: F811
    out: list[str] = []
    new = "ghp_CANARYNEWgithubtoken9876543210fedcba"
    result = manual_engine(env, clock, new, out).rotate(ENV, "app.gh")
    assert result.outcome == "done"
    assert current(env, "app.gh") == new
    text = "\n".join(out)
    assert "https://github.com/settings/tokens" in text and "read:packages" in text and "1 year" in text
    assert "revoke the old credential at https://github.com/settings/tokens/revoke" in text
    assert new not in text and GH_OLD not in text and new not in everything_stored(env)


@pytest.mark.parametrize("typed", ["gho_wrongprefix0123456789abcdef", "ghp_short", ""])
def test_manual_bad_shape_promotes_nothing(env, clock, typed) -> None:  # noqa: F811
    before = env.store.get_environment(ENV).latest_revision
    result = manual_engine(env, clock, typed, []).rotate(ENV, "app.gh")
    assert result.outcome == "failed" and result.steps[-1][0] == "create"
    assert current(env, "app.gh") == GH_OLD
    assert env.store.get_environment(ENV).latest_revision == before
    assert audit_actions(env) == ["rotation.started", "rotation.failed"]
    if typed:
        assert typed not in everything_stored(env) and typed not in (result.error or "")


def test_manual_reads_stdin_through_the_cli(env, environ, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setitem(cli_app._LAZY, "rotate", ("strongroom.cli.rotate", "rotate"))
    new = "ghp_CANARYSTDINtoken0123456789abcdefabcd"
    res = CliRunner().invoke(cli_app.cli, ["rotate", str(ENV), "app.gh", "--yes"], input=new + "\n", env=environ)
    assert res.exit_code == 0, res.output
    assert "app.gh: done" in res.output and new not in res.output
    assert current(env, "app.gh") == new
    res = CliRunner().invoke(cli_app.cli, ["rotate", str(ENV), "app.gh", "--yes"], input="nope\n", env=environ)
    assert res.exit_code == 1 and "failed" in res.output and "nope" not in res.output
    assert current(env, "app.gh") == new


class FailingTest(RandomRotator):
    def test(self, new: str, inputs) -> None:  # type: ignore[no-untyped-def]
        raise InvalidInputError("the endpoint refused the new token")


def test_failed_test_never_promotes_and_backs_off(env, clock) -> None:  # noqa: F811
    engine = RotationEngine(env, clock=clock, rotators={"random": FailingTest()})
    before = env.store.get_environment(ENV).latest_revision
    first = engine.rotate(ENV, "app.token")
    assert first.outcome == "failed" and first.retry_at == T0 + timedelta(hours=1)
    assert current(env) == OLD and env.store.get_environment(ENV).latest_revision == before
    state = engine.state(ENV, "app.token")
    assert state is not None and state["pending"] is None and state["attempts"] == 1
    assert not engine.retry_due(ENV, "app.token")
    second = engine.rotate(ENV, "app.token")
    assert second.retry_at == T0 + timedelta(hours=2)  # backoff doubles
    failed = [r for r in env.store.list_audit(action="rotation.failed")]
    assert [dict(r.event.details)["step"] for r in failed] == ["test", "test"]
    clock.now = T0 + timedelta(hours=3)
    assert engine.retry_due(ENV, "app.token")
    # a retry after the fix makes a fresh value and succeeds
    ok = RotationEngine(env, clock=clock).rotate(ENV, "app.token")
    assert ok.outcome == "done" and current(env) != OLD


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", STEPS)
def test_crash_at_each_step_then_resume(make_service, env, clock, step, when) -> None:  # noqa: F811
    point = f"{when}:{step}"

    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    before = env.store.get_environment(ENV).latest_revision
    with pytest.raises(Crash):
        RotationEngine(env, clock=clock, observe=crash).rotate(ENV, "app.token")
    fresh = make_service()
    engine = RotationEngine(fresh, clock=clock)
    engine.resume()
    state = engine.state(ENV, "app.token")
    assert state is not None and state["status"] in ("done", "rolled-back") and state["pending"] is None
    if state["status"] == "rolled-back":
        assert point == "before:create"
        assert current(fresh) == OLD and fresh.store.get_environment(ENV).latest_revision == before
        assert audit_actions(fresh)[-1] == "rotation.failed"
    else:
        new = current(fresh)
        assert new != OLD and len(new) == 64
        assert fresh.store.get_environment(ENV).latest_revision == before + 1  # promoted exactly once
        assert audit_actions(fresh).count("rotation.done") == 1
        assert fresh._decryptor(ENV)(state["previous"]) == OLD
        assert new not in everything_stored(fresh)
    assert OLD not in everything_stored(fresh)
    assert engine.resume() == []  # nothing left to do
    assert RotationEngine(fresh, clock=clock).rotate(ENV, "app.token").outcome == "done"  # lock was freed


def test_killed_process_lock_expires_then_resume(env, environ, clock) -> None:  # noqa: F811
    script = textwrap.dedent(
        f"""
        import os
        from datetime import UTC, datetime
        from strongroom.cli.context import AppContext
        from strongroom.model import EnvRef
        from strongroom.rotation.engine import RotationEngine

        def kill(at):
            if at == "after:set":
                os._exit(9)

        svc = AppContext({dict(environ)!r}).service()
        RotationEngine(svc, clock=lambda: datetime.now(UTC), observe=kill).rotate(EnvRef("acme", "prod"), "app.token")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    clock.now = datetime.now(UTC)
    with pytest.raises(RotationInProgressError):  # the dead process's lock still stands
        RotationEngine(env, clock=clock).resume()
    assert current(env) == OLD
    clock.now = datetime.now(UTC) + timedelta(minutes=16)
    [result] = RotationEngine(env, clock=clock).resume()
    assert result.outcome == "done" and current(env) != OLD


def test_concurrent_rotation_is_refused(env, clock) -> None:  # noqa: F811
    refused = []

    def second(at: str) -> None:
        if at == "before:set":
            with pytest.raises(RotationInProgressError):
                RotationEngine(env, clock=clock).rotate(ENV, "app.token")
            refused.append(at)

    result = RotationEngine(env, clock=clock, observe=second).rotate(ENV, "app.token")
    assert refused == ["before:set"] and result.outcome == "done"
    assert audit_actions(env).count("rotation.started") == 1


def test_cli_rotate_and_history(env, environ, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setitem(cli_app._LAZY, "rotate", ("strongroom.cli.rotate", "rotate"))
    monkeypatch.setitem(cli_app._LAZY, "rotation", ("strongroom.cli.rotation", "rotation"))
    runner = CliRunner()
    res = runner.invoke(cli_app.cli, ["rotate", str(ENV), "app.token"], input="n\n", env=environ)
    assert res.exit_code == 1 and current(env) == OLD  # declined
    res = runner.invoke(cli_app.cli, ["rotate", str(ENV), "app.token", "--yes"], env=environ)
    assert res.exit_code == 0, res.output
    for step in STEPS:
        assert f"app.token: {step}:" in res.output
    new = current(env)
    assert new not in res.output and OLD not in res.output
    res = runner.invoke(cli_app.cli, ["rotation", "history", str(ENV), "app.token", "--format", "json"], env=environ)
    rows = json.loads(res.output)
    assert [(r["path"], r["outcome"], r["rotator"]) for r in rows] == [("app.token", "done", "random")]
    res = runner.invoke(cli_app.cli, ["rotation", "history"], env=environ)
    assert res.exit_code == 0 and "app.token" in res.output and new not in res.output


def test_no_rotator_in_catalog(env, clock) -> None:  # noqa: F811
    with pytest.raises(InvalidInputError):
        RotationEngine(env, clock=clock).rotate(ENV, "app.missing")
