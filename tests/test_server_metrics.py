"""/metrics (its token, its families), /healthz, /readyz, and the lifespan's store handling."""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from strongroom.errors import StoreUnavailableError
from strongroom.model import AuditEvent, AuditRecord, EnvRef
from strongroom.server.app import create_app
from strongroom.server.config import ServerConfig
from strongroom.server.testing import Harness, StrongroomServer, make_token, new_store, running_server

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_server(
        tmp_path_factory.mktemp("metrics") / "home", metrics_token=METRICS_TOKEN, auth_failure_limit=10_000
    ) as h:
        h.service().create_environment(EnvRef("m", "env"), "values:\n  s:\n    fn::secret: x\n")
        yield h


def scrape(harness: Harness) -> str:
    response = httpx.get(f"{harness.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_metrics_are_off_without_a_token(tmp_path):
    with running_server(tmp_path / "home") as h:
        response = httpx.get(f"{h.url}/metrics", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 404
        assert response.json()["code"] == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", f"token {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x", "Bearer"]
)
def test_metrics_need_the_bearer_token(harness: Harness, header: str | None):
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.get(f"{harness.url}/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert METRICS_TOKEN not in response.text


def test_metrics_count_requests_opens_and_auth_failures(harness: Harness):
    opener = harness.client(harness.token("metrics-opener", "opener"))
    assert opener.get("/api/esc/environments/default").status_code == 200
    session = opener.post("/api/esc/environments/default/m/env/open").json()["id"]
    assert opener.get(f"/api/esc/environments/default/m/env/open/{session}").status_code == 200
    harness.client("sr_bogus").get("/api/esc/environments/default")
    harness.client().get("/no/such/route/42")
    text = scrape(harness)
    assert 'strongroom_http_requests_total{method="GET",route="/api/esc/environments/{orgName}",status="200"}' in text
    assert 'route="/api/esc/environments/{orgName}/{projectName}/{envName}/open/{openSessionID}"' in text
    assert 'strongroom_http_request_duration_seconds_bucket{le="0.005"' in text
    assert 'strongroom_opens_total{environment="m/env"} 1.0' in text
    assert 'strongroom_auth_failures_total{reason="rejected"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/route" not in text
    assert "# TYPE strongroom_rotations_total counter" in text
    assert "strongroom_audit_write_failures_total 0.0" in text


def test_each_app_has_its_own_registry(tmp_path):
    first = create_app(ServerConfig(home=tmp_path / "a"))
    second = create_app(ServerConfig(home=tmp_path / "b"))
    assert first.state.strongroom.metrics.registry is not second.state.strongroom.metrics.registry


class FlakyAuditStore:
    """A store whose audit appends fail on demand (as when the database goes away mid-request)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.broken = False

    def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if self.broken:
            raise StoreUnavailableError("the audit log cannot be written")
        return list(self._store.append_audit(events))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_audit_write_failures_are_counted_and_fail_closed(tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    store, load = new_store(tmp_path / "home", key)
    flaky = FlakyAuditStore(store)
    reader = make_token(store, load, "reader", "reader")
    store.create_environment  # noqa: B018 (the real store stays usable)
    config = ServerConfig(home=tmp_path / "home", metrics_token=METRICS_TOKEN)
    app = create_app(config, store=flaky, load_keyring=load)  # type: ignore[arg-type]
    try:
        with StrongroomServer(app) as server:
            client = httpx.Client(base_url=server.url, headers={"Authorization": f"token {reader}"})
            assert client.get("/api/esc/environments/default").status_code == 200
            flaky.broken = True
            failed = client.get("/api/esc/environments/default/x/y")  # a denial or read must be audited first
            assert failed.status_code in (403, 404, 503)
            denied = client.delete("/api/esc/environments/default/x/y")  # the denial cannot be recorded
            assert denied.status_code == 503
            assert denied.json()["code"] == 503
            flaky.broken = False
            text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
            assert "strongroom_audit_write_failures_total 0.0" not in text
            client.close()
    finally:
        store.close()


def test_healthz_and_security_headers(harness: Harness):
    response = harness.client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "server" not in response.headers
    assert response.headers.get("set-cookie") is None


def test_readyz_is_ready_with_store_and_key(harness: Harness):
    response = harness.client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"store": "ok", "key": "ok"}}


def _initialised_home(home: Path) -> str:
    key = base64.b64encode(os.urandom(32)).decode()
    store, _load = new_store(home, key)
    store.close()
    return key


def test_readyz_is_503_when_the_store_file_is_deleted(tmp_path):
    home = tmp_path / "home"
    key = _initialised_home(home)
    config = ServerConfig.from_environ({"STRONGROOM_HOME": str(home), "STRONGROOM_MASTER_KEY": key})
    app = create_app(config)
    with StrongroomServer(app) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        for path in home.glob("store.db*"):
            path.unlink()
        response = httpx.get(f"{server.url}/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["store"] == "unavailable"
        assert response.json()["code"] == 503
        assert str(home) not in response.text


def test_readyz_is_503_with_the_wrong_key(tmp_path):
    home = tmp_path / "home"
    _initialised_home(home)
    wrong = base64.b64encode(os.urandom(32)).decode()
    config = ServerConfig.from_environ({"STRONGROOM_HOME": str(home), "STRONGROOM_MASTER_KEY": wrong})
    with StrongroomServer(create_app(config)) as server:
        response = httpx.get(f"{server.url}/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"store": "ok", "key": "unavailable"}
        assert "wrong" not in response.text and wrong not in response.text


def test_readyz_is_503_without_a_key(tmp_path):
    home = tmp_path / "home"
    _initialised_home(home)
    config = ServerConfig.from_environ({"STRONGROOM_HOME": str(home)})
    with StrongroomServer(create_app(config)) as server:
        assert httpx.get(f"{server.url}/readyz").json()["checks"]["key"] == "unavailable"


def test_the_lifespan_opens_and_closes_the_store(tmp_path):
    home = tmp_path / "home"
    key = _initialised_home(home)
    config = ServerConfig.from_environ({"STRONGROOM_HOME": str(home), "STRONGROOM_MASTER_KEY": key})
    app = create_app(config)
    state = app.state.strongroom
    assert state.store is None
    with StrongroomServer(app):
        opened = state.store
        assert opened is not None and state.owns_store
    assert state.store is None
    with pytest.raises(sqlite3.ProgrammingError):
        opened.get_meta("anything")


def test_a_store_given_by_the_caller_is_left_open(tmp_path):
    with running_server(tmp_path / "home") as h:
        store = h.store
    # running_server closes it itself, after the app has stopped: the app did not.
    assert h.app.state.strongroom.store is store


def test_startup_fails_cleanly_without_a_store(tmp_path):
    config = ServerConfig.from_environ({"STRONGROOM_HOME": str(tmp_path / "nothing-here")})
    with pytest.raises(RuntimeError, match="did not start"):
        StrongroomServer(create_app(config), startup_timeout=5).start()
