"""The web console end to end: Debian's Chromium, driven headless by Playwright, against a real uvicorn server.

Skipped (with the reason) when Playwright or Chromium is missing, unless
``STRONGROOM_REQUIRE_CONSOLE_E2E=1`` (CI), which makes that a failure. Screenshots go to a
temporary directory, or to ``docs/console/`` with ``STRONGROOM_CONSOLE_SCREENSHOTS=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails) with the reason
    expect = None  # type: ignore[assignment]

from strongroom.model import EnvRef, RevisionRef

from .conftest import APP, NEW_TOKEN_VALUE, SECRET, World, make_world

pytestmark = pytest.mark.console

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
KUBE_ENV = """values:
  app:
    password:
      fn::secret: {secret}
  kubernetesSecrets:
    web-env:
      namespaces: [default]
      data:
        PASSWORD: ${{app.password}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[World, str, Any]]:
    from strongroom.server.testing import StrongroomServer
    from strongroom.testing.kube_api import KubeAPIServer

    home = tmp_path_factory.mktemp("console-e2e")
    world = make_world(home / "home")
    svc = world.service()
    svc.create_environment(EnvRef("e2e", "edit"), APP)
    svc.create_environment(EnvRef("e2e", "conflict"), APP)
    svc.create_environment(EnvRef("e2e", "rollback"), "values:\n  color: blue\n")
    svc.set_value(EnvRef("e2e", "rollback"), ("color",), "red")
    svc.create_environment(EnvRef("e2e", "kube"), KUBE_ENV.format(secret=SECRET))
    for i in range(40):
        svc.create_environment(EnvRef("shop", f"service-{i:02d}"), "values:\n  replicas: 2\n")
    with KubeAPIServer() as kube:
        kubeconfig = str(kube.write_kubeconfig(home / "kubeconfig"))
        app = world.app(environ={"STRONGROOM_KUBECONFIG": kubeconfig})
        with StrongroomServer(app) as server:
            yield world, server.url, kube
    world.store.close()


def page_for(browser: Any, site: tuple[World, str, Any], role: str, viewport: dict[str, int] = DESKTOP) -> Any:
    world, url, _kube = site
    context = browser.new_context(viewport=viewport, base_url=url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/")
    assert "/signin" in page.url
    page.get_by_label("Strongroom token").fill(world.tokens[role])
    page.keyboard.press("Enter")
    page.wait_for_url("**/environments")
    return page


def shoot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=False)


def test_sign_in_browse_and_phone_layout(browser, site, shots):
    page = page_for(browser, site, "editor")
    expect(page.get_by_role("heading", name="Environments")).to_be_visible()
    expect(page.locator("text=editor-person")).to_be_visible()
    shoot(page, shots, "environments-desktop")
    page.get_by_label("Search").fill("app")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="acme/app").click()
    expect(page.locator("td.where >> text=acme/app:4:8")).to_be_visible()
    assert SECRET not in page.content()
    shoot(page, shots, "environment-desktop")
    page.context.close()
    phone = page_for(browser, site, "editor", PHONE)
    shoot(phone, shots, "environments-phone")
    phone.goto("/environments/acme/app")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, "the page scrolls sideways on a phone"
    shoot(phone, shots, "environment-phone")
    phone.context.close()


def test_keyboard_reaches_the_sign_in_form(browser, site):
    _world, url, _kube = site
    context = browser.new_context(viewport=DESKTOP, base_url=url)
    page = context.new_page()
    page.goto("/signin")
    assert page.evaluate("document.activeElement.id") == "token"  # autofocus
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.className") == "brand"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    context.close()


def test_edit_with_an_error_then_a_fix(browser, site, shots):
    world = site[0]
    page = page_for(browser, site, "editor")
    page.goto("/environments/e2e/edit/edit")
    editor = page.get_by_label("Definition (YAML)", exact=False)
    editor.fill("values:\n  greeting: hi\n  url: ${nope.host}\n")
    page.get_by_role("button", name="Save").click()
    alert = page.locator(".diagnostics-box")
    expect(alert).to_be_visible()
    assert "1 error" in alert.inner_text() and "nothing was saved" in alert.inner_text()
    assert "line 3, column 10" in alert.inner_text()
    shoot(page, shots, "edit-error-desktop")
    page.get_by_role("button", name="line 3, column 10").click()
    assert page.evaluate("document.activeElement.id") == "definition"
    assert world.store.get_environment(EnvRef("e2e", "edit")).latest_revision == 1
    editor.fill("values:\n  greeting: hi\n  url: fixed\n")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("text=saved revision 2")).to_be_visible()
    assert world.service().read(RevisionRef(EnvRef("e2e", "edit")), ("url",)) == "fixed"
    page.context.close()


