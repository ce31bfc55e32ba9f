"""ServerConfig from the environment, and ``strongroom serve`` (lazy imports, uvicorn factory, SIGTERM)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from strongroom.errors import InvalidInputError
from strongroom.server.config import DEFAULT_MAX_BODY_BYTES, ServerConfig
from strongroom.server.esc_open import parse_go_duration
from strongroom.server.testing import new_store


def test_defaults(tmp_path):
    config = ServerConfig.from_environ({"STRONGROOM_HOME": str(tmp_path)})
    assert config.home == tmp_path
    assert config.store_url is None
    assert config.metrics_token is None
    assert config.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 2 * 1024 * 1024
    assert config.open_session_ttl == timedelta(hours=2)
    assert (config.auth_failure_limit, config.auth_failure_window) == (10, timedelta(minutes=1))
    assert config.organization == "default"


def test_every_setting(tmp_path):
    token_file = tmp_path / "metrics-token"
    token_file.write_text("from-a-file\n")
    config = ServerConfig.from_environ(
        {
            "STRONGROOM_HOME": str(tmp_path),
            "STRONGROOM_STORE": "postgresql://sr@db/sr",
            "STRONGROOM_METRICS_TOKEN_FILE": str(token_file),
            "STRONGROOM_MAX_BODY_BYTES": "4096",
            "STRONGROOM_OPEN_SESSION_TTL": "1h30m",
            "STRONGROOM_AUTH_FAILURE_LIMIT": "5",
            "STRONGROOM_AUTH_FAILURE_WINDOW": "10m",
            "STRONGROOM_ORGANIZATION": "acme-corp",
            "STRONGROOM_MASTER_KEY": "not-shown",
        }
    )
    assert config.store_url == "postgresql://sr@db/sr"
    assert config.metrics_token == "from-a-file"
    assert config.max_body_bytes == 4096
    assert config.open_session_ttl == timedelta(minutes=90)
    assert (config.auth_failure_limit, config.auth_failure_window) == (5, timedelta(minutes=10))
    assert config.organization == "acme-corp"
    shown = repr(config)
    assert "not-shown" not in shown and "from-a-file" not in shown
    assert config.context_environ()["STRONGROOM_STORE"] == "postgresql://sr@db/sr"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRONGROOM_MAX_BODY_BYTES", "lots"),
        ("STRONGROOM_MAX_BODY_BYTES", "10"),
        ("STRONGROOM_OPEN_SESSION_TTL", "2 fortnights"),
        ("STRONGROOM_OPEN_SESSION_TTL", "0s"),
        ("STRONGROOM_AUTH_FAILURE_LIMIT", "-3"),
        ("STRONGROOM_AUTH_FAILURE_WINDOW", "99999999999999w"),
        ("STRONGROOM_ORGANIZATION", "ab"),
        ("STRONGROOM_ORGANIZATION", "has space"),
        ("STRONGROOM_METRICS_TOKEN_FILE", "/nonexistent/token"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path, name, value):
    with pytest.raises(InvalidInputError) as caught:
        ServerConfig.from_environ({"STRONGROOM_HOME": str(tmp_path), name: value})
    assert name.removesuffix("_FILE") in str(caught.value)


def test_metrics_token_and_its_file_are_exclusive(tmp_path):
    (tmp_path / "t").write_text("x")
    with pytest.raises(InvalidInputError, match="not both"):
        ServerConfig.from_environ(
            {"STRONGROOM_METRICS_TOKEN": "a", "STRONGROOM_METRICS_TOKEN_FILE": str(tmp_path / "t")}
        )


@pytest.mark.parametrize(
    ("text", "seconds"), [("2h", 7200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("1500ms", 1.5)]
)
def test_go_durations(text, seconds):
    assert parse_go_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "1d", "-1h", "500ms", "1h 30m"])
def test_bad_go_durations(text):
    with pytest.raises(InvalidInputError):
        parse_go_duration(text)


def _run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def test_serve_and_cli_help_import_neither_fastapi_nor_uvicorn():
    out = _run_python(
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from strongroom.cli.app import cli\n"
        "for args in (['--help'], ['serve', '--help']):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'prometheus_client') if m in sys.modules))\n"
    )
    assert out.strip() == "[]"


def test_serve_runs_the_factory_under_uvicorn(monkeypatch, tmp_path):
    import uvicorn

    from strongroom.cli.serve import APP_FACTORY, serve

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path))
    result = CliRunner().invoke(serve, ["--host", "0.0.0.0", "--port", "9911", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert "http://0.0.0.0:9911" in result.output
    assert seen["app"] == APP_FACTORY == "strongroom.server.app:app_from_environ"
    assert seen["factory"] is True and seen["workers"] == 3 and seen["port"] == 9911
    assert seen["proxy_headers"] is False


def test_serve_refuses_a_bad_configuration(monkeypatch, tmp_path):
    from strongroom.cli.serve import serve

    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path))
    monkeypatch.setenv("STRONGROOM_MAX_BODY_BYTES", "many")
    result = CliRunner().invoke(serve, [])
    assert isinstance(result.exception, InvalidInputError)


def test_app_from_environ(monkeypatch, tmp_path):
    from strongroom.server.app import app_from_environ

    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path))
    monkeypatch.setenv("STRONGROOM_ORGANIZATION", "acme")
    app = app_from_environ()
    assert app.state.strongroom.config.organization == "acme"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_in_a_real_process_stops_cleanly_on_sigterm(tmp_path):
    home = tmp_path / "home"
    key = base64.b64encode(os.urandom(32)).decode()
    store, _load = new_store(home, key)
    store.close()
    port = _free_port()
    env = {**os.environ, "STRONGROOM_HOME": str(home), "STRONGROOM_MASTER_KEY": key}
    env.pop("STRONGROOM_STORE", None)
    code = "from strongroom.cli.serve import serve; serve()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", str(port), "--log-level", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status says what stopped it.
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert f"http://127.0.0.1:{port}" in stdout
    assert key not in stdout + stderr
    assert Path(home / "store.db").exists()
