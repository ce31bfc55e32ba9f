"""The web console through Starlette's TestClient: every flow, and the security rules around it."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from strongroom.model import EnvRef, RevisionRef

from .conftest import APP, NEW_TOKEN_VALUE, SECRET, Clock, World, csrf_of

COOKIE = "strongroom_console"


def signed_in(world: World, role: str = "admin", *, clock: Clock | None = None, **app_settings) -> TestClient:
    client = TestClient(world.app(clock=clock, **app_settings), base_url="http://testserver")
    sign_in(client, world.tokens[role])
    return client


def sign_in(client: TestClient, token: str) -> None:
    page = client.get("/signin")
    response = client.post(
        "/signin", data={"csrf": csrf_of(page.text), "token": token, "next": "/environments"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/environments"


def csrf(client: TestClient, url: str = "/environments") -> str:
    return csrf_of(client.get(url).text)


def audit(world: World, action: str, env: str | None = None) -> list:
    return [r for r in world.store.list_audit(action=action) if env is None or r.event.environment == env]


# --------------------------------------------------------------------------- sign-in, cookie, CSP


def test_signed_out_pages_go_to_sign_in(world):
    client = TestClient(world.app(), base_url="http://testserver")
    home = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/environments"
    assert client.get("/", headers={"Accept": "*/*"}).json()["code"] == 404  # API clients: as before
    response = client.get("/environments/acme/app?rev=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fenvironments%2Facme%2Fapp%3Frev%3D1"
    assert client.post("/environments/acme/app/reveal", data={"path": "url"}, follow_redirects=False).status_code == 303


def test_sign_in_sets_a_sealed_strict_httponly_cookie(world):
    client = TestClient(world.app(), base_url="http://testserver")
    page = client.get("/signin")
    response = client.post(
        "/signin", data={"csrf": csrf_of(page.text), "token": world.tokens["editor"]}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test below
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    token_secret = world.tokens["editor"].split("_", 2)[2]
    assert token_secret not in value and "sr_" not in value
    assert [r.event.actor for r in audit(world, "console.signin")] == ["editor-person"]
    page = client.get("/environments")
    assert "editor-person" in page.text and "editor" in page.text


def test_cookie_is_secure_over_tls(world):
    client = TestClient(world.app(), base_url="https://testserver")
    page = client.get("/signin")
    assert "Secure" in page.headers["set-cookie"]
    response = client.post(
        "/signin", data={"csrf": csrf_of(page.text), "token": world.tokens["reader"]}, follow_redirects=False
    )
    assert "Secure" in response.headers["set-cookie"]


def test_every_console_page_has_a_strict_csp_and_no_inline_code(world):
    client = signed_in(world)
    for url in (
        "/signin",
        "/environments",
        "/environments/acme/app",
        "/environments/acme/app/edit",
        "/environments/acme/app/history",
        "/environments/acme/app/diff?a=1&b=1",
        "/rotation",
        "/rotation/history",
        "/tiers",
        "/environments/acme/app/tiers",
        "/audit",
        "/audit/verify",
    ):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "'unsafe-inline'" not in csp
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert (
            "<script>" not in response.text and "style=" not in response.text and " on" + "click=" not in response.text
        )
        assert SECRET not in response.text


def test_a_wrong_token_is_refused_audited_and_rate_limited(world):
    client = TestClient(world.app(auth_failure_limit=3), base_url="http://testserver")
    for _ in range(3):
        page = client.get("/signin")
        response = client.post("/signin", data={"csrf": csrf_of(page.text), "token": "sr_nope"})
        assert response.status_code == 401
        assert "invalid, expired or revoked" in response.text
    failures = audit(world, "auth.failed")
    assert len(failures) == 3 and all(dict(r.event.details)["route"] == "/signin" for r in failures)
    page = client.get("/signin")
    response = client.post("/signin", data={"csrf": csrf_of(page.text), "token": world.tokens["admin"]})
    assert response.status_code == 429 and "Retry-After" in response.headers
    assert "Traceback" not in response.text


def test_sign_in_needs_the_form_csrf_token(world):
    client = TestClient(world.app(), base_url="http://testserver")
    client.get("/signin")
    response = client.post("/signin", data={"csrf": "forged", "token": world.tokens["admin"]}, follow_redirects=False)
    assert response.status_code == 403
    assert client.get("/environments", follow_redirects=False).status_code == 303


def test_next_is_only_ever_a_local_path(world):
    client = TestClient(world.app(), base_url="http://testserver")
    page = client.get("/signin")
    response = client.post(
        "/signin",
        data={"csrf": csrf_of(page.text), "token": world.tokens["admin"], "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/environments"


def test_idle_sessions_expire_and_use_keeps_them_alive(world):
    clock = Clock()
    client = signed_in(world, clock=clock)
    clock.advance(timedelta(minutes=29))
    assert client.get("/environments", follow_redirects=False).status_code == 200
    clock.advance(timedelta(minutes=29))  # 58 minutes after sign-in, 29 after the last request
    assert client.get("/environments", follow_redirects=False).status_code == 200
    clock.advance(timedelta(minutes=31))
    response = client.get("/environments", follow_redirects=False)
    assert response.status_code == 303 and "expired=1" in response.headers["location"]
    assert "Max-Age=0" in response.headers["set-cookie"] or "expires=" in response.headers["set-cookie"].lower()
    assert "session ended" in client.get(response.headers["location"]).text


def test_idle_timeout_is_configurable(world):
    clock = Clock()
    client = signed_in(world, clock=clock, environ={"STRONGROOM_CONSOLE_IDLE_TIMEOUT": "5m"})
    clock.advance(timedelta(minutes=6))
    assert client.get("/environments", follow_redirects=False).status_code == 303


def test_a_revoked_token_ends_the_session_at_once(world):
    client = signed_in(world, "editor")
    token_id = world.tokens["editor"].split("_")[1]
    world.service().revoke_token(token_id)
    response = client.get("/environments", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/signin")


def test_sign_out_clears_the_cookie(world):
    client = signed_in(world)
    response = client.post("/signout", data={"csrf": csrf(client)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    assert f'{COOKIE}=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    assert client.get("/environments", follow_redirects=False).status_code == 303


def test_a_tampered_cookie_is_no_session(world):
    client = signed_in(world)
    value = client.cookies[COOKIE]
    tampered = value[:20] + ("A" if value[20] != "A" else "B") + value[21:]
    client.cookies.clear()
    client.cookies.set(COOKIE, tampered)
    assert client.get("/environments", follow_redirects=False).status_code == 303


# --------------------------------------------------------------------------- CSRF


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/environments/acme/app/reveal", {"path": "url"}),
        ("/environments/acme/app/edit", {"base": "2", "definition": "values: {a: 1}\n", "action": "save"}),
        ("/environments/acme/app/rollback", {"rev": "1"}),
        ("/environments/acme/app/mark-secret", {"path": "greeting"}),
        ("/environments/acme/app/tags", {"tag": "x", "rev": "1"}),
        ("/rotation/run", {"env": "acme/ci", "path": "ci.signing"}),
        ("/signout", {}),
    ],
)
def test_every_post_needs_the_session_csrf_token(world, url, data):
    client = signed_in(world)
    before = world.store.get_environment(EnvRef("acme", "app")).latest_revision
    for token in (None, "forged"):
        body = dict(data) if token is None else {**data, "csrf": token}
        response = client.post(url, data=body, follow_redirects=False)
        assert response.status_code == 403, response.text
        assert "did not come from this console" in response.text
    assert world.store.get_environment(EnvRef("acme", "app")).latest_revision == before
    assert not audit(world, "decrypt")


def test_a_post_from_another_origin_is_refused(world):
    client = signed_in(world)
    response = client.post(
        "/environments/acme/app/reveal",
        data={"csrf": csrf(client), "path": "url"},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert not audit(world, "decrypt")


# --------------------------------------------------------------------------- environments


def test_list_searches_and_filters_by_project(world):
    client = signed_in(world, "reader")
    page = client.get("/environments").text
    assert "4 environments" in page and "acme/<strong>app</strong>" in page
    page = client.get("/environments", params={"q": "AP"}).text
    assert "1 environment" in page and "acme/<strong>app</strong>" in page
    page = client.get("/environments", params={"project": "other"}).text
    assert "1 environment" in page and "other/<strong>thing</strong>" in page and "acme/" not in page.split("<table")[1]


def test_list_pages_through_many_environments(world):
    svc = world.service()
    for i in range(230):
        svc.create_environment(EnvRef("bulk", f"env-{i:04d}"), "values: {}\n")
    client = signed_in(world, "reader")
    first = client.get("/environments", params={"project": "bulk"}).text
    assert "230 environments; showing 1\u2013100" in first
    after = re.search(r'after=([^"&]+)"', first).group(1)
    second = client.get(f"/environments?project=bulk&after={after}").text
    assert "showing 101\u2013200" in second and "env-0100" in second and "env-0099" not in second


def test_environment_page_masks_secrets_and_says_where_values_are_defined(world):
    client = signed_in(world, "opener")
    page = client.get("/environments/acme/app").text
    assert SECRET not in page
    assert "acme/app:4:8" in page  # url: defined here
    assert "acme/base:3:11" in page or "acme/base:3" in page  # db.host comes from the import
    assert 'href="/environments/acme/base"' in page  # the import links to its environment
    assert "[secret]" in page and "hello world" in page
    base = client.get("/environments/acme/base").text
    assert "ciphertext: [secret]" in base and SECRET not in base
    assert 'aria-label="Reveal db.password"' in base


def test_reveal_is_a_post_for_openers_audited_and_never_cached(world):
    client = signed_in(world, "opener")
    token = csrf(client, "/environments/acme/base")
    response = client.post(
        "/environments/acme/base/reveal",
        data={"csrf": token, "path": "db.password", "rev": "1"},
        headers={"X-Console-Fragment": "1"},
    )
    assert response.status_code == 200
    assert SECRET in response.text and "<html" not in response.text
    assert response.headers["cache-control"] == "no-store"
    events = audit(world, "decrypt", "acme/base")
    assert len(events) == 1 and events[0].event.actor == "opener-person"
    details = dict(events[0].event.details)
    assert details["path"] == "values.db.password" and "hmac:values.db.password" in details
    assert SECRET not in str(events[0].event)
    full = client.post("/environments/acme/base/reveal", data={"csrf": token, "path": "db.password"})
    assert SECRET in full.text and "<html" in full.text
    assert client.get("/environments/acme/base/reveal").status_code == 405


def test_a_reader_can_neither_reveal_nor_see_the_button(world):
    client = signed_in(world, "reader")
    page = client.get("/environments/acme/base").text
    assert "Reveal" not in page
    response = client.post("/environments/acme/base/reveal", data={"csrf": csrf_of(page), "path": "db.password"})
    assert response.status_code == 403 and SECRET not in response.text
    assert "may not open" in response.text and "Traceback" not in response.text
    assert audit(world, "denied.open", "acme/base")
    assert not audit(world, "decrypt")


def test_forbidden_never_tells_whether_an_environment_exists(world):
    client = signed_in(world, "scoped")
    for url in ("/environments/other/thing", "/environments/other/nothing-here"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "may not read environment other/" in response.text
    missing = client.get("/environments/acme/nothing-here")
    assert missing.status_code == 404 and "Not found" in missing.text
    page = client.get("/environments").text
    assert "other/" not in page.split("<table")[1]


def test_a_bad_revision_is_one_clear_message(world):
    client = signed_in(world)
    response = client.get("/environments/acme/app?rev=99")
    assert response.status_code == 404 and "Traceback" not in response.text
    response = client.get("/environments/acme/app?rev=0")
    assert response.status_code == 400 and "numbered from 1" in response.text


# --------------------------------------------------------------------------- editing


def test_edit_shows_diagnostics_and_saves_only_a_valid_definition(world):
    client = signed_in(world, "editor")
    page = client.get("/environments/acme/app/edit").text
    assert 'name="base" value="1"' in page and "postgres://app:${db.password}" in page
    bad = "values:\n  a: ${nope}\n"
    response = client.post(
        "/environments/acme/app/edit", data={"csrf": csrf_of(page), "base": "1", "definition": bad, "action": "save"}
    )
    assert response.status_code == 400
    assert 'data-line="2" data-column="8"' in response.text and "unknown property" in response.text
    assert "nothing was saved" in response.text and "${nope}" in response.text  # the text stays
    assert world.store.get_environment(EnvRef("acme", "app")).latest_revision == 1
    check = client.post(
        "/environments/acme/app/edit",
        data={"csrf": csrf_of(page), "base": "1", "definition": "values:\n  a: [1\n", "action": "check"},
    )
    assert "line 3" in check.text or "line 2" in check.text
    good = APP + "  extra: 1\n  newsecret:\n    fn::secret: typed-in-plaintext\n"
    response = client.post(
        "/environments/acme/app/edit",
        data={"csrf": csrf_of(page), "base": "1", "definition": good, "action": "save"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and "saved%20revision%202" in response.headers["location"]
    stored = world.store.get_revision(EnvRef("acme", "app")).definition
    assert "typed-in-plaintext" not in stored and "ciphertext" in stored


def test_an_edit_based_on_an_old_revision_shows_the_conflict_and_keeps_the_text(world):
    client = signed_in(world, "editor")
    page = client.get("/environments/acme/app/edit").text
    world.service("someone-else").set_value(EnvRef("acme", "app"), ("port",), 9090)
    mine = APP.replace("hello world", "my greeting")
    response = client.post(
        "/environments/acme/app/edit", data={"csrf": csrf_of(page), "base": "1", "definition": mine, "action": "save"}
    )
    assert response.status_code == 409
    assert "Someone saved revision 2 meanwhile" in response.text and "someone-else" in response.text
    assert "my greeting" in response.text.split("<textarea")[1]
    assert "-  port: 9090" in response.text and "+  port: 8080" in response.text
    assert 'name="base" value="2"' in response.text
    assert world.store.get_environment(EnvRef("acme", "app")).latest_revision == 2
    again = client.post(
        "/environments/acme/app/edit",
        data={"csrf": csrf_of(page), "base": "2", "definition": mine, "action": "save"},
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert "my greeting" in world.store.get_revision(EnvRef("acme", "app")).definition


def test_a_reader_cannot_edit_or_save(world):
    client = signed_in(world, "reader")
    assert client.get("/environments/acme/app/edit").status_code == 403
    page = client.get("/environments/acme/app").text
    assert "/edit" not in page
    response = client.post(
        "/environments/acme/app/edit",
        data={"csrf": csrf_of(page), "base": "1", "definition": "values: {}\n", "action": "save"},
    )
    assert response.status_code == 403 and "may not write" in response.text
    assert world.store.get_environment(EnvRef("acme", "app")).latest_revision == 1


def test_mark_as_secret_encrypts_a_plain_string(world):
    client = signed_in(world, "editor")
    page = client.get("/environments/acme/app").text
    assert 'aria-label="Mark greeting as secret"' in page
    assert 'aria-label="Mark db.host as secret"' not in page  # imported: not this environment's to change
    response = client.post(
        "/environments/acme/app/mark-secret", data={"csrf": csrf_of(page), "path": "greeting"}, follow_redirects=False
    )
    assert response.status_code == 303
    value = world.service().read(RevisionRef(EnvRef("acme", "app")), ("greeting",), show_secrets=True)
    assert value.reveal() == "hello world"
    assert "hello world" not in world.store.get_revision(EnvRef("acme", "app")).definition
    refused = client.post("/environments/acme/app/mark-secret", data={"csrf": csrf_of(page), "path": "url"})
    assert refused.status_code == 400 and "plain string" in refused.text


# --------------------------------------------------------------------------- history


def test_history_diff_rollback_and_tags(world):
    svc = world.service("someone")
    svc.set_value(EnvRef("acme", "base"), ("db", "host"), "db2.internal")
    svc.set_value(EnvRef("acme", "base"), ("db", "password"), "rotated-" + SECRET, secret=True)
    client = signed_in(world, "editor")
    page = client.get("/environments/acme/base/history").text
    assert "someone" in page and "Roll back to 1" in page
    diff = client.get("/environments/acme/base/diff", params={"a": 1, "b": 3}).text
    assert "db.internal" in diff and "db2.internal" in diff
    assert SECRET not in diff and "[secret]" in diff and "changed" in diff
    assert 'class="replace"' in diff
    token = csrf_of(page)
    response = client.post("/environments/acme/base/rollback", data={"csrf": token, "rev": "1"}, follow_redirects=False)
    assert response.status_code == 303
    assert world.store.get_revision(EnvRef("acme", "base")).number == 4
    assert world.service().read(RevisionRef(EnvRef("acme", "base")), ("db", "host")) == "db.internal"
    assert (
        client.post(
            "/environments/acme/base/tags", data={"csrf": token, "tag": "stable", "rev": "4"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert [(t.name, t.revision) for t in world.store.list_tags(EnvRef("acme", "base"))] == [("stable", 4)]
    assert "stable" in client.get("/environments/acme/base/history").text
    assert (
        client.post(
            "/environments/acme/base/tags/delete", data={"csrf": token, "tag": "stable"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert world.store.list_tags(EnvRef("acme", "base")) == []


def test_a_reader_sees_history_but_cannot_roll_back(world):
    world.service().set_value(EnvRef("acme", "app"), ("port",), 1)
    client = signed_in(world, "reader")
    page = client.get("/environments/acme/app/history").text
    assert "Roll back" not in page
    response = client.post("/environments/acme/app/rollback", data={"csrf": csrf_of(page), "rev": "1"})
    assert response.status_code == 403


# --------------------------------------------------------------------------- rotation


def test_rotation_dashboard_lists_overdue_secrets_with_their_catalog(world):
    client = signed_in(world, "editor")
    page = client.get("/rotation").text
    assert "CI token" in page and "ci.signing" in page and "overdue" in page
    assert "lets CI push images" in page and "ops@example.com" in page and "deploy workflow" in page
    assert "Rotate now" in page


def test_manual_rotation_in_the_browser_flow(world):
    client = signed_in(world, "editor")
    token = csrf(client, "/rotation")
    prepared = client.post("/rotation/prepare", data={"csrf": token, "env": "acme/ci", "path": "ci.token"})
    assert prepared.status_code == 200
    for text in ("https://github.com/settings/tokens", "write:packages", "90 days", "ghp_", "Paste it here"):
        assert text in prepared.text
    assert 'type="password"' in prepared.text
    wrong = client.post("/rotation/run", data={"csrf": token, "env": "acme/ci", "path": "ci.token", "value": "nope"})
    assert wrong.status_code == 422 and "does not start with ghp_" in wrong.text
    done = client.post(
        "/rotation/run", data={"csrf": token, "env": "acme/ci", "path": "ci.token", "value": NEW_TOKEN_VALUE}
    )
    assert done.status_code == 200, done.text
    assert "done" in done.text and NEW_TOKEN_VALUE not in done.text
    assert "Now revoke the old credential at https://github.com/settings/tokens" in done.text
    assert world.service().read(RevisionRef(EnvRef("acme", "ci")), ("ci", "token"), show_secrets=True).reveal() == (
        NEW_TOKEN_VALUE
    )
    history = client.get("/rotation/history").text
    assert "ci.token" in history and "manual" in history and "failed" in history and "done" in history


def test_random_rotation_just_runs(world):
    client = signed_in(world, "editor")
    token = csrf(client, "/rotation")
    prepared = client.post("/rotation/prepare", data={"csrf": token, "env": "acme/ci", "path": "ci.signing"})
    assert 'type="password"' not in prepared.text and "makes the new value itself" in prepared.text
    done = client.post("/rotation/run", data={"csrf": token, "env": "acme/ci", "path": "ci.signing"})
    assert done.status_code == 200 and "revision 2 written" in done.text


def test_a_reader_cannot_rotate(world):
    client = signed_in(world, "reader")
    page = client.get("/rotation").text
    assert "Rotate now" not in page
    response = client.post("/rotation/run", data={"csrf": csrf_of(page), "env": "acme/ci", "path": "ci.signing"})
    assert response.status_code == 403


# --------------------------------------------------------------------------- tiers


def test_tiers_without_credentials_are_not_configured(world):
    world.service().replace_definition(
        EnvRef("acme", "app"),
        APP + "  kubernetesSecrets:\n    app-env:\n      namespaces: [default]\n      data:\n        URL: ${url}\n",
    )
    client = signed_in(world, "editor", environ={})
    page = client.get("/environments/acme/app/tiers").text
    assert 'data-tier-state="not configured"' in page and 'data-tier-state="not declared"' in page
    overview = client.get("/tiers").text
    assert "acme/app" in overview and "not configured" in overview


def test_kubernetes_drift_plan_and_sync(world, tmp_path):
    from strongroom.testing.kube_api import KubeAPIServer

    world.service().replace_definition(
        EnvRef("acme", "app"),
        APP + "  kubernetesSecrets:\n    app-env:\n      namespaces: [default]\n      data:\n        URL: ${url}\n",
    )
    with KubeAPIServer() as kube:
        kubeconfig = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
        client = signed_in(world, "editor", environ={"STRONGROOM_KUBECONFIG": kubeconfig})
        page = client.get("/environments/acme/app/tiers").text
        assert 'data-tier-state="missing"' in page and "default/app-env" in page
        plan = client.post("/environments/acme/app/tiers/kubernetes/plan", data={"csrf": csrf_of(page)})
        assert "create" in plan.text and kube.api.get_object("secrets", "app-env", "default") is None
        synced = client.post("/environments/acme/app/tiers/kubernetes/sync", data={"csrf": csrf_of(page)})
        assert 'data-tier-state="in sync"' in synced.text
        assert SECRET.encode() in kube.api.secret_data("app-env", "default")["URL"]
        assert SECRET not in synced.text
        secret = kube.api.get_object("secrets", "app-env", "default")
        secret["data"]["URL"] = "ZWRpdGVk"
        kube.api.delete_object("secrets", "app-env", "default")
        kube.api.create_object("secrets", secret, "default")
        drifted = client.get("/environments/acme/app/tiers").text
        assert 'data-tier-state="drifted"' in drifted and "edited" in drifted
        reader = signed_in(world, "reader", environ={"STRONGROOM_KUBECONFIG": kubeconfig})
        assert 'data-tier-state="needs the opener role"' in reader.get("/environments/acme/app/tiers").text
        refused = reader.post("/environments/acme/app/tiers/kubernetes/sync", data={"csrf": csrf(reader)})
        assert refused.status_code == 403


GITHUB_TOKEN = "ghp_CONSOLECANARY_" + "c" * 20
GITHUB_APP = (
    APP + "  githubSecrets:\n    repositories:\n      acme/app:\n        secrets:\n          DATABASE_URL: ${url}\n"
)


@pytest.fixture(scope="module")
def github_server():
    from strongroom.testing.github_api import GitHubAPIServer

    with GitHubAPIServer() as server:
        yield server


@pytest.fixture
def github(github_server):
    """The fake GitHub API with repository acme/app and a token that may write its secrets; acme/app declares
    DATABASE_URL (which carries the canary) in ``githubSecrets``."""
    api = github_server.api
    api.reset()
    api.add_repository("acme/app", id=101)
    api.add_token(GITHUB_TOKEN, scopes={"repo"})
    return github_server


def github_environ(server) -> dict[str, str]:
    return {"GITHUB_TOKEN": GITHUB_TOKEN, "STRONGROOM_GITHUB_API_URL": server.url}


def tier_section(html: str, tier: str) -> str:
    return html.split(f'id="tier-{tier}"', 1)[1].split("</section>", 1)[0]


def test_github_missing_then_synced_then_edited_on_github(world, github):
    world.service().replace_definition(EnvRef("acme", "app"), GITHUB_APP)
    client = signed_in(world, "editor", environ=github_environ(github))
    page = client.get("/environments/acme/app/tiers")
    section = tier_section(page.text, "github")
    assert 'data-tier-state="missing"' in section and "acme/app DATABASE_URL" in section
    assert 'data-tier-state="not declared"' in tier_section(page.text, "kubernetes")

    plan = client.post("/environments/acme/app/tiers/github/plan", data={"csrf": csrf_of(page.text)})
    assert plan.status_code == 200 and "+ acme/app DATABASE_URL: add" in plan.text
    assert github.api.count_requests("PUT") == 0 and github.api.secret_names("acme/app") == []

    synced = client.post("/environments/acme/app/tiers/github/sync", data={"csrf": csrf_of(page.text)})
    assert synced.status_code == 200 and "acme/app DATABASE_URL: created" in synced.text
    assert 'data-tier-state="in sync"' in tier_section(synced.text, "github")
    assert SECRET in github.api.plaintext("acme/app", "DATABASE_URL")

    github.api.touch("acme/app", "DATABASE_URL")  # someone edits it in GitHub's web UI
    drifted = client.get("/environments/acme/app/tiers")
    section = tier_section(drifted.text, "github")
    assert 'data-tier-state="drifted"' in section and "edited" in section

    for response in (page, plan, synced, drifted):
        assert SECRET not in response.text and GITHUB_TOKEN not in response.text
    modes = [dict(r.event.details)["mode"] for r in audit(world, "sync.github", "acme/app")]
    assert modes == ["plan", "apply"]
    assert all(r.event.actor == "editor-person" for r in audit(world, "sync.github"))


def test_a_reader_cannot_sync_to_github(world, github):
    world.service().replace_definition(EnvRef("acme", "app"), GITHUB_APP)
    reader = signed_in(world, "reader", environ=github_environ(github))
    page = reader.get("/environments/acme/app/tiers").text
    assert 'data-tier-state="needs the opener role"' in tier_section(page, "github")
    assert "/tiers/github/sync" not in page
    for action in ("sync", "plan"):
        refused = reader.post(f"/environments/acme/app/tiers/github/{action}", data={"csrf": csrf_of(page)})
        assert refused.status_code == 403 and "may not write" in refused.text
    assert github.api.count_requests() == 0
    assert not audit(world, "sync.github")


def test_tiers_overview_follows_imports_without_evaluating(world, monkeypatch):
    from strongroom.service import Service

    kube = "  kubernetesSecrets:\n    shared:\n      namespaces: [default]\n      data:\n        A: x\n"
    gh = "  githubSecrets:\n    repositories:\n      acme/app:\n        secrets:\n          B: y\n"
    svc = world.service()
    svc.create_environment(EnvRef("acme", "kbase"), "values:\n" + kube)
    svc.create_environment(EnvRef("acme", "kmid"), "imports:\n  - acme/kbase\nvalues:\n" + gh)
    svc.create_environment(EnvRef("acme", "kleaf"), "imports:\n  - acme/kmid@1\nvalues:\n  x: 1\n")
    svc.create_environment(EnvRef("default", "shared"), "values:\n" + kube)
    svc.create_environment(EnvRef("acme", "bare"), "imports:\n  - shared\nvalues:\n  x: 1\n")
    svc.create_environment(EnvRef("acme", "mention"), "values:\n  note: kubernetesSecrets live elsewhere\n")
    client = signed_in(world, "reader")

    def boom(*_args, **_kwargs):
        raise AssertionError("the overview evaluated an environment")

    with monkeypatch.context() as patched:
        patched.setattr(Service, "_evaluate", boom)
        page = client.get("/tiers")
    assert page.status_code == 200
    table = page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = {
        cells[0]: cells[1]
        for row in table.split("</tr>")
        if (cells := [re.sub(r"<[^>]+>", "", c).strip() for c in row.split("</td>")[:2]]) and len(cells) == 2
    }
    assert rows == {
        "acme/bare": "kubernetes (imported from default/shared)",
        "acme/kbase": "kubernetes",
        "acme/kleaf": "kubernetes (imported from acme/kbase), github (imported from acme/kmid)",
        "acme/kmid": "kubernetes (imported from acme/kbase), github",
        "default/shared": "kubernetes",
    }
    assert 'href="/environments/acme/kbase"' in table
    leaf = client.get("/environments/acme/kleaf/tiers").text  # the page agrees: declared, through the import
    assert 'data-tier-state="not declared"' not in leaf and 'data-tier-state="not configured"' in leaf


# --------------------------------------------------------------------------- audit


def test_audit_log_filters_and_verifies_for_admins(world):
    client = signed_in(world, "admin")
    token = csrf(client, "/environments/acme/base")
    client.post("/environments/acme/base/reveal", data={"csrf": token, "path": "db.password"})
    page = client.get("/audit", params={"environment": "acme/base", "action": "decrypt"}).text
    assert "admin-person" in page and "decrypt" in page and "hmac:values.db.password" in page
    assert SECRET not in page
    assert "No record matches" in client.get("/audit", params={"actor": "nobody"}).text
    assert "acme/ci" in client.get("/audit", params={"since": "2h", "action": "create"}).text
    assert "No record matches" in client.get("/audit", params={"since": "2999-01-01", "action": "create"}).text
    assert client.get("/audit", params={"since": "yesterday"}).status_code == 400
    verify = client.get("/audit/verify").text
    assert "Intact" in verify


def test_audit_is_for_admins_only(world):
    client = signed_in(world, "editor")
    assert "/audit" not in client.get("/environments").text
    assert client.get("/audit").status_code == 403
    assert client.get("/audit/verify").status_code == 403


# --------------------------------------------------------------------------- the rest of the server


def test_api_routes_still_work_beside_the_console(world):
    client = TestClient(world.app(), base_url="http://testserver")
    headers = {"Authorization": f"token {world.tokens['admin']}"}
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/esc/environments/default", headers=headers).status_code == 200
    assert client.get("/api/v1/environments", headers=headers).status_code == 200
    assert client.get("/api/esc/environments/default").status_code == 401
    assert "console" not in client.get("/openapi.json").text
    assert client.get("/static/console/console.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/console/../app.py").status_code == 404


def test_console_can_be_turned_off(world):
    client = TestClient(world.app(environ={"STRONGROOM_CONSOLE": "off"}), base_url="http://testserver")
    assert client.get("/signin").status_code == 404


def test_the_cli_never_imports_the_console():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from strongroom.cli.app import cli\n"
        "for args in (['--help'], ['serve', '--help'], ['env', '--help']):\n"
        "    assert CliRunner().invoke(cli, args).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('jinja2', 'strongroom.console'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
