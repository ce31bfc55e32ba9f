"""Webhooks: events from the audit log, signed deliveries over real HTTP, retries, the delivery log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from strongroom.cli.context import AppContext
from strongroom.errors import InvalidInputError, NotFoundError
from strongroom.model import EnvRef
from strongroom.service import Service
from strongroom.webhooks import MAX_ATTEMPTS, backoff, http_post

SECRET = "whsec-" + "k" * 32
ENV = EnvRef("proj", "app")
OTHER = EnvRef("proj", "other")


class Receiver:
    """A real HTTP endpoint that records what it gets and answers with scripted statuses."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, object]]:
        return [json.loads(body) for _headers, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path):
    environ = {
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "STRONGROOM_ACTOR": "tester",
    }
    ctx = AppContext(environ)
    ctx.open_store(create=True).close()
    yield ctx
    ctx.close()


@pytest.fixture
def service(app, clock) -> Service:
    store = app.open_store()
    svc = Service(store, load_keyring=lambda s: app.key_provider(s).load(), actor="tester", clock=clock)
    svc.initialise_keys()
    svc.create_environment(ENV, "values:\n  a: 1\n")
    svc.create_environment(OTHER)
    yield svc
    store.close()


def test_events_are_delivered_signed_and_only_for_their_environment(service, receiver):
    hook = service.create_webhook(ENV, receiver.url, SECRET)
    service.set_value(ENV, ("a",), 2)
    service.set_value(OTHER, ("x",), 1)  # another environment: not delivered
    service.tag(ENV, "stable")
    service.set_value(ENV, ("s",), "CANARY-webhook-secret-value", secret=True)
    dispatcher = service.webhook_dispatcher(http_post())
    assert dispatcher.run_once() == (3, 3)
    events = receiver.events()
    assert [e["event"] for e in events] == ["revision.created", "revision_tag.changed", "revision.created"]
    assert [e["revision"] for e in events] == [2, 2, 3]
    assert all(e["environment"] == str(ENV) for e in events)
    assert events[1]["tag"] == "stable"
    for headers, body in receiver.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-strongroom-signature"], expected)
        assert headers["content-type"] == "application/json"
        assert b"CANARY-webhook-secret-value" not in body
    assert hook.webhook_id not in SECRET
    # nothing is delivered twice
    assert dispatcher.run_once() == (0, 0)
    assert len(receiver.received) == 3


def test_all_environments_and_event_filter(service, receiver):
    service.create_webhook(None, receiver.url, SECRET, ["environment.deleted"])
    service.set_value(ENV, ("a",), 5)
    service.delete_environment(OTHER)
    service.webhook_dispatcher(http_post()).run_once()
    assert [(e["event"], e["environment"]) for e in receiver.events()] == [("environment.deleted", str(OTHER))]


def test_only_events_after_creation_are_delivered(service, receiver):
    service.set_value(ENV, ("a",), 3)
    service.create_webhook(ENV, receiver.url, SECRET)
    assert service.webhook_dispatcher(http_post()).run_once() == (0, 0)


def test_failures_are_retried_with_backoff_then_given_up(service, receiver, clock):
    service.create_webhook(ENV, receiver.url, SECRET)
    service.set_value(ENV, ("a",), 2)
    receiver.statuses = [500, 503]
    dispatcher = service.webhook_dispatcher(http_post())
    assert dispatcher.run_once() == (1, 0)
    [delivery] = service.list_deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    assert dispatcher.deliver_due() == 0  # not due yet: backoff
    clock.now += backoff(1)
    assert dispatcher.deliver_due() == 0  # 503
    clock.now += backoff(2)
    assert dispatcher.deliver_due() == 1
    [delivery] = service.list_deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)
    assert len(receiver.received) == 3


def test_an_unreachable_receiver_never_blocks_writes_and_is_recorded(service, clock):
    service.create_webhook(ENV, "http://127.0.0.1:9/unreachable", SECRET)
    for i in range(3):
        service.set_value(ENV, ("a",), 10 + i)  # writes go ahead: delivery is not part of them
    dispatcher = service.webhook_dispatcher(http_post(timeout=2.0))
    assert dispatcher.run_once() == (3, 0)
    deliveries = service.list_deliveries()
    assert all(d.status == "pending" and d.last_error for d in deliveries)
    for attempt in range(1, MAX_ATTEMPTS):
        clock.now += backoff(attempt) + timedelta(seconds=1)
        dispatcher.deliver_due()
    assert {d.status for d in service.list_deliveries()} == {"failed"}
    assert {d.attempts for d in service.list_deliveries()} == {MAX_ATTEMPTS}


