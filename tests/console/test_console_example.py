"""The README's run command serves the aphiria.com example: the console shows it, masked, with its rotation catalog.

Drives Debian's Chromium (as test_console_e2e.py) over the three example environments loaded as
``scripts/demo.sh`` loads them. The screenshots are the README's and docs/console/console.md's
(written to docs/console/ with ``STRONGROOM_CONSOLE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongroom.model import EnvRef

from .conftest import make_world
from .test_console_e2e import DESKTOP, PHONE

pytestmark = pytest.mark.console

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aphiria" / "environments"
ENVIRONMENTS = ("base", "Preview", "Production")


def example_secrets() -> list[str]:
    """The example's placeholder secrets (``...EXAMPLE...``): none may show on a page. (Some example
    secrets, like the SMTP user, are also written as plain values elsewhere, so they are not canaries.)"""
    found = []
    for name in ENVIRONMENTS:
        text = (EXAMPLE / f"{name}.yaml").read_text(encoding="utf-8")
        found += re.findall(r"fn::secret:\s*(\S+)", text)
    return [s for s in found if "EXAMPLE" in s]


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[str, str]]:
    from strongroom.server.testing import StrongroomServer

    world = make_world(tmp_path_factory.mktemp("console-example") / "home")
    svc = world.service()
    for name in ENVIRONMENTS:
        svc.create_environment(EnvRef("aphiria.com", name), (EXAMPLE / f"{name}.yaml").read_text(encoding="utf-8"))
    with StrongroomServer(world.app()) as server:
        yield server.url, world.tokens["admin"]
    world.store.close()


def signed_in(browser: Any, url: str, token: str, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport, base_url=url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Strongroom token").fill(token)
    page.keyboard.press("Enter")
    page.wait_for_url("**/environments")
    return page


def test_the_example_in_the_console(browser, example_site, shots) -> None:
    url, token = example_site
    secrets = example_secrets()
    assert len(secrets) >= 10
    page = signed_in(browser, url, token, DESKTOP)
    page.get_by_label("Search").fill("aphiria")
    page.keyboard.press("Enter")
    page.wait_for_url("**/environments?*q=aphiria*")
    for name in ENVIRONMENTS:
        assert page.get_by_role("link", name=f"aphiria.com/{name}", exact=True).count() == 1
    assert page.get_by_role("link", name="acme/app", exact=True).count() == 0  # filtered out
    page.screenshot(path=str(shots / "aphiria-environments.png"))

    page.get_by_role("link", name="aphiria.com/Production", exact=True).click()
    page.wait_for_url("**/environments/aphiria.com/Production")
    body = page.content()
    assert 'pulumiConfig["postgresql:password"]' in body or "postgresql:password" in body
    assert "aphiria.com/base" in body  # the import, and where inherited values are defined
    page.screenshot(path=str(shots / "aphiria-production.png"))
    seen = [body]

    page.goto("/rotation?all=1")
    body = page.content()
    for text in ("Bearer token for authenticating Prometheus", "random", "postgresql", "manual"):
        assert text in body
    page.screenshot(path=str(shots / "aphiria-rotation.png"), full_page=True)
    seen.append(body)

    phone = signed_in(browser, url, token, PHONE)
    phone.goto("/environments/aphiria.com/Preview")
    # Long paths scroll inside their table; the page itself never scrolls sideways.
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    phone.screenshot(path=str(shots / "aphiria-preview-phone.png"))
    seen.append(phone.content())

    for page_text in seen:
        for secret in secrets:
            assert secret not in page_text
