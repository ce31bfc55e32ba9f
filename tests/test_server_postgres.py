"""The server over PostgreSQL as well as SQLite: the ESC SDK round trip, and concurrent requests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from strongroom.model import EnvRef
from strongroom.server.testing import Harness, running_server

esc = pytest.importorskip("pulumi_esc_sdk")

BASE = "/api/esc/environments/default"
YAML = {"Content-Type": "application/x-yaml"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def harness(request: pytest.FixtureRequest, tmp_path) -> Iterator[Harness]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with running_server(tmp_path / "home", store_url=url, auth_failure_limit=10_000) as h:
        yield h


def test_sdk_round_trip(harness: Harness):
    client = esc.EscClient(esc.Configuration(host=harness.url, access_token=harness.token("pg-admin", "admin")))
    secret = f"CANARY-{uuid.uuid4().hex}"
    client.create_environment("default", "proj", "app")
    client.update_environment_yaml("default", "proj", "app", f"values:\n  s:\n    fn::secret: {secret}\n  n: 1\n")
    assert secret not in client.get_environment("default", "proj", "app")[1].decode()
    assert client.open_and_read_environment("default", "proj", "app")[1] == {"s": secret, "n": 1}
    client.create_environment_tag("default", "proj", "app", "team", "db")
    assert client.list_environment_tags("default", "proj", "app").tags["team"].value == "db"
    client.create_environment_revision_tag("default", "proj", "app", "stable", 2)
    assert client.get_environment_revision_tag("default", "proj", "app", "stable").revision == 2
    client.delete_environment("default", "proj", "app")
    assert client.list_environments("default").environments == []
    assert httpx.get(f"{harness.url}/readyz").status_code == 200


def test_concurrent_requests(harness: Harness):
    harness.service().create_environment(EnvRef("proj", "busy"), "values:\n  n: 0\n  s:\n    fn::secret: x\n")
    token = harness.token("busy", "admin")

    def work(i: int) -> list[int]:
        with httpx.Client(base_url=harness.url, headers={"Authorization": f"token {token}"}, timeout=60) as c:
            statuses = [c.patch(f"{BASE}/proj/busy", content=f"values:\n  n: {i}\n", headers=YAML).status_code]
            opened = c.post(f"{BASE}/proj/busy/open")
            statuses.append(opened.status_code)
            statuses.append(c.get(f"{BASE}/proj/busy/open/{opened.json()['id']}").status_code)
            statuses.append(c.get(f"{BASE}/proj/busy").status_code)
            statuses.append(c.post(f"{BASE}/proj/busy/tags", json={"name": f"t{i}", "value": "v"}).status_code)
            return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(16)))
    assert all(status == 200 for statuses in results for status in statuses), results
    assert harness.store.get_environment(EnvRef("proj", "busy")).latest_revision == 17
    assert len(harness.store.list_env_tags(EnvRef("proj", "busy"))) == 16
    count, broken = harness.service().verify_audit()
    assert broken is None and count > 16 * 5
