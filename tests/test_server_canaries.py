"""Canaries: a secret set through the API shows up only where plaintext was asked for with the right role.

Not in any other response (bodies or headers), not in an error message, and not in the
logs (ours and uvicorn's access log, captured at DEBUG).
"""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from strongroom.server.testing import running_server

BASE = "/api/esc/environments/default"
YAML = {"Content-Type": "application/x-yaml"}


def _texts(response: httpx.Response) -> str:
    return response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())


def test_a_secret_appears_only_in_plaintext_routes_for_openers(tmp_path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    canary = f"CANARY-{uuid.uuid4().hex}"
    with running_server(tmp_path / "home", access_log=True, auth_failure_limit=10_000) as h:
        tokens = {role: h.token(f"{role}-canary", role) for role in ("reader", "opener", "editor", "admin")}
        c = {role: h.client(token) for role, token in tokens.items()}
        env = f"{BASE}/canary/app"
        definition = (
            "values:\n"
            f"  db:\n    password:\n      fn::secret: {canary}\n"
            "  environmentVariables:\n    DB_PASSWORD: ${db.password}\n"
            "  pulumiConfig:\n    app:dsn: postgres://u:${db.password}@db/x\n"
        )
        masked: list[tuple[str, httpx.Response]] = []
        revealed: list[tuple[str, httpx.Response]] = []

        masked.append(("create", c["editor"].post(BASE, json={"project": "canary", "name": "app"})))
        masked.append(("update", c["editor"].patch(env, content=definition, headers=YAML)))
        masked.append(("update again", c["editor"].patch(env, content=definition + "  n: 1\n", headers=YAML)))
        masked.append(("stale update", c["editor"].patch(env, content=definition, headers={**YAML, "If-Match": '"1"'})))
        masked.append(("broken update", c["editor"].patch(env, content=definition + "  x: ${nope}\n", headers=YAML)))
        masked.append(("yaml error", c["editor"].patch(env, content=f'values:\n  a: "{canary}\n', headers=YAML)))
        masked.append(("list", c["reader"].get(BASE)))
        for role in ("reader", "opener", "admin"):
            masked.append((f"get {role}", c[role].get(env)))
        masked.append(("head", c["reader"].head(env)))
        masked.append(("at version", c["reader"].get(f"{env}/versions/2")))
        masked.append(("revisions", c["reader"].get(f"{env}/versions")))
        masked.append(("rev tags", c["reader"].get(f"{env}/versions/tags")))
        masked.append(("env tags", c["reader"].get(f"{env}/tags")))
        check = "imports:\n  - canary/app\nvalues:\n  copy: ${db.password}\n"
        masked.append(("check", c["reader"].post(f"{BASE}/yaml/check", content=check, headers=YAML)))
        masked.append(("check with secret", c["reader"].post(f"{BASE}/yaml/check", content=definition, headers=YAML)))
        masked.append(("reader decrypt", c["reader"].get(f"{env}/decrypt")))
        masked.append(("reader open", c["reader"].post(f"{env}/open")))
        masked.append(("audit", c["admin"].get("/api/v1/audit", params={"limit": 1000})))
        masked.append(("tokens", c["admin"].get("/api/v1/tokens")))
        masked.append(("clone", c["editor"].post(f"{env}/clone", json={"project": "canary", "name": "copy"})))
        masked.append(("bad token", h.client(f"sr_{canary}").get(BASE)))

        revealed.append(("opener decrypt", c["opener"].get(f"{env}/decrypt")))
        opened = c["opener"].post(f"{env}/open")
        masked.append(("open", opened))
        session = opened.json()["id"]
        revealed.append(("read session", c["opener"].get(f"{env}/open/{session}")))
        revealed.append(("read property", c["opener"].get(f"{env}/open//{session}", params={"property": "db"})))
        masked.append(("reader reads session", c["reader"].get(f"{env}/open/{session}")))
        revealed.append(("read the clone", c["admin"].get(f"{BASE}/canary/copy/decrypt")))
        masked.append(("audit hash", c["admin"].post("/api/v1/audit/hash", json={"value": canary})))
        masked.append(("audit after", c["admin"].get("/api/v1/audit", params={"limit": 1000})))

        for name, response in masked:
            assert response.status_code < 500, (name, response.text)
            assert canary not in _texts(response), name
        for name, response in revealed:
            assert response.status_code == 200, (name, response.text)
            assert canary in response.text, name

        assert masked[6][1].status_code == 200
        assert next(r for n, r in masked if n == "audit hash").json()["records"], "the opens were recorded"

    messages = [record.getMessage() for record in caplog.records]
    logged = caplog.text + "\n".join(messages)
    assert any(r.name == "uvicorn.access" for r in caplog.records), "the access log was captured"
    assert any("authentication failed" in m for m in messages)
    assert canary not in logged
    for token in tokens.values():
        assert token not in logged
