"""Bad input over real HTTP: each a 4xx ``{code, message}`` with a clear message, and nothing changed."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from strongroom.access import parse_token
from strongroom.model import EnvRef
from strongroom.server.testing import Harness, running_server

BASE = "/api/esc/environments/default"
ENV = f"{BASE}/proj/app"
LIMIT = 64 * 1024
YAML = {"Content-Type": "application/x-yaml"}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_server(tmp_path_factory.mktemp("bad") / "home", max_body_bytes=LIMIT, auth_failure_limit=10_000) as h:
        svc = h.service()
        svc.create_environment(EnvRef("proj", "app"), "values:\n  a: 1\n")
        svc.tag(EnvRef("proj", "app"), "stable", 1)
        svc.set_env_tag(EnvRef("proj", "app"), "team", "web")
        yield h


@pytest.fixture(scope="module")
def admin_token(harness: Harness) -> str:
    return harness.token("bad-input-admin", "admin")


@pytest.fixture(scope="module")
def admin(harness: Harness, admin_token: str) -> httpx.Client:
    return harness.client(admin_token)


@pytest.fixture
def unchanged(harness: Harness) -> Iterator[None]:
    before = harness.snapshot()
    yield
    assert harness.snapshot() == before


def assert_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]
    for word in words:
        assert word in body["message"], body["message"]
    return body


def raw_request(harness: Harness, method: str, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """Send ``path`` exactly as written (no client-side normalisation of ``..`` or ``%2e``)."""
    host, port = harness.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_malformed_json(admin, unchanged):
    response = admin.post(BASE, content=b'{"project": "p", "name":', headers={"Content-Type": "application/json"})
    assert_error(response, 400, "not valid JSON")


@pytest.mark.parametrize(
    "body",
    [
        {"project": 1, "name": "x"},
        {"project": "p"},
        [],
        {"project": "p", "name": "x" * 101},
        {"project": "p\ud800", "name": "x"},
        {"project": "p\u0000", "name": "x"},
    ],
)
def test_invalid_json_bodies(admin, unchanged, body):
    content = json.dumps(body).encode()
    response = admin.post(BASE, content=content, headers={"Content-Type": "application/json"})
    message = assert_error(response, 400, "invalid request")["message"]
    assert "\ud800" not in message


@pytest.mark.parametrize(
    ("project", "name"),
    [("..", "x"), ("a/b", "x"), ("p", "open"), ("p", "yaml"), ("p", "."), ("p", "with space"), ("p", "é")],
)
def test_invalid_names_are_400(admin, unchanged, project, name):
    assert_error(admin.post(BASE, json={"project": project, "name": name}), 400, "invalid environment name")


def test_malformed_yaml_is_400_with_diagnostics(admin, unchanged):
    body = assert_error(admin.patch(ENV, content="values:\n  a: [1,\n", headers=YAML), 400)
    assert body["diagnostics"] and body["diagnostics"][0]["range"]["begin"]["line"] >= 2


def test_yaml_that_is_not_utf8_is_400(admin, unchanged):
    assert_error(admin.patch(ENV, content=b"values:\n  a: \xff\xfe\n", headers=YAML), 400, "UTF-8")


@pytest.mark.parametrize(
    ("method", "path", "content", "content_type"),
    [
        ("PATCH", ENV, "values: {}\n", "application/json"),
        ("PATCH", ENV, "values: {}\n", None),
        ("POST", f"{BASE}/yaml/check", "values: {}\n", "application/x-www-form-urlencoded"),
        ("POST", BASE, '{"project": "p", "name": "x"}', "text/plain"),
        ("POST", BASE, '{"project": "p", "name": "x"}', None),
        ("POST", f"{ENV}/tags", '{"name": "a", "value": "b"}', "application/x-yaml"),
        ("POST", "/api/v1/tokens", '{"name": "n", "role": "admin"}', "application/xml"),
    ],
)
def test_wrong_content_types_are_415(admin, unchanged, method, path, content, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    request = admin.build_request(method, path, content=content.encode(), headers=headers)
    if content_type is None:
        request.headers.pop("Content-Type", None)
    assert_error(admin.send(request), 415, "Content-Type")


def test_oversize_body_with_content_length_is_413(admin, unchanged):
    body = "values:\n  a: '" + "x" * (LIMIT + 10) + "'\n"
    assert_error(admin.patch(ENV, content=body, headers=YAML), 413, "larger than")


def test_oversize_streamed_body_is_413(admin, unchanged):
    def chunks() -> Iterator[bytes]:
        yield b"values:\n  a: '"
        for _ in range(LIMIT // 1024 + 4):
            yield b"x" * 1024
        yield b"'\n"

    response = admin.patch(ENV, content=chunks(), headers=YAML)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "larger than")


def test_oversize_body_is_refused_before_authentication(harness: Harness, unchanged):
    response = httpx.post(f"{harness.url}{BASE}", content=b"x" * (LIMIT + 1), headers={"Content-Type": "a/b"})
    assert_error(response, 413)


@pytest.mark.parametrize(
    "path", ["/api/esc/nothing", f"{BASE}/proj/app/nothing/deeper", "/api/v2/tokens", "/", "/api/esc/environments"]
)
def test_unknown_routes_are_404(admin, path):
    assert_error(admin.get(path), 404, "not found")


def test_wrong_methods_are_405(admin, unchanged):
    response = admin.put(ENV, content="values: {}\n", headers=YAML)
    assert_error(response, 405, "method not allowed")
    assert "PATCH" in response.headers["allow"]
    assert_error(admin.post("/healthz"), 405)


@pytest.mark.parametrize(
    "path",
    [
        f"{BASE}/proj/..",
        f"{BASE}/../../etc/passwd",
        f"{BASE}/%2e%2e/app",
        f"{BASE}/proj/%2e%2e",
        f"{BASE}/proj%2F..%2Fetc/app",
        f"{BASE}/proj/app%2F..",
        f"{BASE}/proj/.%2e/versions",
        f"{BASE}/%2e/app",
    ],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_path_traversal_is_refused(harness: Harness, admin_token: str, unchanged, path, method):
    status, body = raw_request(harness, method, path, admin_token)
    assert status in (400, 404, 405), (status, body)
    assert body["code"] == status and body["message"]


def test_expired_and_revoked_tokens_change_nothing(harness: Harness):
    expired = harness.client(harness.token("gone", "admin", expires_in=timedelta(seconds=-1)))
    revoked_token = harness.token("revoked-writer", "admin")
    harness.service().revoke_token(parse_token(revoked_token)[0])  # type: ignore[index]
    revoked = harness.client(revoked_token)
    before = harness.snapshot()
    assert_error(expired.delete(ENV), 401)
    assert_error(expired.patch(ENV, content="values: {}\n", headers=YAML), 401)
    assert_error(revoked.delete(ENV), 401)
    assert_error(revoked.post(f"{ENV}/tags", json={"name": "x", "value": "y"}), 401)
    assert_error(revoked.post("/api/v1/tokens", json={"name": "x", "role": "admin"}), 401)
    assert harness.snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "params", "words"),
    [
        ("GET", f"{ENV}/versions/99999999999999999999999", None, ("revision",)),
        ("GET", f"{ENV}/versions/0", None, ("revision",)),
        ("GET", f"{ENV}/versions/bad@tag", None, ()),
        ("GET", BASE, {"continuationToken": "!!!not-a-token!!!"}, ("continuationToken",)),
        ("GET", BASE, {"continuationToken": "Li4vLi4"}, ("continuationToken",)),
        ("GET", f"{ENV}/versions", {"count": "abc"}, ("count",)),
        ("GET", f"{ENV}/versions", {"count": "0"}, ("count",)),
        ("GET", f"{ENV}/tags", {"count": "100000"}, ("count",)),
        ("POST", f"{ENV}/open", {"duration": "forever"}, ("duration",)),
        ("POST", f"{ENV}/open", {"duration": "0s"}, ("duration",)),
        ("GET", "/api/v1/audit", {"since": "9999999999999d"}, ("time",)),
        ("GET", "/api/v1/audit", {"limit": "-1"}, ("limit",)),
    ],
)
def test_bad_parameters_are_400(admin, unchanged, method, path, params, words):
    assert_error(admin.request(method, path, params=params), 400, *words)


def test_bad_property_paths_are_400(admin):
    session = admin.post(f"{ENV}/open").json()["id"]
    assert_error(admin.get(f"{ENV}/open//{session}", params={"property": "a[["}), 400)
    assert_error(admin.get(f"{ENV}/open//{session}", params={"property": "nowhere.near"}), 400, "does not exist")
    assert_error(admin.get(f"{ENV}/open//{session}"), 400, "property")


def test_stale_or_garbage_if_match_is_409(admin, unchanged):
    for etag in ('"99"', "garbage", '"0"', '"99999999999999999999"'):
        response = admin.patch(ENV, content="values:\n  a: 2\n", headers={**YAML, "If-Match": etag})
        assert_error(response, 409)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"{ENV}/tags", {"name": "team", "value": "dup"}),
        ("POST", f"{ENV}/tags", {"name": "bad name!", "value": "v"}),
        ("POST", f"{ENV}/tags", {"name": "big", "value": "v" * 5000}),
        ("PATCH", f"{ENV}/tags/team", {"currentTag": {"value": "wrong"}, "newTag": {"name": "team", "value": "x"}}),
        ("POST", f"{ENV}/versions/tags", {"name": "stable", "revision": 1}),
        ("POST", f"{ENV}/versions/tags", {"name": "latest", "revision": 1}),
        ("POST", f"{ENV}/versions/tags", {"name": "new", "revision": 99}),
        ("POST", f"{ENV}/versions/tags", {"name": "new", "revision": 2**40}),
        ("PATCH", f"{ENV}/versions/tags/nothing", {"revision": 1}),
        ("POST", f"{ENV}/clone", {"project": "proj", "name": "app"}),
        ("POST", f"{ENV}/clone", {"project": "..", "name": "copy"}),
        ("POST", BASE, {"project": "proj", "name": "app"}),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "superuser"}),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "admin", "expires": "999999999999999d"}),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "admin", "scopes": ["no-slash"]}),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "admin", "extra": 1}),
    ],
)
def test_rejected_changes_change_nothing(admin, unchanged, method, path, body):
    response = admin.request(method, path, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"] == response.status_code


@pytest.mark.parametrize(
    "path",
    [f"{BASE}/proj/missing", f"{BASE}/proj/missing/versions", f"{ENV}/versions/7", f"{ENV}/versions/tags/none"],
)
def test_missing_things_are_404(admin, path):
    assert_error(admin.get(path), 404)


def test_org_mismatch_is_404_and_changes_nothing(admin, unchanged):
    assert_error(admin.post("/api/esc/environments/other-org", json={"project": "p", "name": "n"}), 404, "organization")
    assert_error(admin.delete("/api/esc/environments/other-org/proj/app"), 404, "organization")


@pytest.mark.parametrize(
    "text",
    ['values:\n  a: "\\ud800"\n', 'values:\n  "\\udfff": 1\n', 'values:\n  a:\n    fn::secret: "x\\ud800"\n'],
)
def test_yaml_escapes_of_lone_surrogates_are_400(admin, unchanged, text):
    assert_error(admin.patch(ENV, content=text, headers=YAML), 400, "unpaired surrogate")
    check = admin.post(f"{BASE}/yaml/check", content=text, headers=YAML)
    assert check.status_code in (200, 400)
    assert check.json().get("code", 400) == check.status_code or check.status_code == 200