def test_a_conflict_keeps_the_text_and_shows_the_diff(browser, site, shots):
    world = site[0]
    page = page_for(browser, site, "editor")
    page.goto("/environments/e2e/conflict/edit")
    editor = page.locator("#definition")
    editor.fill(APP.replace("hello world", "browser greeting"))
    world.service("colleague").set_value(EnvRef("e2e", "conflict"), ("port",), 9999)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Someone saved revision 2 meanwhile")).to_be_visible()
    assert "browser greeting" in editor.input_value()
    assert page.locator(".conflict .diff >> text=port: 9999").count() == 1
    shoot(page, shots, "edit-conflict-desktop")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("text=saved revision 3")).to_be_visible()
    page.context.close()


def test_history_diff_and_rollback(browser, site, shots):
    world = site[0]
    page = page_for(browser, site, "editor")
    page.goto("/environments/e2e/rollback/history")
    page.get_by_role("link", name="Diff with latest").click()
    expect(page.locator("table.sbs >> text=color: blue")).to_be_visible()
    expect(page.locator("table.sbs >> text=color: red")).to_be_visible()
    shoot(page, shots, "diff-desktop")
    page.goto("/environments/e2e/rollback/history")
    page.get_by_role("button", name="Roll back to 1").click()
    expect(page.locator("text=rolled back to revision 1: revision 3 written")).to_be_visible()
    assert world.service().read(RevisionRef(EnvRef("e2e", "rollback")), ("color",)) == "blue"
    page.context.close()


def test_reveal_in_place_and_find_it_in_the_audit_log(browser, site, shots):
    page = page_for(browser, site, "opener")
    page.goto("/environments/acme/base")
    page.get_by_role("button", name="Reveal db.password").click()
    shown = page.locator(".revealed code")
    expect(shown).to_have_text(SECRET)
    assert SECRET not in page.url
    shoot(page, shots, "reveal-desktop")
    page.get_by_role("button", name="Hide").click()
    assert SECRET not in page.locator("table.values").inner_text()
    page.context.close()
    admin = page_for(browser, site, "admin")
    admin.goto("/audit")
    admin.get_by_label("Environment").fill("acme/base")
    admin.get_by_label("Action").fill("decrypt")
    admin.get_by_role("button", name="Filter").click()
    row = admin.locator("table.audit tbody tr").last
    expect(row).to_contain_text("opener-person")
    assert "opener-person" in row.inner_text() and "decrypt" in row.inner_text()
    assert "hmac:values.db.password" in row.inner_text()
    shoot(admin, shots, "audit-desktop")
    admin.context.close()


def test_manual_rotation(browser, site, shots):
    world = site[0]
    page = page_for(browser, site, "editor")
    page.get_by_role("link", name="Rotation").click()
    expect(page.locator("text=lets CI push images")).to_be_visible()
    shoot(page, shots, "rotation-desktop")
    page.get_by_role("button", name="Rotate CI token in acme/ci now").click()
    expect(page.get_by_role("link", name="https://github.com/settings/tokens")).to_be_visible()
    expect(page.locator("text=Paste it here")).to_be_visible()
    shoot(page, shots, "rotate-manual-desktop")
    page.get_by_label("New value").fill(NEW_TOKEN_VALUE)
    page.get_by_role("button", name="Rotate now").click()
    expect(page.locator("h1 >> text=done")).to_be_visible()
    expect(page.locator("text=Now revoke the old credential at https://github.com/settings/tokens")).to_be_visible()
    assert NEW_TOKEN_VALUE not in page.content()
    shoot(page, shots, "rotate-done-desktop")
    value = world.service().read(RevisionRef(EnvRef("acme", "ci")), ("ci", "token"), show_secrets=True)
    assert value.reveal() == NEW_TOKEN_VALUE
    page.context.close()


def test_drift_indicator(browser, site, shots):
    _world, _url, kube = site
    page = page_for(browser, site, "editor")
    page.goto("/environments/e2e/kube/tiers")
    badge = page.locator("#tier-kubernetes [data-tier-state]")
    expect(badge).to_have_text("missing")
    page.locator("#tier-kubernetes").get_by_role("button", name="Sync").click()
    expect(page.locator("#tier-kubernetes [data-tier-state]")).to_have_text("in sync")
    secret = kube.api.get_object("secrets", "web-env", "default")
    secret["data"]["PASSWORD"] = "ZWRpdGVkIGJ5IGhhbmQ="
    kube.api.delete_object("secrets", "web-env", "default")
    kube.api.create_object("secrets", secret, "default")
    page.goto("/environments/e2e/kube/tiers")
    expect(page.locator("#tier-kubernetes [data-tier-state]")).to_have_text("drifted")
    expect(page.locator("#tier-kubernetes >> text=edited")).to_be_visible()
    assert page.locator("#tier-github [data-tier-state]").inner_text() in ("not declared", "not configured")
    shoot(page, shots, "tiers-drift-desktop")
    page.context.close()
    phone = page_for(browser, site, "editor", PHONE)
    phone.goto("/environments/e2e/kube/tiers")
    shoot(phone, shots, "tiers-drift-phone")
    phone.context.close()
