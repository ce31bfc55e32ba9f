"""The rotation engine's lock (compare-and-set, across processes on PostgreSQL), its ``verify:`` test
step, companion values and memos (``Rotated``), and retiring the previous value."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from strongroom.cli.context import AppContext
from strongroom.errors import DefinitionError
from strongroom.model import EnvRef, RevisionRef
from strongroom.rotation.engine import RotationEngine, RotationInProgressError
from strongroom.rotation.rotators import RandomRotator, Rotated
from strongroom.service import Service
from test_rotation_catalog import T0, Clock, clock, environ, make_service, service  # noqa: F401

ENV = EnvRef("acme", "prod")
OLD = "CANARYOLD0a1b2c3d4e5f60718293a4b5c6d7e8f"


def definition(verify: str = "") -> str:
    return f"""values:
  app:
    token: {{fn::secret: {OLD}}}
    user: app
rotation:
  app.token:
    schedule: annually
    rotator: {{random: {{bytes: 32, encoding: hex}}}}
{verify}"""


def current(svc: Service, path: str = "app.token") -> Any:
    value = svc.read(RevisionRef(ENV), tuple(path.split(".")), show_secrets=True)
    return value.reveal() if hasattr(value, "reveal") else value


# -- the lock ------------------------------------------------------------------------------------


class SlowRandom(RandomRotator):
    """Holds the lock a while, so that every racer finds it taken."""

    def create(self, current: str | None, inputs: Mapping[str, Any]) -> str | Rotated:
        time.sleep(0.3)
        return super().create(current, inputs)


@pytest.fixture
def pg_environ(postgres_url: str, tmp_path) -> dict[str, str]:
    return {
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_STORE": postgres_url,
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        "STRONGROOM_ACTOR": "tester",
    }


@pytest.mark.postgres
def test_one_winner_across_processes_on_postgres(pg_environ, clock) -> None:  # noqa: F811
    """Eight engines, each with its own connection (as separate servers have), race for one secret."""
    app = AppContext(pg_environ)
    keys = lambda s: app.key_provider(s).load()  # noqa: E731
    first = Service(app.open_store(create=True), load_keyring=keys, actor="tester", clock=clock)
    first.initialise_keys()
    first.create_environment(ENV, definition())
    services = [Service(app.open_store(), load_keyring=keys, actor="tester", clock=clock) for _ in range(8)]
    barrier = threading.Barrier(len(services))
    outcomes: list[str] = []

    def contend(svc: Service) -> None:
        engine = RotationEngine(svc, clock=clock, rotators={"random": SlowRandom()})
        barrier.wait()
        try:
            outcomes.append(engine.rotate(ENV, "app.token").outcome)
        except RotationInProgressError:
            outcomes.append("refused")

    threads = [threading.Thread(target=contend, args=(svc,)) for svc in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(outcomes) == ["done"] + ["refused"] * 7
        done = [r for r in first.store.list_audit(environment=str(ENV), action="rotation.done")]
        assert len(done) == 1
        assert first.store.get_environment(ENV).latest_revision == 2  # exactly one new revision
        # The lock is free again: a later rotation goes through.
        assert RotationEngine(first, clock=clock).rotate(ENV, "app.token").outcome == "done"
    finally:
        for svc in (first, *services):
            svc.close()


def test_lock_taken_between_read_and_write_is_refused(service, clock) -> None:  # noqa: F811
    """The window a read-then-write lock had: another owner writes after our read. The swap loses."""
    service.create_environment(ENV, definition())
    engine = RotationEngine(service, clock=clock)
    store = service.store
    real_get = store.get_meta

    def get_then_race(key: str) -> str | None:
        found = real_get(key)
        if key.startswith("rotation:lock:"):
            store.set_meta(key, '{"expires": "2999-01-01T00:00:00+00:00", "owner": "someone-else"}')
        return found

    store.get_meta = get_then_race  # type: ignore[method-assign]
    try:
        with pytest.raises(RotationInProgressError):
            engine.rotate(ENV, "app.token")
    finally:
        del store.get_meta
    assert current(service) == OLD
    assert "someone-else" in (store.get_meta(f"rotation:lock:{ENV}:app.token") or "")


# -- verify: -------------------------------------------------------------------------------------


class _Accepting(BaseHTTPRequestHandler):
    accepted: set[str] = set()
    seen: list[str] = []

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        type(self).seen.append(header)
        token = header.removeprefix("Bearer ")
        self.send_response(200 if token in type(self).accepted or "*" in type(self).accepted else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint():  # type: ignore[no-untyped-def]
    handler = type("Handler", (_Accepting,), {"accepted": set(), "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_verify_step_passes_when_the_endpoint_takes_the_new_token(service, clock, endpoint) -> None:  # noqa: F811
    handler, url = endpoint
    handler.accepted.add("*")
    service.create_environment(ENV, definition(f"    verify: {{http: {{url: '{url}'}}}}\n"))
    result = RotationEngine(service, clock=clock).rotate(ENV, "app.token")
    assert result.outcome == "done"
    new = current(service)
    assert handler.seen == [f"Bearer {new}"]  # the new value was what the endpoint was asked to accept
    assert dict(result.steps)["test"].startswith("ok (GET ")
    assert new not in repr(result)


def test_verify_step_refusal_promotes_nothing(service, clock, endpoint) -> None:  # noqa: F811
    handler, url = endpoint  # accepts nothing: 401
    service.create_environment(ENV, definition(f"    verify: {{http: {{url: '{url}'}}}}\n"))
    result = RotationEngine(service, clock=clock).rotate(ENV, "app.token")
    assert result.outcome == "failed"
    assert current(service) == OLD
    assert result.error is not None and "401" in result.error and "http verifier" in result.error
    tried = handler.seen[0].removeprefix("Bearer ")
    assert tried != OLD and tried not in (result.error or "")
    failed = service.store.list_audit(environment=str(ENV), action="rotation.failed")
    assert len(failed) == 1 and dict(failed[0].event.details)["step"] == "test"


@pytest.mark.parametrize(
    ("verify", "message"),
    [
        ("    verify: {htp: {url: x}}\n", 'did you mean "http"'),
        ("    verify: {http: {}}\n", "needs url"),
        ("    verify: [http]\n", "one key"),
    ],
)
def test_verify_block_is_checked_when_written(service, verify: str, message: str) -> None:  # noqa: F811
    with pytest.raises(DefinitionError) as caught:
        service.create_environment(ENV, definition(verify))
    assert message in str(caught.value.diagnostics)


# -- companions, memos, retiring ---------------------------------------------------------------------


class Alternating(RandomRotator):
    """Targets the user the last rotation did not; records what it was asked to retire."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def create(self, current: str | None, inputs: Mapping[str, Any]) -> str | Rotated:
        active = inputs["memo"].get("user", "app")
        target = "app_clone" if active == "app" else "app"
        value = str(super().create(current, inputs))
        return Rotated(value, extra={"app.user": target}, memo={"user": target, "previous_user": active})

    def set(self, new: str, inputs: Mapping[str, Any]) -> None:
        self.calls.append(("set", dict(inputs["memo"])))

    def retire(self, old: str, inputs: Mapping[str, Any]) -> None:
        self.calls.append(("retire", dict(inputs["memo"])))


