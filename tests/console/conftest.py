"""Fixtures for the web console's tests: a store with environments, tokens of each role, and an app
whose clock the test moves (for idle expiry)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strongroom.model import EnvRef

SECRET = f"CANARY-{uuid.uuid4().hex}"
TOKEN_VALUE = "ghp_" + "a" * 36
NEW_TOKEN_VALUE = "ghp_" + "b" * 36

BASE = f"""values:
  db:
    host: db.internal
    password:
      fn::secret: {SECRET}
"""
APP = """imports:
  - acme/base
values:
  url: postgres://app:${db.password}@${db.host}/app
  greeting: hello world
  port: 8080
"""
CI = f"""values:
  ci:
    token:
      fn::secret: {TOKEN_VALUE}
    signing:
      fn::secret: "00"
rotation:
  ci.token:
    name: CI token
    purpose: lets CI push images
    owner: ops@example.com
    usedBy: [deploy workflow]
    schedule: quarterly
    rotator: {{manual: {{}}}}
    lastRotated: 2020-01-01
    procedure:
      url: https://github.com/settings/tokens
      scopes: [write:packages]
      expiry: 90 days
      prefix: ghp_
      steps: [Generate new token (classic), Paste it here]
      revokeUrl: https://github.com/settings/tokens
  ci.signing:
    purpose: signs webhooks
    owner: sec@example.com
    usedBy: [api]
    schedule: monthly
    rotator: {{random: {{bytes: 16}}}}
    lastRotated: 2020-01-01
"""


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class World:
    """A store, its key loader, tokens by role, and a way to build apps over it."""

    home: Path
    store: Any
    load: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def service(self, actor: str = "setup") -> Any:
        from strongroom.service import Service

        return Service(self.store, load_keyring=self.load, actor=actor)

    def app(self, *, clock: Clock | None = None, environ: dict[str, str] | None = None, **settings: Any) -> Any:
        from dataclasses import replace

        from strongroom.server.app import create_app
        from strongroom.server.config import ServerConfig

        config = replace(ServerConfig(home=self.home, environ=environ or {}), **settings)
        return create_app(config, store=self.store, load_keyring=self.load, clock=clock)


def make_world(home: Path) -> World:
    from strongroom.server.testing import make_token, new_store

    store, load = new_store(home, base64.b64encode(os.urandom(32)).decode("ascii"))
    world = World(home, store, load)
    svc = world.service()
    svc.create_environment(EnvRef("acme", "base"), BASE)
    svc.create_environment(EnvRef("acme", "app"), APP)
    svc.create_environment(EnvRef("acme", "ci"), CI)
    svc.create_environment(EnvRef("other", "thing"), "values:\n  x: 1\n")
    for role in ("reader", "opener", "editor", "admin"):
        world.tokens[role] = make_token(store, load, f"{role}-person", role)
    world.tokens["scoped"] = make_token(store, load, "scoped-person", "admin", ("acme/*",))
    return world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = make_world(tmp_path / "home")
    try:
        yield made
    finally:
        made.store.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


# --------------------------------------------------------------------------- the browser (shared by the e2e modules)

CHROMIUM = os.environ.get("STRONGROOM_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("STRONGROOM_REQUIRE_CONSOLE_E2E") == "1"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if REQUIRE:
            pytest.fail(f"{reason}; STRONGROOM_REQUIRE_CONSOLE_E2E=1 requires it", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("STRONGROOM_CONSOLE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return tmp_path_factory.mktemp("console-screenshots")
