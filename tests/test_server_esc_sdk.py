"""The official Pulumi ESC Python SDK (``pulumi_esc_sdk``), unchanged, against a live Strongroom server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

esc = pytest.importorskip("pulumi_esc_sdk")

from strongroom.model import EnvRef  # noqa: E402
from strongroom.server.testing import Harness, running_server  # noqa: E402

ORG = "default"
DEFINITION = """\
values:
  region: eu-west-1
  db:
    user: app
    password:
      fn::secret: {secret}
  url: postgres://${{db.user}}@db/${{region}}
  pulumiConfig:
    app:region: ${{region}}
    app:password: ${{db.password}}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_server(tmp_path_factory.mktemp("sdk") / "home", auth_failure_limit=1000) as h:
        yield h


@pytest.fixture(scope="module")
def admin(harness: Harness) -> str:
    return harness.token("sdk-admin", "admin")


@pytest.fixture
def client(harness: Harness, admin: str):
    return esc.EscClient(esc.Configuration(host=harness.url, access_token=admin))


def fresh(client, project: str = "sdk") -> str:
    name = f"env-{uuid.uuid4().hex[:8]}"
    client.create_environment(ORG, project, name)
    return name


def test_create_list_get_and_update(client):
    name = fresh(client)
    secret = f"CANARY-{uuid.uuid4().hex}"
    diags = client.update_environment_yaml(ORG, "sdk", name, DEFINITION.format(secret=secret))
    assert diags.diagnostics == []

    listed = client.list_environments(ORG)
    assert any(e.project == "sdk" and e.name == name and e.organization == ORG for e in listed.environments)

    definition, raw = client.get_environment(ORG, "sdk", name)
    assert definition.values.pulumi_config == {"app:region": "${region}", "app:password": "${db.password}"}
    assert b"ciphertext" in raw and secret.encode() not in raw
    etag = client.esc_api.get_environment_e_tag_with_http_info(ORG, "sdk", name).headers["etag"]
    assert etag == '"2"'


def test_check_reports_diagnostics_and_masks_secrets(client):
    ok = client.check_environment_yaml(ORG, "values:\n  a: 1\n  s:\n    fn::secret: hush\n")
    assert ok.diagnostics == []
    assert ok.properties["a"].value == 1
    assert ok.properties["s"].secret is True and ok.properties["s"].value is None

    bad = client.check_environment_yaml(ORG, "values:\n  a: ${missing}\n")
    assert len(bad.diagnostics) == 1
    assert "missing" in bad.diagnostics[0].summary
    assert bad.diagnostics[0].range.begin.line == 2


def test_update_with_invalid_yaml_is_400_with_diagnostics(client):
    name = fresh(client)
    with pytest.raises(esc.ApiException) as caught:
        client.update_environment_yaml(ORG, "sdk", name, "values:\n  a: ${nowhere}\n  b: [\n")
    assert caught.value.status == 400
    assert isinstance(caught.value.data, esc.EnvironmentDiagnostics)
    assert caught.value.data.diagnostics


def test_decrypt_open_and_read(client):
    name = fresh(client)
    secret = f"CANARY-{uuid.uuid4().hex}"
    client.update_environment_yaml(ORG, "sdk", name, DEFINITION.format(secret=secret))

    decrypted, raw = client.decrypt_environment(ORG, "sdk", name)
    assert decrypted.values.additional_properties["db"]["password"] == {"fn::secret": secret}
    assert secret in raw

    env, values, raw = client.open_and_read_environment(ORG, "sdk", name)
    assert values["db"] == {"user": "app", "password": secret}
    assert values["url"] == "postgres://app@db/eu-west-1"
    assert values["pulumiConfig"]["app:password"] == secret
    password = env.properties["db"].value["password"]
    assert password["secret"] is True
    assert password["trace"]["def"]["environment"] == f"sdk/{name}"
    assert password["trace"]["def"]["begin"]["line"] == 6

    opened = client.open_environment(ORG, "sdk", name)
    value, plain = client.read_open_environment_property(ORG, "sdk", name, opened.id, "db.password")
    assert plain == secret and value.secret is True
    value, plain = client.read_open_environment_property(ORG, "sdk", name, opened.id, 'pulumiConfig["app:region"]')
    assert plain == "eu-west-1" and not value.secret