def test_companion_values_land_in_the_same_revision_and_memos_carry_over(service, clock) -> None:  # noqa: F811
    service.create_environment(ENV, definition())
    rotator = Alternating()
    engine = RotationEngine(service, clock=clock, rotators={"random": rotator})
    first = engine.rotate(ENV, "app.token")
    assert first.outcome == "done" and first.revision == 2
    assert current(service, "app.user") == "app_clone"
    assert service.store.get_environment(ENV).latest_revision == 2  # password and user: one revision
    assert rotator.calls == [("set", {"user": "app_clone", "previous_user": "app"})]
    second = engine.rotate(ENV, "app.token")  # retires the first's previous before making another
    assert current(service, "app.user") == "app"
    assert rotator.calls[1:] == [
        ("retire", {"user": "app_clone", "previous_user": "app"}),
        ("set", {"user": "app", "previous_user": "app_clone"}),
    ]
    assert second.revision == 3
    actions = [r.event.action for r in service.store.list_audit(environment=str(ENV)) if "rotation" in r.event.action]
    assert actions.count("rotation.retired") == 1
    state = engine.state(ENV, "app.token") or {}
    assert "extra" not in state or state["extra"] is None  # nothing left sealed once promoted


def test_failed_rotation_keeps_the_memo_of_the_last_good_one(service, clock) -> None:  # noqa: F811
    service.create_environment(ENV, definition())

    class FailsSet(Alternating):
        def set(self, new: str, inputs: Mapping[str, Any]) -> None:
            raise RuntimeError("provider down")

    engine = RotationEngine(service, clock=clock, rotators={"random": Alternating()})
    engine.rotate(ENV, "app.token")
    failing = RotationEngine(service, clock=clock, rotators={"random": FailsSet()})
    assert failing.rotate(ENV, "app.token").outcome == "failed"
    assert current(service, "app.user") == "app_clone"
    assert (failing.state(ENV, "app.token") or {})["memo"] == {"user": "app_clone", "previous_user": "app"}


