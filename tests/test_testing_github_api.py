"""The fake GitHub REST API for Actions secrets, exercised over real HTTP as a client would.

One server serves the whole module; each test gets its state reset and re-seeded by
the ``api`` fixture. Values are encrypted on the client side exactly as GitHub's docs
show (PyNaCl ``SealedBox`` on the base64 public key), and the server's decrypted copy
is compared with what was sent.
"""

from __future__ import annotations

import re
import socket
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from nacl import encoding, public

from strongroom.testing.github_api import (
    EnvironmentScope,
    FakeGitHubAPI,
    GitHubAPIServer,
    OrgScope,
    RecordedRequest,
    RepoScope,
    SecretInfo,
)

CLASSIC = "ghp_classic_full_0001"  # repo + admin:org
CLASSIC_REPO = "ghp_classic_repo_0002"  # repo only
CLASSIC_NONE = "ghp_classic_none_0003"  # read:user only
FINE_RW = "github_pat_rw_0004"  # secrets: write, organization_secrets: write
FINE_RO = "github_pat_ro_0005"  # secrets: read
APP_RW = "ghs_app_rw_0006"  # secrets: write
APP_NONE = "ghs_app_none_0007"  # no permissions
EXPIRED = "ghp_expired_0008"

REPO = "/repos/acme/app/actions/secrets"
ENV = "/repos/acme/app/environments/production/secrets"
ORG = "/orgs/acme/actions/secrets"

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset")


def encrypt(public_key: str, secret_value: str) -> str:
    """Encrypt a Unicode string using the public key (the example in GitHub's REST docs)."""
    public_key_obj = public.PublicKey(public_key.encode("utf-8"), encoding.Base64Encoder)
    sealed_box = public.SealedBox(public_key_obj)
    encrypted = sealed_box.encrypt(secret_value.encode("utf-8"))
    return b64encode(encrypted).decode("utf-8")


def put_secret(client: httpx.Client, base: str, name: str, value: str, **extra: object) -> httpx.Response:
    """Fetch ``base``'s public key, encrypt ``value`` and PUT it as secret ``name``."""
    key = client.get(f"{base}/public-key").json()
    body = {"encrypted_value": encrypt(key["key"], value), "key_id": key["key_id"], **extra}
    return client.put(f"{base}/{name}", json=body)


