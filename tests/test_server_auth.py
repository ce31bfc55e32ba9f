"""Authentication over real HTTP: 401 vs 403, audited failures, the per-address limit, scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from strongroom.access import parse_token
from strongroom.model import EnvRef
from strongroom.server.auth import FailureLimiter, parse_authorization
from strongroom.server.testing import Harness, running_server

LIST = "/api/esc/environments/default"
ENV = "/api/esc/environments/default/team-a/app"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_server(tmp_path_factory.mktemp("auth") / "home", auth_failure_limit=10_000) as h:
        svc = h.service()
        svc.create_environment(EnvRef("team-a", "app"), "values:\n  a: 1\n")
        svc.create_environment(EnvRef("team-b", "app"), "values:\n  b: 1\n")
        yield h


def failures(harness: Harness) -> list[dict[str, str]]:
    return [dict(r.event.details) for r in harness.store.list_audit(action="auth.failed")]


def test_no_token_is_401_with_a_challenge(harness: Harness):
    response = harness.client().get(LIST)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["code"] == 401 and "authentication required" in body["message"]
    assert set(body) == {"code", "message"}


@pytest.mark.parametrize("scheme", ["token", "Bearer", "bearer"])
def test_token_and_bearer_schemes_are_accepted(harness: Harness, scheme: str):
    token = harness.token(f"reader-{scheme}", "reader")
    assert harness.client(token, scheme=scheme).get(LIST).status_code == 200


def test_every_bad_token_gets_the_same_answer(harness: Harness):
    real = harness.token("real", "reader")
    token_id, secret = parse_token(real)  # type: ignore[misc]
    wrong_secret = f"sr_{token_id}_{'A' * len(secret)}"  # a known id: the hash comparison runs
    unknown_id = f"sr_{'a' * 16}_{secret}"  # an unknown id: compared against a dummy hash
    answers = []
    for bad in (wrong_secret, unknown_id, "sr_malformed", "x" * 300):
        response = harness.client(bad).get(LIST)
        assert response.status_code == 401
        answers.append(response.json())
    assert all(a == answers[0] for a in answers)
    response = harness.client(real, scheme="Basic").get(LIST)
    assert response.status_code == 401 and response.json() == answers[0]


def test_failures_are_audited_without_the_token(harness: Harness):
    real = harness.token("audited", "reader")
    token_id, secret = parse_token(real)  # type: ignore[misc]
    harness.client(f"sr_{token_id}_{'B' * len(secret)}").get(LIST)
    records = [r for r in harness.store.list_audit(action="auth.failed") if dict(r.event.details).get("token_id")]
    last = records[-1]
    assert last.event.outcome == "denied"
    assert last.event.client == "127.0.0.1"
    assert dict(last.event.details)["token_id"] == token_id
    assert dict(last.event.details)["reason"] == "rejected"
    assert all(secret not in v and "B" * 20 not in v for v in dict(last.event.details).values())


def test_expired_and_revoked_tokens_are_401(harness: Harness):
    expired = harness.token("expired", "admin", expires_in=timedelta(seconds=-1))
    assert harness.client(expired).get(LIST).status_code == 401
    revoked = harness.token("revoked", "admin")
    client = harness.client(revoked)
    assert client.get(LIST).status_code == 200
    token_id = parse_token(revoked)[0]  # type: ignore[index]
    assert harness.client(harness.token("revoker", "admin")).delete(f"/api/v1/tokens/{token_id}").status_code == 204
    assert client.get(LIST).status_code == 401


def test_a_valid_token_without_the_right_is_403(harness: Harness):
    reader = harness.token("just-reads", "reader")
    response = harness.client(reader).delete(ENV)
    assert response.status_code == 403
    assert response.json()["code"] == 403
    denied = harness.store.list_audit(action="denied.delete")
    assert denied and denied[-1].event.actor == "just-reads" and denied[-1].event.outcome == "denied"


def test_out_of_scope_403_is_identical_whether_or_not_the_environment_exists(harness: Harness):
    scoped = harness.client(harness.token("scoped", "admin", scopes=("team-a/*",)))
    assert scoped.get(ENV).status_code == 200
    existing = scoped.get("/api/esc/environments/default/team-b/app")
    missing = scoped.get("/api/esc/environments/default/team-b/nothing-here")
    assert existing.status_code == missing.status_code == 403
    normalise = lambda r: r.json()["message"].replace("team-b/app", "X").replace("team-b/nothing-here", "X")  # noqa: E731
    assert normalise(existing) == normalise(missing)
    assert set(existing.json()) == set(missing.json()) == {"code", "message"}
    for method, suffix in (("GET", "/decrypt"), ("POST", "/open"), ("GET", "/versions"), ("GET", "/tags")):
        a = scoped.request(method, f"/api/esc/environments/default/team-b/app{suffix}")
        b = scoped.request(method, f"/api/esc/environments/default/team-b/nothing-here{suffix}")
        assert a.status_code == b.status_code == 403, suffix
    listed = scoped.get(LIST).json()["environments"]
    assert {(e["project"], e["name"]) for e in listed} == {("team-a", "app")}


def test_rate_limit_after_repeated_failures(tmp_path):
    with running_server(tmp_path / "home", auth_failure_limit=3, auth_failure_window=timedelta(minutes=1)) as h:
        good = h.token("good", "reader")
        bad = h.client("sr_wrong")
        for _ in range(3):
            assert bad.get(LIST).status_code == 401
        limited = bad.get(LIST)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["code"] == 429
        # The address is locked out, whatever it sends, until the window has passed.
        assert h.client(good).get(LIST).status_code == 429
        assert len(failures(h)) == 3
        assert h.client().get("/healthz").status_code == 200


def test_failure_limiter_window():
    now = [0.0]
    limiter = FailureLimiter(2, 60.0, clock=lambda: now[0], max_clients=2)
    limiter.fail("a")
    assert limiter.retry_after("a") is None
    limiter.fail("a")
    assert limiter.retry_after("a") == 60
    now[0] = 30.0
    assert limiter.retry_after("a") == 30
    now[0] = 60.5
    assert limiter.retry_after("a") is None
    for client in ("b", "c", "d"):
        limiter.fail(client)
    assert limiter.retry_after("a") is None  # memory stays bounded: the oldest addresses go


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (None, "missing")),
        ("", (None, "missing")),
        ("token abc", ("abc", "rejected")),
        ("Bearer  abc ", ("abc", "rejected")),
        ("Basic abc", (None, "malformed")),
        ("token", (None, "malformed")),
    ],
)
def test_parse_authorization(header, expected):
    assert parse_authorization(header) == expected


def test_unauthenticated_requests_reach_no_route_code(harness: Harness):
    before = harness.snapshot()
    response = httpx.post(f"{harness.url}{LIST}", json={"project": "x", "name": "y"})
    assert response.status_code == 401
    assert harness.snapshot() == before
