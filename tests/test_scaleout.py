"""Scale-out: two real `strongroom serve` processes sharing one PostgreSQL store.

Concurrent writers to one environment lose no update (the stale one gets 409), and the
audit chain stays unbroken under both.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from strongroom.cli.context import AppContext
from strongroom.model import EnvRef

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def cluster(postgres_url: str, tmp_path: Path):
    environ = {
        **os.environ,
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_STORE": postgres_url,
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "STRONGROOM_ACTOR": "setup",
    }
    for name in ("STRONGROOM_URL", "STRONGROOM_TOKEN", "STRONGROOM_PASSPHRASE"):
        environ.pop(name, None)
    init = subprocess.run([sys.executable, "-m", "strongroom", "init"], env=environ, capture_output=True)
    assert init.returncode == 0, init.stderr.decode()
    app = AppContext(environ)
    service = app.service()
    service.create_environment(EnvRef("team", "shared"), "values:\n  counter: 0\n")
    _record, token = service.create_token("cluster-admin", "admin")
    app.close()
    procs, urls = [], []
    for _ in range(2):
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "strongroom", "serve", "--port", str(port), "--log-level", "warning"],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, proc in zip(urls, procs, strict=True):
            _wait_ready(url, proc)
        yield urls, token, environ
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_two_servers_lose_no_update_and_keep_one_audit_chain(cluster):
    urls, token, environ = cluster
    headers = {"Authorization": f"token {token}"}
    env_path = "/api/v1/environments/team/shared"

    # Path-level writes through both servers at once: every one lands (the service re-applies
    # a write that lost the race), none is lost.
    def set_value(i: int) -> int:
        url = urls[i % 2]
        response = httpx.post(f"{url}{env_path}/set", headers=headers, json={"path": [f"k{i}"], "value": i}, timeout=30)
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(set_value, range(40)))
    assert statuses == [200] * 40
    values = httpx.get(f"{urls[0]}{env_path}/values", headers=headers, timeout=30).json()["value"]["o"]
    assert {f"k{i}" for i in range(40)} <= set(values)
    history = httpx.get(f"{urls[1]}{env_path}/history", headers=headers, timeout=30).json()
    assert [h["number"] for h in history] == list(range(41, 0, -1))

    # Whole-definition writes based on the same revision: exactly one wins, the other gets 409.
    def replace(i: int) -> int:
        body = {"definition": f"values:\n  winner: {i}\n", "expected_latest": 41}
        return httpx.put(f"{urls[i]}{env_path}/definition", headers=headers, json=body, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcome = sorted(pool.map(replace, range(2)))
    assert outcome == [200, 409]

    # The audit chain is unbroken and holds every write.
    app = AppContext({**environ, "STRONGROOM_ACTOR": "verifier"})
    try:
        service = app.service()
        count, broken = service.verify_audit()
        assert broken is None
        writes = [r for r in service.store.list_audit(environment="team/shared", action="write")]
        assert len(writes) == 41
        assert count == service.store.audit_head()[0]
    finally:
        app.close()
