"""Roles over HTTP: reader < opener < editor < admin, and scopes that reach through imports."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from strongroom.access import parse_token
from strongroom.model import EnvRef
from strongroom.server.testing import Harness, running_server

BASE = "/api/esc/environments/default"
SECRET = f"CANARY-{uuid.uuid4().hex}"
YAML = {"Content-Type": "application/x-yaml"}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_server(tmp_path_factory.mktemp("roles") / "home", auth_failure_limit=10_000) as h:
        svc = h.service()
        svc.create_environment(EnvRef("shared", "base"), f"values:\n  db:\n    password:\n      fn::secret: {SECRET}\n")
        svc.create_environment(
            EnvRef("apps", "web"), "imports:\n  - shared/base\nvalues:\n  url: postgres://u:${db.password}@db\n"
        )
        svc.create_environment(EnvRef("apps", "plain"), "values:\n  n: 1\n  s:\n    fn::secret: also-secret\n")
        yield h


@pytest.fixture(scope="module")
def clients(harness: Harness) -> dict[str, httpx.Client]:
    return {
        role: harness.client(harness.token(f"{role}-token", role)) for role in ("reader", "opener", "editor", "admin")
    }


def open_and_read(client: httpx.Client, env: str) -> httpx.Response:
    opened = client.post(f"{BASE}/{env}/open")
    if opened.status_code != 200:
        return opened
    return client.get(f"{BASE}/{env}/open/{opened.json()['id']}")


def test_reader_sees_masked_definitions_but_cannot_decrypt_or_open(clients):
    reader = clients["reader"]
    definition = reader.get(f"{BASE}/apps/plain")
    assert definition.status_code == 200
    assert "ciphertext" in definition.text and "also-secret" not in definition.text
    check = reader.post(f"{BASE}/yaml/check", content="imports: [shared/base]\nvalues: {}\n", headers=YAML)
    assert check.status_code == 200
    assert check.json()["properties"]["db"]["value"]["password"] == {
        "value": None,
        "secret": True,
        "unknown": True,
        "trace": check.json()["properties"]["db"]["value"]["password"]["trace"],
    }
    assert SECRET not in check.text
    assert reader.get(f"{BASE}/apps/plain/decrypt").status_code == 403
    assert reader.post(f"{BASE}/apps/plain/open").status_code == 403
    assert reader.patch(f"{BASE}/apps/plain", content="values: {}\n", headers=YAML).status_code == 403


def test_opener_decrypts_and_opens_but_cannot_write(clients):
    opener = clients["opener"]
    assert "also-secret" in opener.get(f"{BASE}/apps/plain/decrypt").text
    read = open_and_read(opener, "apps/web")
    assert read.status_code == 200
    assert read.json()["properties"]["url"]["value"] == f"postgres://u:{SECRET}@db"
    assert read.json()["properties"]["url"]["secret"] is True
    assert opener.patch(f"{BASE}/apps/plain", content="values: {}\n", headers=YAML).status_code == 403
    assert opener.post(BASE, json={"project": "apps", "name": "new"}).status_code == 403


def test_editor_writes_but_cannot_delete(clients, harness: Harness):
    editor = clients["editor"]
    name = f"e{uuid.uuid4().hex[:6]}"
    assert editor.post(BASE, json={"project": "apps", "name": name}).status_code == 204
    assert editor.patch(f"{BASE}/apps/{name}", content="values:\n  x: 1\n", headers=YAML).status_code == 200
    assert editor.post(f"{BASE}/apps/{name}/tags", json={"name": "team", "value": "web"}).status_code == 200
    assert editor.post(f"{BASE}/apps/{name}/versions/tags", json={"name": "stable", "revision": 2}).status_code == 204
    assert editor.delete(f"{BASE}/apps/{name}").status_code == 403
    assert EnvRef("apps", name) in {e.ref for e in harness.store.list_environments()}
    assert editor.get("/api/v1/tokens").status_code == 403
    assert editor.get("/api/v1/audit").status_code == 403


def test_admin_deletes_manages_tokens_and_reads_the_audit_log(clients, harness: Harness):
    admin = clients["admin"]
    name = f"d{uuid.uuid4().hex[:6]}"
    harness.service().create_environment(EnvRef("apps", name))
    assert admin.delete(f"{BASE}/apps/{name}").status_code == 204
    assert admin.get(f"{BASE}/apps/{name}").status_code == 404

    created = admin.post("/api/v1/tokens", json={"name": "ci", "role": "reader", "scopes": ["apps/*"], "expires": "1d"})
    assert created.status_code == 201
    token = created.json()["token"]
    assert created.json()["scopes"] == ["apps/*"] and created.json()["expires_at"]
    listed = admin.get("/api/v1/tokens").json()
    assert any(t["token_id"] == created.json()["token_id"] for t in listed)
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    assert harness.client(token).get(f"{BASE}/apps/plain").status_code == 200
    assert admin.delete(f"/api/v1/tokens/{created.json()['token_id']}").status_code == 204
    assert harness.client(token).get(f"{BASE}/apps/plain").status_code == 401
    assert admin.delete("/api/v1/tokens/aaaaaaaaaaaaaaaa").status_code == 404

    page = admin.get("/api/v1/audit", params={"action": "token.create", "limit": 5}).json()
    assert page["records"] and all(r["action"] == "token.create" for r in page["records"])
    first = admin.get("/api/v1/audit", params={"limit": 2}).json()
    assert len(first["records"]) == 2 and first["next_after"] == first["records"][-1]["seq"]
    second = admin.get("/api/v1/audit", params={"limit": 2, "after": first["next_after"]}).json()
    assert second["records"][0]["seq"] > first["next_after"]
    assert admin.get("/api/v1/audit", params={"since": "1h"}).status_code == 200
    assert admin.get("/api/v1/audit", params={"since": "yesterday-ish"}).status_code == 400
    verified = admin.get("/api/v1/audit/verify").json()
    assert verified["intact"] is True and verified["checked"] > 0


def test_audit_hash_finds_who_opened_a_value(clients):
    opener, admin = clients["opener"], clients["admin"]
    assert open_and_read(opener, "apps/web").status_code == 200
    found = admin.post("/api/v1/audit/hash", json={"value": SECRET}).json()["records"]
    assert any(r["action"] == "open" and r["actor"] == "opener-token" for r in found)
    assert admin.post("/api/v1/audit/hash", json={"value": "never-stored"}).json()["records"] == []


def test_opening_an_environment_that_imports_one_out_of_scope_fails(harness: Harness):
    scoped = harness.client(harness.token("apps-only", "opener", scopes=("apps/*",)))
    opened = scoped.post(f"{BASE}/apps/web/open")
    assert opened.status_code == 400
    body = opened.json()
    assert body["code"] == 400
    assert any("not found or not accessible" in d["summary"] for d in body["diagnostics"])
    assert SECRET not in opened.text
    assert open_and_read(scoped, "apps/plain").status_code == 200


def test_a_session_is_read_with_the_readers_current_rights(harness: Harness, clients):
    opener = clients["opener"]
    session = opener.post(f"{BASE}/apps/plain/open").json()["id"]
    # Another opener may read it; a reader may not; a token revoked since may not either.
    assert clients["admin"].get(f"{BASE}/apps/plain/open/{session}").status_code == 200
    assert clients["reader"].get(f"{BASE}/apps/plain/open/{session}").status_code == 403
    short_lived = harness.token("short", "opener")
    client = harness.client(short_lived)
    own = client.post(f"{BASE}/apps/plain/open").json()["id"]
    harness.service().revoke_token(parse_token(short_lived)[0])  # type: ignore[index]
    assert client.get(f"{BASE}/apps/plain/open/{own}").status_code == 401
    # A session belongs to its environment: another environment's URL does not find it.
    assert opener.get(f"{BASE}/apps/web/open/{session}").status_code == 404
    assert opener.get(f"{BASE}/apps/plain/open/0123456789abcdef").status_code == 404


def test_open_sessions_expire(harness: Harness, clients):
    opener = clients["opener"]
    response = opener.post(f"{BASE}/apps/plain/open", params={"duration": "1s"})
    session = response.json()["id"]
    stored = harness.store.get_open_session(session)
    assert stored is not None and stored.expires_at > stored.created_at
    assert opener.post(f"{BASE}/apps/plain/open", params={"duration": "soon"}).status_code == 400
    long = opener.post(f"{BASE}/apps/plain/open", params={"duration": "100h"})
    clamped = harness.store.get_open_session(long.json()["id"])
    assert clamped is not None
    lifetime = datetime.fromisoformat(clamped.expires_at) - datetime.fromisoformat(clamped.created_at)
    assert lifetime == harness.config.open_session_ttl
    time.sleep(1.1)
    assert opener.get(f"{BASE}/apps/plain/open/{session}").status_code == 404