def test_open_at_version_revisions_and_get_at_version(client):
    name = fresh(client)
    client.update_environment_yaml(ORG, "sdk", name, "values:\n  n: 1\n")
    client.update_environment_yaml(ORG, "sdk", name, "values:\n  n: 2\n")

    _env, values, _raw = client.open_and_read_environment_at_version(ORG, "sdk", name, "2")
    assert values == {"n": 1}
    _env, values, _raw = client.open_and_read_environment(ORG, "sdk", name)
    assert values == {"n": 2}

    revisions = client.list_environment_revisions(ORG, "sdk", name)
    assert [r.number for r in revisions] == [3, 2, 1]
    assert revisions[0].creator_login == "sdk-admin"
    assert [r.number for r in client.list_environment_revisions(ORG, "sdk", name, before=3, count=1)] == [2]

    _definition, raw = client.get_environment_at_version(ORG, "sdk", name, "2")
    assert raw == b"values:\n  n: 1\n"


def test_revision_tags(client):
    name = fresh(client)
    client.update_environment_yaml(ORG, "sdk", name, "values:\n  n: 1\n")
    client.create_environment_revision_tag(ORG, "sdk", name, "stable", 1)
    tag = client.get_environment_revision_tag(ORG, "sdk", name, "stable")
    assert (tag.name, tag.revision) == ("stable", 1)
    with pytest.raises(esc.ApiException) as caught:
        client.create_environment_revision_tag(ORG, "sdk", name, "stable", 2)
    assert caught.value.status == 409

    client.update_environment_revision_tag(ORG, "sdk", name, "stable", 2)
    listed = client.list_environment_revision_tags(ORG, "sdk", name)
    assert {(t.name, t.revision) for t in listed.tags} == {("latest", 2), ("stable", 2)}
    _env, values, _raw = client.open_and_read_environment_at_version(ORG, "sdk", name, "stable")
    assert values == {"n": 1}

    client.delete_environment_revision_tag(ORG, "sdk", name, "stable")
    with pytest.raises(esc.ApiException) as caught:
        client.get_environment_revision_tag(ORG, "sdk", name, "stable")
    assert caught.value.status == 404


def test_environment_tags(client, harness: Harness):
    name = fresh(client)
    created = client.create_environment_tag(ORG, "sdk", name, "team", "platform")
    assert (created.name, created.value, created.editor_login) == ("team", "platform", "sdk-admin")
    listed = client.list_environment_tags(ORG, "sdk", name)
    assert list(listed.tags) == ["team"] and listed.next_token == ""

    updated = client.update_environment_tag(ORG, "sdk", name, "team", "platform", "team", "infra")
    assert updated.value == "infra"
    with pytest.raises(esc.ApiException) as caught:  # the current value is no longer "platform"
        client.update_environment_tag(ORG, "sdk", name, "team", "platform", "team", "other")
    assert caught.value.status == 409

    renamed = client.update_environment_tag(ORG, "sdk", name, "team", "infra", "owner", "infra")
    assert renamed.name == "owner"
    assert client.get_environment_tag(ORG, "sdk", name, "owner").value == "infra"
    client.delete_environment_tag(ORG, "sdk", name, "owner")
    assert client.list_environment_tags(ORG, "sdk", name).tags == {}

    actions = [r.event.action for r in harness.store.list_audit(environment=f"sdk/{name}")]
    assert actions.count("env-tag.set") == 3 and actions.count("env-tag.delete") == 2