def test_previous_is_retired_after_grace_by_resume(service, clock) -> None:  # noqa: F811
    service.create_environment(ENV, definition())
    rotator = Alternating()
    engine = RotationEngine(service, clock=clock, rotators={"random": rotator}, grace=timedelta(hours=2))
    engine.rotate(ENV, "app.token")
    engine.resume()
    assert [c[0] for c in rotator.calls] == ["set"]  # within the grace period
    clock.now = T0 + timedelta(hours=3)
    engine.resume()
    assert [c[0] for c in rotator.calls] == ["set", "retire"]
    assert (engine.state(ENV, "app.token") or {})["previous"] is None


@pytest.mark.parametrize(
    ("rotator", "message"),
    [
        ("{postgresql: {usr: app}}", 'did you mean "user"'),
        ("{postgresql: {host: db}}", "needs user"),
        ("{postgresql: {user: app, strategy: twin}}", "single or alternate"),
        ("{postgresql: {user: app, strategy: alternate}}", "needs userPath"),
    ],
)
def test_postgresql_inputs_are_checked_when_written(service, rotator: str, message: str) -> None:  # noqa: F811
    text = definition().replace("rotator: {random: {bytes: 32, encoding: hex}}", f"rotator: {rotator}")
    with pytest.raises(DefinitionError) as caught:
        service.create_environment(ENV, text)
    assert message in str(caught.value.diagnostics)


def test_postgresql_alternate_with_user_path_is_accepted(service) -> None:  # noqa: F811
    text = definition().replace(
        "rotator: {random: {bytes: 32, encoding: hex}}",
        "rotator: {postgresql: {user: app, strategy: alternate, userPath: app.user}}",
    )
    service.create_environment(ENV, text)


def test_importers_resolve_bare_names_to_the_default_project(service) -> None:  # noqa: F811
    from strongroom.rotation.catalog import importers

    service.create_environment(EnvRef("default", "shared"), "values:\n  x: 1\n")
    service.create_environment(EnvRef("acme", "uses-bare"), "imports:\n  - shared\nvalues:\n  y: 2\n")
    service.create_environment(EnvRef("acme", "uses-full"), "imports:\n  - default/shared@1\nvalues:\n  z: 3\n")
    assert importers(service)["default/shared"] == ("acme/uses-bare", "acme/uses-full")