class Clock:
    """A settable clock for the rate-limit windows and timestamps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[GitHubAPIServer]:
    with GitHubAPIServer() as running:
        yield running


@pytest.fixture
def api(server: GitHubAPIServer) -> FakeGitHubAPI:
    api = server.api
    api.reset()
    api.add_organization("acme", id=1)
    api.add_repository("acme/app", id=101, environments=["production", "staging"])
    api.add_repository("acme/web", id=102)
    api.add_repository("octo/solo", id=201, private=False)
    api.add_token(CLASSIC, scopes={"repo", "admin:org"}, login="deployer")
    api.add_token(CLASSIC_REPO, scopes={"repo"})
    api.add_token(CLASSIC_NONE, scopes={"read:user"})
    api.add_token(FINE_RW, kind="fine-grained", permissions={"secrets": "write", "organization_secrets": "write"})
    api.add_token(FINE_RO, kind="fine-grained", permissions={"secrets": "read"})
    api.add_token(APP_RW, kind="app", permissions={"secrets": "write"})
    api.add_token(APP_NONE, kind="app")
    api.add_token(EXPIRED, scopes={"repo"}, expired=True)
    return api


@pytest.fixture
def connect(server: GitHubAPIServer, api: FakeGitHubAPI) -> Iterator[Callable[..., httpx.Client]]:
    """``connect(token=CLASSIC, scheme="Bearer", **headers)``: an httpx client on the fake."""
    clients: list[httpx.Client] = []

    def make(token: str | None = CLASSIC, scheme: str = "Bearer", **headers: str) -> httpx.Client:
        sent = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", **headers}
        if token is not None:
            sent["Authorization"] = f"{scheme} {token}"
        # Plain HTTP on loopback: verify=False only spares loading the CA bundle for every client (~30 ms).
        client = httpx.Client(base_url=server.url, headers=sent, timeout=10, verify=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def gh(connect: Callable[..., httpx.Client]) -> httpx.Client:
    """A client with the classic token that has ``repo`` and ``admin:org``."""
    return connect()


@pytest.fixture
def clock(api: FakeGitHubAPI) -> Clock:
    fake = Clock()
    api.clock = fake
    return fake


# --------------------------------------------------------------------------- the server


def test_server_listens_on_an_ephemeral_loopback_port(server: GitHubAPIServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    assert server.port > 0
    with GitHubAPIServer() as other:
        assert other.port != server.port
        assert other.api is not server.api


def test_stop_releases_the_port_and_is_idempotent() -> None:
    running = GitHubAPIServer().start()
    port = running.port
    with pytest.raises(RuntimeError):
        running.start()
    running.stop()
    running.stop()
    with pytest.raises(RuntimeError):
        _ = running.url
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_instances_share_no_state() -> None:
    first, second = FakeGitHubAPI(), FakeGitHubAPI()
    first.add_repository("acme/app", id=1)
    second.add_repository("acme/app", id=1)
    assert first.public_key("acme/app") != second.public_key("acme/app")
    first.set_secret("acme/app", "ONLY_HERE", "x")
    assert second.secret_names("acme/app") == []


def test_latency_is_added_to_each_request(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    api.latency = 0.05
    started = time.perf_counter()
    assert gh.get(f"{REPO}/public-key").status_code == 200
    assert time.perf_counter() - started >= 0.05


# --------------------------------------------------------------------------- public keys and the decrypted value


def test_public_key_is_a_stable_libsodium_key_per_scope(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    keys = {}
    for base in (REPO, ENV, ORG, "/repos/acme/app/environments/staging/secrets"):
        response = gh.get(f"{base}/public-key")
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"key_id", "key"}
        assert isinstance(body["key_id"], str)
        assert len(public.PublicKey(body["key"].encode(), encoding.Base64Encoder).encode()) == 32
        assert gh.get(f"{base}/public-key").json() == body
        keys[base] = (body["key_id"], body["key"])
    assert len(set(keys.values())) == 4
    assert keys[REPO] == api.public_key("acme/app")
    assert keys[ENV] == api.public_key(EnvironmentScope("acme/app", "production"))
    assert keys[ORG] == api.public_key(OrgScope("acme"))


def test_put_creates_with_201_then_updates_with_204_and_server_decrypts(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    created = put_secret(gh, REPO, "DATABASE_URL", "postgres://u:p@db/app")
    assert created.status_code == 201
    assert created.json() == {}
    assert api.plaintext("acme/app", "DATABASE_URL") == "postgres://u:p@db/app"
    updated = put_secret(gh, REPO, "DATABASE_URL", "postgres://u:p2@db/app")
    assert updated.status_code == 204
    assert updated.content == b""
    assert api.plaintext(RepoScope("acme/app"), "DATABASE_URL") == "postgres://u:p2@db/app"


def test_unicode_and_binary_safe_values_round_trip(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    value = 'pässwörd ✓ \n\t"quoted"'
    assert put_secret(gh, REPO, "UNICODE", value).status_code == 201
    assert api.plaintext("acme/app", "UNICODE") == value
    assert api.plaintext_bytes("acme/app", "UNICODE") == value.encode("utf-8")


def test_names_are_stored_upper_case_and_looked_up_case_insensitively(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    assert put_secret(gh, REPO, "db_password", "s3cret").status_code == 201
    assert api.secret_names("acme/app") == ["DB_PASSWORD"]
    assert gh.get(f"{REPO}/db_password").json()["name"] == "DB_PASSWORD"
    assert put_secret(gh, REPO, "Db_Password", "other").status_code == 204
    assert api.plaintext("acme/app", "db_password") == "other"


def test_get_secret_shows_name_and_iso_timestamps_never_the_value(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    put_secret(gh, REPO, "API_TOKEN", "tok-123")
    response = gh.get(f"{REPO}/API_TOKEN")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"name", "created_at", "updated_at"}
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["updated_at"])
    assert "tok-123" not in response.text


def test_updated_at_moves_on_every_put_and_created_at_stays(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    put_secret(gh, REPO, "ROTATED", "v1")
    first = gh.get(f"{REPO}/ROTATED").json()
    put_secret(gh, REPO, "ROTATED", "v2")
    second = gh.get(f"{REPO}/ROTATED").json()
    put_secret(gh, REPO, "ROTATED", "v2")  # same value again: still an update
    third = gh.get(f"{REPO}/ROTATED").json()
    assert first["created_at"] == second["created_at"] == third["created_at"]
    assert first["updated_at"] < second["updated_at"] < third["updated_at"]
    assert api.secret("acme/app", "ROTATED").updated_at == third["updated_at"]


def test_timestamps_follow_the_clock(api: FakeGitHubAPI, gh: httpx.Client, clock: Clock) -> None:
    put_secret(gh, REPO, "TIMED", "v1")
    assert gh.get(f"{REPO}/TIMED").json()["created_at"] == "2027-01-15T08:00:00Z"
    clock.advance(3600)
    put_secret(gh, REPO, "TIMED", "v2")
    assert gh.get(f"{REPO}/TIMED").json()["updated_at"] == "2027-01-15T09:00:00Z"


def test_delete_is_204_then_404(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    put_secret(gh, REPO, "GONE_SOON", "x")
    assert gh.delete(f"{REPO}/GONE_SOON").status_code == 204
    assert gh.get(f"{REPO}/GONE_SOON").status_code == 404
    again = gh.delete(f"{REPO}/GONE_SOON")
    assert again.status_code == 404
    assert again.json()["message"] == "Not Found"
    assert api.secret_names("acme/app") == []


@pytest.mark.parametrize(
    "path",
    [
        "/repos/acme/nope/actions/secrets/public-key",
        "/repos/nobody/app/actions/secrets",
        "/repos/acme/app/actions/secrets/NEVER_SET",
        "/repos/acme/app/environments/qa/secrets/public-key",
        "/repos/acme/app/environments/production/secrets/NEVER_SET",
        "/repositories/999/environments/production/secrets",
        "/repositories/not-a-number/environments/production/secrets",
        "/orgs/nobody/actions/secrets/public-key",
        "/orgs/acme/actions/secrets/NEVER_SET",
        "/orgs/acme/actions/secrets/NEVER_SET/repositories",
        "/repos/acme/app/actions/secrets/public-key/",  # a trailing slash is 404 on GitHub too
        "/no/such/endpoint",
    ],
)
def test_unknown_things_are_github_404s(gh: httpx.Client, path: str) -> None:
    response = gh.get(path)
    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "Not Found"
    assert body["documentation_url"].startswith("https://docs.github.com/")


def test_owner_repo_and_org_names_are_case_insensitive(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    assert gh.get("/repos/ACME/App/actions/secrets/public-key").json()["key_id"] == api.public_key("acme/app")[0]
    assert gh.get("/orgs/Acme/actions/secrets/public-key").json()["key_id"] == api.public_key("org:acme")[0]
    assert gh.get("/repos/acme/app/environments/PRODUCTION/secrets/public-key").status_code == 200


# --------------------------------------------------------------------------- validation


def test_put_with_a_stale_or_wrong_key_id_is_422(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    key = gh.get(f"{REPO}/public-key").json()
    body = {"encrypted_value": encrypt(key["key"], "v"), "key_id": "1234567"}
    assert gh.put(f"{REPO}/WRONG_KEY", json=body).status_code == 422
    api.rotate_key("acme/app")
    stale = {"encrypted_value": encrypt(key["key"], "v"), "key_id": key["key_id"]}
    assert gh.put(f"{REPO}/WRONG_KEY", json=stale).status_code == 422
    assert put_secret(gh, REPO, "WRONG_KEY", "v").status_code == 201
    assert api.plaintext("acme/app", "WRONG_KEY") == "v"


def test_put_that_does_not_decrypt_is_422(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    repo_key = gh.get(f"{REPO}/public-key").json()
    org_key = gh.get(f"{ORG}/public-key").json()
    sealed_for_org = {"encrypted_value": encrypt(org_key["key"], "v"), "key_id": repo_key["key_id"]}
    assert gh.put(f"{REPO}/BAD", json=sealed_for_org).status_code == 422
    not_base64 = {"encrypted_value": "not base64!!", "key_id": repo_key["key_id"]}
    assert gh.put(f"{REPO}/BAD", json=not_base64).status_code == 422
    too_short = {"encrypted_value": b64encode(b"short").decode(), "key_id": repo_key["key_id"]}
    assert gh.put(f"{REPO}/BAD", json=too_short).status_code == 422
    assert api.secret_names("acme/app") == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"key_id": "1"}, 422, '"encrypted_value" wasn\'t supplied'),
        ({"encrypted_value": "AAAA"}, 422, '"key_id" wasn\'t supplied'),
        ({"encrypted_value": 5, "key_id": "1"}, 422, "is not a string"),
        (b"{not json", 400, "Problems parsing JSON"),
        (b"[1, 2]", 400, "Body should be a JSON object"),
    ],
)
def test_malformed_put_bodies(gh: httpx.Client, body: object, status: int, message: str) -> None:
    if isinstance(body, bytes):
        response = gh.put(f"{REPO}/MALFORMED", content=body, headers={"Content-Type": "application/json"})
    else:
        response = gh.put(f"{REPO}/MALFORMED", json=body)
    assert response.status_code == status
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    "name", ["1ABC", "WITH-DASH", "HAS SPACE", "DOT.TED", "GITHUB_TOKEN", "github_sha", "Github_Anything", "ÄPFEL"]
)
def test_invalid_secret_names_are_422(api: FakeGitHubAPI, gh: httpx.Client, name: str) -> None:
    for base in (REPO, ENV, ORG):
        extra = {"visibility": "all"} if base == ORG else {}
        response = put_secret(gh, base, name, "v", **extra)
        assert response.status_code == 422, (base, name)
        assert "docs.github.com" in response.json()["documentation_url"]
    assert api.secret_names("acme/app") == []


@pytest.mark.parametrize("name", ["_X", "a1", "Mixed_Case_9", "GITHUB", "MY_GITHUB_TOKEN", "_GITHUB_X"])
def test_valid_secret_names_are_accepted(api: FakeGitHubAPI, gh: httpx.Client, name: str) -> None:
    assert put_secret(gh, REPO, name, "v").status_code == 201
    assert api.secret_names("acme/app") == [name.upper()]


def test_values_up_to_48_kb_are_accepted_and_larger_ones_422(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    assert put_secret(gh, REPO, "BIG", "x" * 48 * 1024).status_code == 201
    assert len(api.plaintext("acme/app", "BIG")) == 48 * 1024
    too_big = put_secret(gh, REPO, "TOO_BIG", "x" * (48 * 1024 + 1))
    assert too_big.status_code == 422
    assert "48 KB" in too_big.json()["message"]
    assert api.secret_names("acme/app") == ["BIG"]


@pytest.mark.parametrize(
    ("scope", "base", "limit"),
    [("acme/app", REPO, 100), ("acme/app:production", ENV, 100), ("org:acme", ORG, 1000)],
)
def test_secret_count_limits(api: FakeGitHubAPI, gh: httpx.Client, scope: str, base: str, limit: int) -> None:
    for i in range(limit):
        api.set_secret(scope, f"S{i:04d}", "v")
    extra = {"visibility": "private"} if base == ORG else {}
    over = put_secret(gh, base, "ONE_TOO_MANY", "v", **extra)
    assert over.status_code == 422
    assert "limit" in over.json()["message"].lower()
    assert put_secret(gh, base, "S0000", "updated", **extra).status_code == 204  # updates still work
    assert len(api.secret_names(scope)) == limit
    with pytest.raises(ValueError):
        api.set_secret(scope, "ONE_TOO_MANY", "v")


# --------------------------------------------------------------------------- environment secrets


def test_environment_secrets_lifecycle(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    assert put_secret(gh, ENV, "DEPLOY_KEY", "prod-key").status_code == 201
    assert put_secret(gh, "/repos/acme/app/environments/staging/secrets", "DEPLOY_KEY", "stg-key").status_code == 201
    assert api.plaintext("acme/app:production", "DEPLOY_KEY") == "prod-key"
    assert api.plaintext("acme/app:staging", "DEPLOY_KEY") == "stg-key"
    assert api.secret_names("acme/app") == []  # environment secrets are not repository secrets
    listing = gh.get(ENV).json()
    assert listing["total_count"] == 1
    assert [s["name"] for s in listing["secrets"]] == ["DEPLOY_KEY"]
    assert put_secret(gh, ENV, "DEPLOY_KEY", "prod-key-2").status_code == 204
    assert gh.get(f"{ENV}/DEPLOY_KEY").json()["name"] == "DEPLOY_KEY"
    assert gh.delete(f"{ENV}/DEPLOY_KEY").status_code == 204
    assert gh.get(f"{ENV}/DEPLOY_KEY").status_code == 404


def test_environment_secrets_by_repository_id_share_the_same_store(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    legacy = "/repositories/101/environments/production/secrets"
    assert gh.get(f"{legacy}/public-key").json() == gh.get(f"{ENV}/public-key").json()
    assert put_secret(gh, legacy, "FROM_LEGACY", "old-path").status_code == 201
    assert gh.get(f"{ENV}/FROM_LEGACY").status_code == 200
    assert api.plaintext("acme/app:production", "FROM_LEGACY") == "old-path"
    assert [s["name"] for s in gh.get(legacy).json()["secrets"]] == ["FROM_LEGACY"]
    assert gh.delete(f"{legacy}/FROM_LEGACY").status_code == 204


def test_environment_names_with_slashes_are_url_encoded(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    api.add_environment("acme/app", "review/pr-7")
    base = "/repos/acme/app/environments/review%2Fpr-7/secrets"
    assert put_secret(gh, base, "PREVIEW_URL", "https://pr-7.example").status_code == 201
    assert api.plaintext("acme/app:review/pr-7", "PREVIEW_URL") == "https://pr-7.example"
    assert gh.get("/repos/acme/app/environments/review/pr-7/secrets/public-key").status_code == 404


# --------------------------------------------------------------------------- organization secrets


def test_org_secret_with_visibility_all(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    assert put_secret(gh, ORG, "NPM_TOKEN", "npm-123", visibility="all").status_code == 201
    assert api.plaintext("org:acme", "NPM_TOKEN") == "npm-123"
    body = gh.get(f"{ORG}/NPM_TOKEN").json()
    assert body["visibility"] == "all"
    assert "selected_repositories_url" not in body
    assert gh.get(ORG).json()["secrets"][0]["visibility"] == "all"


def test_org_secret_with_selected_repositories(server: GitHubAPIServer, api: FakeGitHubAPI, gh: httpx.Client) -> None:
    response = put_secret(gh, ORG, "DEPLOY_TOKEN", "dt", visibility="selected", selected_repository_ids=[102, 101])
    assert response.status_code == 201
    body = gh.get(f"{ORG}/DEPLOY_TOKEN").json()
    assert body["visibility"] == "selected"
    assert body["selected_repositories_url"] == f"{server.url}{ORG}/DEPLOY_TOKEN/repositories"
    repos = gh.get(body["selected_repositories_url"]).json()
    assert repos["total_count"] == 2
    assert [r["id"] for r in repos["repositories"]] == [101, 102]
    assert repos["repositories"][0]["full_name"] == "acme/app"
    info = api.secret(OrgScope("acme"), "DEPLOY_TOKEN")
    assert info == SecretInfo("DEPLOY_TOKEN", info.created_at, info.updated_at, "selected", (101, 102))
    # An update that changes the visibility drops the selection.
    assert put_secret(gh, ORG, "DEPLOY_TOKEN", "dt2", visibility="private").status_code == 204
    assert api.secret("org:acme", "DEPLOY_TOKEN").selected_repository_ids == ()
    assert api.secret("org:acme", "DEPLOY_TOKEN").visibility == "private"


@pytest.mark.parametrize(
    "extra",
    [
        {},  # visibility missing
        {"visibility": "public"},
        {"visibility": "selected"},
        {"visibility": "selected", "selected_repository_ids": []},
        {"visibility": "selected", "selected_repository_ids": ["101"]},
        {"visibility": "all", "selected_repository_ids": [101]},
        {"visibility": "selected", "selected_repository_ids": [201]},  # octo/solo is not acme's
        {"visibility": "selected", "selected_repository_ids": [99999]},
    ],
)
def test_org_secret_visibility_validation(api: FakeGitHubAPI, gh: httpx.Client, extra: dict[str, object]) -> None:
    assert put_secret(gh, ORG, "ORG_SECRET", "v", **extra).status_code == 422
    assert api.secret_names("org:acme") == []


def test_org_secret_selected_repositories_endpoints(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    put_secret(gh, ORG, "SHARED", "v", visibility="selected", selected_repository_ids=[101])
    url = f"{ORG}/SHARED/repositories"
    assert gh.put(url, json={"selected_repository_ids": [102]}).status_code == 204
    assert [r["id"] for r in gh.get(url).json()["repositories"]] == [102]
    assert gh.put(f"{url}/101").status_code == 204
    assert gh.delete(f"{url}/102").status_code == 204
    assert api.secret("org:acme", "SHARED").selected_repository_ids == (101,)
    assert gh.put(url, json={"selected_repository_ids": [201]}).status_code == 422
    assert gh.put(url, json={}).status_code == 422
    put_secret(gh, ORG, "EVERYWHERE", "v", visibility="all")
    for response in (
        gh.put(f"{ORG}/EVERYWHERE/repositories", json={"selected_repository_ids": [101]}),
        gh.put(f"{ORG}/EVERYWHERE/repositories/101"),
        gh.delete(f"{ORG}/EVERYWHERE/repositories/101"),
    ):
        assert response.status_code == 409


# --------------------------------------------------------------------------- pagination


def test_pagination_over_150_org_secrets(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    api.secondary_limit = 1000  # 150 writes in a few seconds would trip GitHub's 80/minute
    names = [f"SECRET_{i:03d}" for i in range(150)]
    key = gh.get(f"{ORG}/public-key").json()
    for name in names:
        body = {"encrypted_value": encrypt(key["key"], name.lower()), "key_id": key["key_id"], "visibility": "all"}
        assert gh.put(f"{ORG}/{name}", json=body).status_code == 201
    assert api.plaintext("org:acme", "SECRET_149") == "secret_149"

    seen: list[str] = []
    pages = 0
    url: str | None = ORG
    while url:
        response = gh.get(url)
        pages += 1
        assert response.json()["total_count"] == 150
        seen += [s["name"] for s in response.json()["secrets"]]
        links = response.links
        if pages == 1:
            assert set(links) == {"next", "last"}
            assert links["last"]["url"].endswith("page=5")
        elif links.get("next"):
            assert set(links) == {"prev", "next", "last", "first"}
        else:
            assert set(links) == {"prev", "first"}
        url = links.get("next", {}).get("url")
    assert pages == 5  # 30 per page by default
    assert seen == sorted(names)

    first = gh.get(ORG, params={"per_page": 100})
    assert len(first.json()["secrets"]) == 100
    assert "per_page=100" in first.links["next"]["url"] and first.links["last"]["url"].endswith("page=2")
    second = gh.get(first.links["next"]["url"])
    assert len(second.json()["secrets"]) == 50
    assert "next" not in second.links
    assert len(gh.get(ORG, params={"per_page": 500}).json()["secrets"]) == 100  # capped at 100
    assert gh.get(ORG, params={"per_page": 100, "page": 3}).json()["secrets"] == []


def test_single_page_lists_have_no_link_header(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    empty = gh.get(REPO)
    assert empty.json() == {"total_count": 0, "secrets": []}
    assert "link" not in empty.headers
    for i in range(3):
        api.set_secret("acme/app", f"S{i}", "v")
    assert "link" not in gh.get(REPO).headers
    small_pages = gh.get(REPO, params={"per_page": 2})
    assert [s["name"] for s in small_pages.json()["secrets"]] == ["S0", "S1"]
    assert small_pages.links["next"]["url"].endswith("per_page=2&page=2")


# --------------------------------------------------------------------------- authentication and permissions


def test_missing_unknown_and_expired_tokens_are_401(api: FakeGitHubAPI, connect: Callable[..., httpx.Client]) -> None:
    anonymous = connect(token=None).get(f"{REPO}/public-key")
    assert anonymous.status_code == 401
    assert anonymous.json()["message"] == "Requires authentication"
    for client in (connect(token="ghp_unknown"), connect(token=EXPIRED), connect(token=CLASSIC, scheme="Basic")):
        response = client.get(f"{REPO}/public-key")
        assert response.status_code == 401
        assert response.json() == {
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        }
    live = connect(token=CLASSIC_REPO)
    assert live.get(f"{REPO}/public-key").status_code == 200
    api.expire_token(CLASSIC_REPO)
    assert live.get(f"{REPO}/public-key").status_code == 401


def test_token_and_bearer_schemes_are_both_accepted(connect: Callable[..., httpx.Client]) -> None:
    assert connect(scheme="token").get(f"{REPO}/public-key").status_code == 200
    assert connect(scheme="Bearer").get(f"{REPO}/public-key").status_code == 200


def test_classic_token_without_repo_scope_is_403(connect: Callable[..., httpx.Client]) -> None:
    client = connect(token=CLASSIC_NONE)
    for response in (client.get(f"{REPO}/public-key"), client.get(ENV), put_secret_raw(client, f"{REPO}/X")):
        assert response.status_code == 403
        assert response.json()["message"] == "Resource not accessible by personal access token"
        assert response.headers["x-accepted-oauth-scopes"] == "repo"
        assert response.headers["x-oauth-scopes"] == "read:user"


def put_secret_raw(client: httpx.Client, url: str) -> httpx.Response:
    return client.put(url, json={"encrypted_value": "AAAA", "key_id": "1"})


def test_classic_token_needs_admin_org_for_org_secrets(connect: Callable[..., httpx.Client]) -> None:
    response = connect(token=CLASSIC_REPO).get(f"{ORG}/public-key")
    assert response.status_code == 403
    assert response.json()["message"] == "Resource not accessible by personal access token"
    assert response.headers["x-accepted-oauth-scopes"] == "admin:org"
    assert response.headers["x-oauth-scopes"] == "repo"
    full = connect(token=CLASSIC).get(f"{ORG}/public-key")
    assert full.status_code == 200
    assert full.headers["x-oauth-scopes"] == "admin:org, repo"


def test_fine_grained_read_only_token_can_read_but_not_write(
    api: FakeGitHubAPI, connect: Callable[..., httpx.Client]
) -> None:
    api.set_secret("acme/app", "EXISTING", "v")
    client = connect(token=FINE_RO)
    assert client.get(f"{REPO}/public-key").status_code == 200
    assert client.get(REPO).status_code == 200
    assert client.get(f"{REPO}/EXISTING").status_code == 200
    for response in (put_secret(client, REPO, "NEW", "v"), client.delete(f"{REPO}/EXISTING")):
        assert response.status_code == 403
        assert response.json()["message"] == "Resource not accessible by personal access token"
        assert response.headers["x-accepted-github-permissions"] == "secrets=write"
        assert "x-oauth-scopes" not in response.headers
    assert client.get(f"{ORG}/public-key").status_code == 200  # `secrets` stands in for organization_secrets
    assert put_secret(client, ORG, "NEW", "v", visibility="all").status_code == 403
    assert api.secret_names("acme/app") == ["EXISTING"]


def test_fine_grained_and_app_tokens_with_write_permission(
    api: FakeGitHubAPI, connect: Callable[..., httpx.Client]
) -> None:
    fine = connect(token=FINE_RW)
    assert put_secret(fine, REPO, "FROM_PAT", "a").status_code == 201
    assert put_secret(fine, ORG, "FROM_PAT", "b", visibility="private").status_code == 201
    app = connect(token=APP_RW)
    assert put_secret(app, ENV, "FROM_APP", "c").status_code == 201
    assert put_secret(app, ORG, "FROM_APP", "d", visibility="all").status_code == 201  # `secrets` stands in
    assert api.plaintext("acme/app", "FROM_PAT") == "a"
    assert api.plaintext("acme/app:production", "FROM_APP") == "c"


def test_app_token_without_permission_is_403_by_integration(connect: Callable[..., httpx.Client]) -> None:
    client = connect(token=APP_NONE)
    for response in (client.get(f"{REPO}/public-key"), client.get(ORG)):
        assert response.status_code == 403
        assert response.json()["message"] == "Resource not accessible by integration"


def test_unknown_resources_are_404_before_permissions(connect: Callable[..., httpx.Client]) -> None:
    assert connect(token=CLASSIC_NONE).get("/repos/acme/nope/actions/secrets").status_code == 404


# --------------------------------------------------------------------------- doctor endpoints


def test_get_user(connect: Callable[..., httpx.Client]) -> None:
    classic = connect(token=CLASSIC).get("/user")
    assert classic.status_code == 200
    assert classic.json()["login"] == "deployer"
    assert classic.headers["x-oauth-scopes"] == "admin:org, repo"
    fine = connect(token=FINE_RO).get("/user")
    assert fine.status_code == 200
    assert fine.json()["login"] == "strongroom-bot"
    assert "x-oauth-scopes" not in fine.headers
    app = connect(token=APP_RW).get("/user")
    assert app.status_code == 403
    assert app.json()["message"] == "Resource not accessible by integration"


def test_get_repository(connect: Callable[..., httpx.Client]) -> None:
    body = connect().get("/repos/acme/app").json()
    assert (body["id"], body["full_name"], body["private"]) == (101, "acme/app", True)
    assert connect().get("/repos/acme/nope").status_code == 404
    assert connect(token=CLASSIC_NONE).get("/repos/acme/app").status_code == 404  # private, no `repo` scope
    assert connect(token=CLASSIC_NONE).get("/repos/octo/solo").status_code == 200  # public
    assert connect(token=APP_RW).get("/repos/acme/app").status_code == 200


def test_rate_limit_endpoint_reports_without_counting(connect: Callable[..., httpx.Client]) -> None:
    client = connect()
    client.get(f"{REPO}/public-key")
    first = client.get("/rate_limit").json()
    second = client.get("/rate_limit").json()
    assert first == second
    assert first["resources"]["core"]["limit"] == 5000
    assert first["resources"]["core"]["used"] == 1
    assert first["rate"] == first["resources"]["core"]
    anonymous = connect(token=None).get("/rate_limit")
    assert anonymous.status_code == 200
    assert anonymous.json()["resources"]["core"]["limit"] == 60


# --------------------------------------------------------------------------- rate limits


def test_every_response_carries_rate_limit_headers(connect: Callable[..., httpx.Client]) -> None:
    client = connect()
    responses = [
        client.get(f"{REPO}/public-key"),  # 200
        client.get(f"{REPO}/NOPE"),  # 404
        client.put(f"{REPO}/BAD-NAME", json={}),  # 422
        connect(token="ghp_unknown").get(REPO),  # 401
        connect(token=CLASSIC_NONE).get(REPO),  # 403
    ]
    for response in responses:
        for header in RATE_HEADERS:
            assert response.headers[header].isdigit(), (response.status_code, header)
        assert response.headers["x-ratelimit-resource"] == "core"
        assert int(response.headers["x-ratelimit-reset"]) > time.time()
    used = [int(r.headers["x-ratelimit-used"]) for r in responses[:3]]
    assert used == [1, 2, 3]
    assert responses[2].headers["x-ratelimit-remaining"] == "4997"


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit(
    api: FakeGitHubAPI, connect: Callable[..., httpx.Client], clock: Clock, status: int
) -> None:
    api.rate_limit_status = status
    api.add_token("ghp_small", scopes={"repo"}, rate_limit=3)
    client = connect(token="ghp_small")
    remaining = [client.get(f"{REPO}/public-key").headers["x-ratelimit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    over = client.get(f"{REPO}/public-key")
    assert over.status_code == status
    assert over.headers["x-ratelimit-remaining"] == "0"
    assert over.json()["message"].startswith("API rate limit exceeded")
    assert int(over.headers["x-ratelimit-reset"]) == int(clock.now) + 3600
    assert client.get("/rate_limit").json()["resources"]["core"]["remaining"] == 0
    assert connect().get(f"{REPO}/public-key").status_code == 200  # per token
    clock.advance(3600)
    again = client.get(f"{REPO}/public-key")
    assert again.status_code == 200
    assert again.headers["x-ratelimit-used"] == "1"


def test_primary_rate_limit_default_is_5000(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    assert gh.get(REPO).headers["x-ratelimit-limit"] == "5000"
    api.rate_limit = 1
    assert gh.get(REPO).status_code == 403


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_on_content_creating_requests(
    api: FakeGitHubAPI, gh: httpx.Client, clock: Clock, status: int
) -> None:
    assert api.secondary_limit == 80
    api.secondary_limit = 3
    api.secondary_status = status
    assert [put_secret(gh, REPO, f"S{i}", "v").status_code for i in range(3)] == [201, 201, 201]
    clock.advance(10)
    over = put_secret(gh, REPO, "S3", "v")
    assert over.status_code == status
    assert over.headers["retry-after"] == "50"
    assert over.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert gh.delete(f"{REPO}/S0").status_code == status  # DELETE counts too
    assert gh.get(f"{REPO}/S0").status_code == 200  # reads do not
    clock.advance(50)
    assert put_secret(gh, REPO, "S3", "v").status_code == 201
    assert api.secret_names("acme/app") == ["S0", "S1", "S2", "S3"]


def test_secondary_rate_limit_fixed_retry_after(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    api.secondary_limit = 1
    api.secondary_retry_after = 7
    put_secret(gh, REPO, "ONE", "v")
    assert put_secret(gh, REPO, "TWO", "v").headers["retry-after"] == "7"
    api.reset_rate_limits()
    assert put_secret(gh, REPO, "TWO", "v").status_code == 201


def test_api_version_header(server: GitHubAPIServer, connect: Callable[..., httpx.Client]) -> None:
    response = connect(**{"X-GitHub-Api-Version": "2026-03-10"}).get(REPO)
    assert response.status_code == 200
    assert response.headers["x-github-api-version-selected"] == "2026-03-10"
    assert connect(**{"X-GitHub-Api-Version": "1999-01-01"}).get(REPO).status_code == 400
    bare = httpx.get(f"{server.url}{REPO}", headers={"Authorization": f"token {CLASSIC}"})
    assert bare.status_code == 200
    assert bare.headers["x-github-api-version-selected"] == "2022-11-28"
    assert bare.headers["content-type"].startswith("application/json")


# --------------------------------------------------------------------------- injected failures


def test_injected_failure_then_success(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    api.inject_failure("PUT", r"/actions/secrets/FLAKY$", 502)
    assert put_secret(gh, REPO, "FLAKY", "v").status_code == 502
    assert api.secret_names("acme/app") == []  # refused before it was handled
    assert put_secret(gh, REPO, "FLAKY", "v").status_code == 201


def test_injected_failure_times_method_and_retry_after(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    api.inject_failure(None, r"/public-key$", 503, times=2)
    assert [gh.get(f"{REPO}/public-key").status_code for _ in range(3)] == [503, 503, 200]
    api.inject_failure("GET", r"^/repos/acme/app/actions/secrets$", 429, retry_after=3)
    throttled = gh.get(REPO)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "3"
    assert "x-ratelimit-limit" in throttled.headers
    assert gh.get(REPO).status_code == 200
    api.inject_failure("GET", r"/user$", 500, times=None)
    assert [gh.get("/user").status_code for _ in range(3)] == [500, 500, 500]
    api.clear_failures()
    assert gh.get("/user").status_code == 200


def test_injected_failure_after_the_write_was_applied(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    api.inject_failure("PUT", r"/LOST_RESPONSE$", 500, after=True)
    assert put_secret(gh, REPO, "LOST_RESPONSE", "applied").status_code == 500
    assert api.plaintext("acme/app", "LOST_RESPONSE") == "applied"
    assert put_secret(gh, REPO, "LOST_RESPONSE", "applied").status_code == 204


# --------------------------------------------------------------------------- recorded requests


def test_requests_are_recorded_for_counting(server: GitHubAPIServer, api: FakeGitHubAPI, gh: httpx.Client) -> None:
    key = gh.get(f"{REPO}/public-key").json()
    for name in ("A", "B"):
        gh.put(f"{REPO}/{name}", json={"encrypted_value": encrypt(key["key"], name), "key_id": key["key_id"]})
    gh.get(REPO, params={"per_page": 100})
    assert (
        server.requests
        == api.requests
        == [
            RecordedRequest("GET", "/repos/acme/app/actions/secrets/public-key", ""),
            RecordedRequest("PUT", "/repos/acme/app/actions/secrets/A", ""),
            RecordedRequest("PUT", "/repos/acme/app/actions/secrets/B", ""),
            RecordedRequest("GET", "/repos/acme/app/actions/secrets", "per_page=100"),
        ]
    )
    assert api.count_requests("GET", r"/public-key$") == 1
    assert api.count_requests("put") == 2
    assert api.count_requests(path_regex=r"^/orgs/") == 0
    method, _path, query = api.requests[-1]
    assert (method, query) == ("GET", "per_page=100")
    api.clear_requests()
    assert server.requests == []


def test_concurrent_writes(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    key = gh.get(f"{REPO}/public-key").json()

    def write(i: int) -> int:
        body = {"encrypted_value": encrypt(key["key"], f"value-{i}"), "key_id": key["key_id"]}
        return gh.put(f"{REPO}/C{i:02d}", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(write, range(24))) == [201] * 24
    assert all(api.plaintext("acme/app", f"C{i:02d}") == f"value-{i}" for i in range(24))


# --------------------------------------------------------------------------- drift helpers and the Python API


def test_touch_simulates_an_edit_in_the_ui(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    put_secret(gh, REPO, "EDITED", "from-strongroom")
    before = gh.get(f"{REPO}/EDITED").json()
    info = api.touch("acme/app", "EDITED")
    after = gh.get(f"{REPO}/EDITED").json()
    assert after["updated_at"] == info.updated_at > before["updated_at"]
    assert after["created_at"] == before["created_at"]
    assert api.plaintext("acme/app", "EDITED") != "from-strongroom"
    api.touch("acme/app", "EDITED", "chosen")
    assert api.plaintext("acme/app", "EDITED") == "chosen"
    with pytest.raises(KeyError):
        api.touch("acme/app", "NEVER_SET")


def test_delete_simulates_a_deletion_in_the_ui(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    put_secret(gh, ENV, "REMOVED", "v")
    api.delete("acme/app:production", "removed")
    assert gh.get(f"{ENV}/REMOVED").status_code == 404
    assert gh.get(ENV).json()["total_count"] == 0
    with pytest.raises(KeyError):
        api.delete("acme/app:production", "REMOVED")
    with pytest.raises(KeyError):
        api.plaintext("acme/app:production", "REMOVED")


def test_set_secret_seeds_existing_secrets(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    info = api.set_secret("org:acme", "legacy", "old", visibility="selected", selected_repository_ids=[102])
    assert (info.name, info.visibility, info.selected_repository_ids) == ("LEGACY", "selected", (102,))
    assert gh.get(f"{ORG}/LEGACY").json()["visibility"] == "selected"
    assert api.set_secret("acme/app", "PLAIN", b"bytes").visibility is None
    with pytest.raises(ValueError):
        api.set_secret("acme/app", "GITHUB_X", "v")
    with pytest.raises(ValueError):
        api.set_secret("acme/app", "VIS", "v", visibility="all")
    with pytest.raises(ValueError):
        api.set_secret("org:acme", "SEL", "v", visibility="selected")
    with pytest.raises(ValueError):
        api.set_secret("org:acme", "SEL", "v", visibility="selected", selected_repository_ids=[201])


def test_scopes_are_parsed_from_strings_or_objects(api: FakeGitHubAPI) -> None:
    api.add_environment("acme/app", "a:b")
    api.set_secret("acme/app:a:b", "X", "1")
    assert api.plaintext(EnvironmentScope("acme/app", "a:b"), "X") == "1"
    assert str(EnvironmentScope("acme/app", "a:b")) == "acme/app:a:b"
    assert str(OrgScope("acme")) == "org:acme" and str(RepoScope("acme/app")) == "acme/app"
    for bad in ("acme", "acme/", "/app", "a/b/c", "acme/app:"):
        with pytest.raises(ValueError):
            api.secret_names(bad)
    with pytest.raises(KeyError):
        api.secret_names("acme/missing")
    with pytest.raises(KeyError):
        api.secret_names("org:missing")
    with pytest.raises(KeyError):
        api.secret_names("acme/app:missing")


def test_setup_errors(api: FakeGitHubAPI) -> None:
    with pytest.raises(ValueError):
        api.add_repository("acme/app")
    with pytest.raises(ValueError):
        api.add_repository("acme/other", id=101)
    with pytest.raises(ValueError):
        api.add_repository("no-slash")
    with pytest.raises(ValueError):
        api.add_organization("acme")
    with pytest.raises(ValueError):
        api.add_environment("acme/app", "Production")  # environment names are case-insensitive
    with pytest.raises(ValueError):
        api.add_token("t", kind="oauth")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        api.add_token("t", kind="fine-grained", permissions={"secrets": "admin"})
    assert api.add_repository("acme/auto") > 0


def test_values_and_tokens_never_appear_in_reprs(api: FakeGitHubAPI, gh: httpx.Client) -> None:
    put_secret(gh, REPO, "CANARY", "CANARY-VALUE-0123456789")
    api.set_secret("org:acme", "CANARY", "CANARY-VALUE-0123456789")
    shown = repr(vars(api)) + repr(api.secret("acme/app", "CANARY")) + repr(api.requests)
    assert "CANARY-VALUE" not in shown
    assert "CANARY" in shown  # the name is fine