def test_clone_and_delete(client, harness: Harness):
    name = fresh(client)
    secret = f"CANARY-{uuid.uuid4().hex}"
    client.update_environment_yaml(ORG, "sdk", name, DEFINITION.format(secret=secret))
    client.create_environment_tag(ORG, "sdk", name, "team", "platform")
    client.clone_environment(
        ORG, "sdk", name, "sdk", f"{name}-copy", {"preserve_history": True, "preserve_environment_tags": True}
    )
    _env, values, _raw = client.open_and_read_environment(ORG, "sdk", f"{name}-copy")
    assert values["db"]["password"] == secret
    assert [r.number for r in client.list_environment_revisions(ORG, "sdk", f"{name}-copy")] == [2, 1]
    assert client.get_environment_tag(ORG, "sdk", f"{name}-copy", "team").value == "platform"

    client.delete_environment(ORG, "sdk", f"{name}-copy")
    with pytest.raises(esc.ApiException) as caught:
        client.get_environment(ORG, "sdk", f"{name}-copy")
    assert caught.value.status == 404
    assert EnvRef("sdk", f"{name}-copy") not in {e.ref for e in harness.store.list_environments()}


def test_update_with_stale_etag_is_409_and_changes_nothing(client, harness: Harness):
    name = fresh(client)
    client.update_environment_yaml(ORG, "sdk", name, "values:\n  n: 1\n")
    stale = '"1"'
    before = harness.snapshot()
    with pytest.raises(esc.ApiException) as caught:
        client.esc_api.update_environment_yaml(ORG, "sdk", name, "values:\n  n: 9\n", _headers={"If-Match": stale})
    assert caught.value.status == 409
    assert harness.snapshot() == before
    client.esc_api.update_environment_yaml(ORG, "sdk", name, "values:\n  n: 3\n", _headers={"If-Match": '"2"'})
    assert client.get_environment(ORG, "sdk", name)[1] == b"values:\n  n: 3\n"


def test_listing_pages_with_continuation_tokens(client, harness: Harness):
    svc = harness.service()
    for i in range(105):
        svc.create_environment(EnvRef("paged", f"e{i:03d}"))
    seen: list[str] = []
    page = client.list_environments(ORG)
    pages = 1
    while True:
        seen.extend(f"{e.project}/{e.name}" for e in page.environments)
        if not page.next_token:
            break
        page = client.list_environments(ORG, page.next_token)
        pages += 1
    assert pages >= 2
    assert len(seen) == len(set(seen))
    assert [s for s in seen if s.startswith("paged/")] == [f"paged/e{i:03d}" for i in range(105)]


def test_only_the_configured_organisation_is_served(client):
    with pytest.raises(esc.ApiException) as caught:
        client.list_environments("someone-else")
    assert caught.value.status == 404
    assert "organization 'someone-else' not found" in caught.value.body


def test_bad_token_is_401_for_the_sdk(harness: Harness):
    client = esc.EscClient(esc.Configuration(host=harness.url, access_token="sr_not_a_real_token"))
    with pytest.raises(esc.ApiException) as caught:
        client.list_environments(ORG)
    assert caught.value.status == 401
    assert isinstance(caught.value.data, esc.Error)
    assert caught.value.data.code == 401


def test_tag_listings_page_by_name(client, harness: Harness, admin: str):
    import httpx

    name = fresh(client)
    client.update_environment_yaml(ORG, "sdk", name, "values:\n  n: 1\n")
    for tag in ("a", "b", "c"):
        client.create_environment_revision_tag(ORG, "sdk", name, tag, 1)
        client.create_environment_tag(ORG, "sdk", name, tag, f"value-{tag}")
    headers = {"Authorization": f"token {admin}"}
    base = f"{harness.url}/api/esc/environments/{ORG}/sdk/{name}"

    def get(path: str, **params: object) -> dict:
        response = httpx.get(f"{base}{path}", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    # Revision tags (with "latest"): a full page has nextToken, the last page has none.
    first = get("/versions/tags", count=2)
    assert [t["name"] for t in first["tags"]] == ["a", "b"] and first["nextToken"] == "b"
    last = get("/versions/tags", count=2, after=first["nextToken"])
    assert [t["name"] for t in last["tags"]] == ["c", "latest"] and "nextToken" not in last
    # Environment tags: nextToken is "" on the last page.
    first = get("/tags", count=2)
    assert list(first["tags"]) == ["a", "b"] and first["nextToken"] == "b"
    last = get("/tags", count=2, after="b")
    assert list(last["tags"]) == ["c"] and last["nextToken"] == ""
