"""``strongroom rotation run-due``: resume, rotate overdue unattended secrets, retry after backoff; exit codes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from strongroom.cli import app as cli_app
from strongroom.model import EnvRef, RevisionRef
from strongroom.rotation.engine import RotationEngine
from strongroom.rotation.rotators import RandomRotator
from test_rotation_catalog import T0, Clock, clock, environ, make_service, service  # noqa: F401
from test_rotation_reminders import smtp  # noqa: F401

ENV = EnvRef("acme", "prod")
CALM = EnvRef("acme", "calm")
OLD = "CANARYOLD0a1b2c3d4e5f60718293a4b5c6d7e8f"
GH_OLD = "ghp_CANARYOLDgithubtoken0123456789abcdef"
FRESH = "CANARYFRESH0a1b2c3d4e5f60718293a4b5c6d7e"
DEFINITION = f"""values:
  app:
    token: {{fn::secret: {OLD}}}
    gh: {{fn::secret: {GH_OLD}}}
    fresh: {{fn::secret: {FRESH}}}
rotation:
  app.token:
    schedule: annually
    rotator: {{random: {{bytes: 32, encoding: hex}}}}
    lastRotated: 2000-01-01
  app.gh:
    schedule: annually
    rotator: {{manual: {{}}}}
    lastRotated: 2000-01-01
  app.fresh:
    schedule: never
    rotator: {{random: {{}}}}
"""
CALM_DEFINITION = f"""values:
  app:
    token: {{fn::secret: {OLD}}}
rotation:
  app.token:
    schedule: annually
    rotator: {{random: {{}}}}
    lastRotated: 2000-01-01