def test_two_dispatchers_deliver_each_event_once(app, service, receiver, clock):
    service.create_webhook(ENV, receiver.url, SECRET)
    for i in range(10):
        service.set_value(ENV, ("a",), 100 + i)
    other_store = app.open_store()
    try:
        other = Service(other_store, load_keyring=lambda s: app.key_provider(s).load(), actor="x", clock=clock)
        dispatchers = [service.webhook_dispatcher(http_post()), other.webhook_dispatcher(http_post())]
        threads = [threading.Thread(target=d.run_once) for d in dispatchers for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for d in dispatchers:
            d.run_once()
    finally:
        other_store.close()
    revisions = sorted(e["revision"] for e in receiver.events())
    assert revisions == list(range(2, 12))


@pytest.mark.parametrize(
    ("url", "secret", "events"),
    [
        ("ftp://example.test/x", SECRET, None),
        ("not a url", SECRET, None),
        ("https://example.test/x", "short", None),
        ("https://example.test/x", SECRET, ["revision.exploded"]),
    ],
)
def test_bad_webhooks_are_refused_and_change_nothing(service, url, secret, events):
    with pytest.raises(InvalidInputError):
        service.create_webhook(ENV, url, secret, events)
    assert service.list_webhooks() == []


def test_the_signing_secret_is_stored_wrapped_and_deleting_removes_the_log(app, service, receiver):
    hook = service.create_webhook(ENV, receiver.url, SECRET)
    assert SECRET not in hook.secret and SECRET not in repr(hook)
    db = (app.home / "store.db").read_bytes()
    assert SECRET.encode() not in db
    service.set_value(ENV, ("a",), 9)
    service.webhook_dispatcher(http_post()).run_once()
    service.delete_webhook(hook.webhook_id)
    assert service.list_webhooks() == [] and service.list_deliveries() == []
    with pytest.raises(NotFoundError):
        service.delete_webhook(hook.webhook_id)


def test_cli_webhook_commands(run_cli, receiver):
    assert run_cli("init").exit_code == 0
    assert run_cli("env", "init", "proj/app").exit_code == 0
    created = run_cli("webhook", "create", "proj/app", receiver.url, "--secret", SECRET)
    assert created.exit_code == 0, created.stderr
    assert (
        run_cli(
            "webhook", "create", "--all", receiver.url, "--secret", SECRET, "--events", "environment.deleted"
        ).exit_code
        == 0
    )
    listed = run_cli("webhook", "ls").stdout
    assert receiver.url in listed and SECRET not in listed
    assert run_cli("env", "set", "proj/app", "a", "1").exit_code == 0
    dispatched = run_cli("webhook", "dispatch")
    assert dispatched.exit_code == 0 and "delivered 1" in dispatched.stdout
    assert "delivered" in run_cli("webhook", "deliveries").stdout
    usage = run_cli("webhook", "create", "proj/app", receiver.url)
    assert usage.exit_code == 2


def test_webhook_secrets_survive_master_key_rotation(app, service, receiver):
    from strongroom.crypto.providers import EnvironmentKeyProvider, generate_master_key_b64

    service.create_webhook(ENV, receiver.url, SECRET)
    new_ring = EnvironmentKeyProvider(generate_master_key_b64()).load()
    service.rewrap_data_keys(new_ring)
    fresh = Service(service.store, load_keyring=lambda _s: new_ring, actor="tester")
    fresh.set_value(ENV, ("a",), 77)
    fresh.webhook_dispatcher(http_post()).run_once()
    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-strongroom-signature"] == expected


def test_the_server_delivers_webhooks_by_itself(tmp_path, receiver):
    import dataclasses
    import time

    import httpx

    from strongroom.server.app import create_app
    from strongroom.server.config import ServerConfig
    from strongroom.server.testing import StrongroomServer, make_token, new_store

    key = base64.b64encode(os.urandom(32)).decode()
    store, load = new_store(tmp_path / "srv", key)
    token = make_token(store, load, "admin", "admin")
    Service(store, load_keyring=load, actor="setup").create_webhook(None, receiver.url, SECRET)
    config = dataclasses.replace(
        ServerConfig.from_environ({"STRONGROOM_HOME": str(tmp_path / "srv")}), webhook_interval=timedelta(seconds=0.2)
    )
    try:
        with StrongroomServer(create_app(config, store=store, load_keyring=load)) as server:
            created = httpx.post(
                f"{server.url}/api/v1/environments/proj/hooked",
                headers={"Authorization": f"token {token}"},
                json={"definition": "values:\n  a: 1\n"},
            )
            assert created.status_code == 201, created.text
            deadline = time.monotonic() + 15
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        store.close()
    [event] = receiver.events()
    assert (event["event"], event["environment"], event["revision"]) == ("revision.created", "proj/hooked", 1)