"""


class Crash(BaseException):
    """A simulated kill."""


@pytest.fixture
def envs(service):  # type: ignore[no-untyped-def]  # noqa: F811
    service.create_environment(ENV, DEFINITION)
    service.create_environment(CALM, CALM_DEFINITION)
    return service


@pytest.fixture
def run(environ, monkeypatch):  # type: ignore[no-untyped-def]  # noqa: F811
    monkeypatch.setitem(cli_app._LAZY, "rotation", ("strongroom.cli.rotation", "rotation"))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli_app.cli, ["rotation", "run-due", *args], input=input, env=environ)

    return invoke


def current(svc: Any, env: EnvRef = ENV, path: str = "app.token") -> str:
    return str(svc.read(RevisionRef(env), tuple(path.split(".")), show_secrets=True).reveal())


def test_rotates_overdue_random_and_lists_manual(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run(str(ENV), "--yes")
    assert res.exit_code == 3, res.output  # the manual one needs a person
    assert "overdue: acme/prod app.token: done" in res.output
    assert "needs a person: acme/prod app.gh (manual)" in res.output
    assert "app.fresh" not in res.output
    new = current(envs)
    assert new != OLD and current(envs, path="app.gh") == GH_OLD and current(envs, path="app.fresh") == FRESH
    for value in (OLD, new, GH_OLD, FRESH):
        assert value not in res.output
    again = run(str(ENV), "--yes")  # now rotated: only the manual one is left
    assert again.exit_code == 3 and "app.token" not in again.output and current(envs) == new


def test_all_well_exits_zero(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run(str(CALM), "--yes")
    assert res.exit_code == 0, res.output
    assert current(envs, CALM) != OLD
    again = run(str(CALM), "--yes")
    assert again.exit_code == 0 and "app.token" not in again.output


def test_without_env_covers_every_environment(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run("--yes")
    assert res.exit_code == 3
    assert current(envs) != OLD and current(envs, CALM) != OLD


def test_asks_first_without_yes(envs, run) -> None:  # type: ignore[no-untyped-def]
    res = run(str(CALM), input="n\n")
    assert res.exit_code == 1 and current(envs, CALM) == OLD


def test_failure_exits_one_then_waits_for_backoff(envs, run, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(self, new, inputs):  # type: ignore[no-untyped-def]
        raise RuntimeError("verifier down")

    monkeypatch.setattr(RandomRotator, "test", broken)
    res = run(str(CALM), "--yes")
    assert res.exit_code == 1
    assert "overdue: acme/calm app.token: failed" in res.output and current(envs, CALM) == OLD
    res = run(str(CALM), "--yes")  # within the backoff: not tried again
    assert res.exit_code == 1 and "waiting: acme/calm app.token" in res.output
    monkeypatch.undo()
    monkeypatch.setitem(cli_app._LAZY, "rotation", ("strongroom.cli.rotation", "rotation"))
    from strongroom.cli import rotation as rotation_cli

    later = T0.replace(year=2999)
    monkeypatch.setattr(rotation_cli, "_now", lambda: later)  # the injected clock: the backoff is over
    res = run(str(CALM), "--yes")
    assert res.exit_code == 0, res.output
    assert current(envs, CALM) != OLD


def test_resumes_an_interrupted_rotation(envs, run, clock) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    def crash(at: str) -> None:
        if at == "before:test":
            raise Crash

    with pytest.raises(Crash):
        RotationEngine(envs, clock=clock, observe=crash, lock_ttl=timedelta(0)).rotate(CALM, "app.token")
    assert current(envs, CALM) == OLD
    res = run(str(CALM), "--yes")
    assert res.exit_code == 0, res.output
    assert "resumed: acme/calm app.token: done" in res.output
    assert "overdue: acme/calm app.token" not in res.output  # finished by resume, not rotated twice
    assert current(envs, CALM) != OLD


def test_the_server_rotates_what_is_due_by_itself(tmp_path):
    """`strongroom serve` runs what `rotation run-due --yes` does, on its own schedule."""
    import base64
    import dataclasses
    import os
    import time
    from datetime import timedelta

    from strongroom.model import EnvRef
    from strongroom.server.app import create_app
    from strongroom.server.config import ServerConfig
    from strongroom.server.testing import StrongroomServer, new_store
    from strongroom.service import Service

    key = base64.b64encode(os.urandom(32)).decode()
    store, load = new_store(tmp_path / "srv", key)
    setup = Service(store, load_keyring=load, actor="setup")
    env = EnvRef("proj", "svc")
    definition = (
        "values:\n"
        "  token:\n"
        "    fn::secret: CANARY-old-token-value\n"
        "rotation:\n"
        "  token:\n"
        "    purpose: bearer token\n"
        "    schedule: annually\n"
        "    lastRotated: 2000-01-01\n"
        "    rotator: {random: {bytes: 16, encoding: hex}}\n"
    )
    setup.create_environment(env, definition)
    config = dataclasses.replace(
        ServerConfig.from_environ({"STRONGROOM_HOME": str(tmp_path / "srv")}), rotation_interval=timedelta(seconds=0.2)
    )
    try:
        with StrongroomServer(create_app(config, store=store, load_keyring=load)):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and setup.store.get_environment(env).latest_revision == 1:
                time.sleep(0.1)
        value = setup.read(RevisionRef(env), ("token",), show_secrets=True).reveal()
    finally:
        store.close()
    assert value != "CANARY-old-token-value" and len(value) == 32


def test_a_failed_scheduled_rotation_is_mailed(envs, environ, monkeypatch, smtp) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    inbox, port = smtp

    def broken(self, new, inputs):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"verifier down {new}")  # a careless error that echoes the value

    monkeypatch.setattr(RandomRotator, "test", broken)
    monkeypatch.setitem(cli_app._LAZY, "rotation", ("strongroom.cli.rotation", "rotation"))
    mail = {
        "STRONGROOM_SMTP_HOST": "127.0.0.1",
        "STRONGROOM_SMTP_PORT": str(port),
        "STRONGROOM_SMTP_STARTTLS": "false",
        "STRONGROOM_SMTP_TO": "ops@example.com",
    }
    res = CliRunner().invoke(cli_app.cli, ["rotation", "run-due", str(CALM), "--yes"], env={**environ, **mail})
    assert res.exit_code == 1
    assert current(envs, CALM) == OLD
    [(_sender, rcpts, msg)] = inbox.messages
    assert rcpts == ["ops@example.com"]
    assert msg["Subject"] == "Rotation failed: app.token in acme/calm (step test)"
    body = msg.get_content()
    assert "RuntimeError" in body and "strongroom rotate acme/calm 'app.token'" in body
    assert OLD not in msg.as_string()
    assert "verifier down" not in msg.as_string()  # only the type of a foreign error: it could hold the value
