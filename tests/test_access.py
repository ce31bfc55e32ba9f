"""Tokens, roles and scopes: creation, authentication, expiry, revocation, and the CLI."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest

from strongroom.access import ROLES, Principal, parse_duration, parse_token, role_allows
from strongroom.cli.context import AppContext
from strongroom.errors import InvalidInputError, NotFoundError
from strongroom.service import Service


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path, clock) -> Service:
    environ = {
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "STRONGROOM_ACTOR": "admin-user",
    }
    app = AppContext(environ)
    store = app.open_store(create=True)
    svc = Service(store, load_keyring=lambda s: app.key_provider(s).load(), actor="admin-user", clock=clock)
    svc.initialise_keys()
    yield svc
    store.close()


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("reader", {"read"}),
        ("opener", {"read", "open"}),
        ("editor", {"read", "open", "write"}),
        ("admin", {"read", "open", "write", "delete", "admin"}),
    ],
)
def test_each_role_allows_exactly_its_permissions(role, allowed):
    for permission in ("read", "open", "write", "delete", "admin"):
        assert role_allows(role, permission) == (permission in allowed), (role, permission)


def test_unknown_role_allows_nothing():
    assert not role_allows("superuser", "read")


def test_scopes_limit_environments():
    p = Principal("ci", "opener", ("aphiria.com/Prev*", "other/one"))
    assert p.may("open", "aphiria.com/Preview")
    assert not p.may("open", "aphiria.com/Production")
    assert p.may("read", "other/one")
    assert not p.may("write", "aphiria.com/Preview")
    assert Principal("all", "reader").may("read", "any/where")
    assert Principal("me", "reader", local=True).may("delete", "x/y")


def test_created_token_authenticates_and_is_stored_only_as_a_hash(service):
    record, token = service.create_token("ci-deploy", "opener", ["aphiria.com/*"], timedelta(days=90))
    assert token.startswith(f"sr_{record.token_id}_")
    secret_part = parse_token(token)[1]
    stored = service.list_tokens()
    assert [t.token_id for t in stored] == [record.token_id]
    assert secret_part not in repr(stored[0]) and secret_part not in stored[0].secret_hash
    principal = service.authenticate(token)
    assert principal == Principal("ci-deploy", "opener", ("aphiria.com/*",), record.token_id)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "sr_" + "a" * 16 + t[19:],  # unknown id
        lambda t: t.replace("sr_", "xx_"),  # malformed
        lambda t: "",
        lambda t: t + "extra",
    ],
)
def test_wrong_or_malformed_tokens_do_not_authenticate(service, mangle):
    _record, token = service.create_token("ci", "reader")
    assert service.authenticate(mangle(token)) is None


def test_expired_and_revoked_tokens_do_not_authenticate(service, clock):
    _rec_a, token_a = service.create_token("short", "reader", expires_in=timedelta(hours=1))
    rec_b, token_b = service.create_token("long", "reader")
    assert service.authenticate(token_a) is not None
    clock.now += timedelta(hours=1, seconds=1)
    assert service.authenticate(token_a) is None
    service.revoke_token(rec_b.token_id)
    assert service.authenticate(token_b) is None
    with pytest.raises(NotFoundError):
        service.revoke_token("nosuchtoken")


@pytest.mark.parametrize(
    ("name", "role", "scopes"),
    [("", "reader", []), ("ok", "root", []), ("ok", "reader", ["no-slash"]), ("ok", "reader", ["a/b/c"])],
)
def test_bad_token_requests_are_refused_and_change_nothing(service, name, role, scopes):
    with pytest.raises(InvalidInputError):
        service.create_token(name, role, scopes)
    assert service.list_tokens() == []


def test_token_creation_and_revocation_are_audited_without_the_secret(service):
    record, token = service.create_token("ci", "admin")
    service.revoke_token(record.token_id)
    records = service.store.list_audit()
    actions = [r.event.action for r in records]
    assert actions[-2:] == ["token.create", "token.revoke"]
    secret_part = parse_token(token)[1]
    assert all(secret_part not in str(r.event) for r in records)


def test_parse_duration():
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    for bad in ("", "0d", "ninety days", "-1d"):
        with pytest.raises(InvalidInputError):
            parse_duration(bad)


def test_cli_token_commands(run_cli):
    assert run_cli("init").exit_code == 0
    created = run_cli(
        "token", "create", "--name", "ci-deploy", "--role", "editor", "--scope", "a/*", "--expires", "30d"
    )
    assert created.exit_code == 0, created.stderr
    token = created.stdout.strip()
    assert parse_token(token) is not None
    listed = run_cli("token", "ls")
    assert "ci-deploy" in listed.stdout and "editor" in listed.stdout and "a/*" in listed.stdout
    assert parse_token(token)[1] not in listed.stdout
    token_id = parse_token(token)[0]
    assert run_cli("token", "revoke", token_id).exit_code == 0
    assert "revoked" in run_cli("token", "ls").stdout
    bad = run_cli("token", "create", "--name", "x", "--role", "root")
    assert bad.exit_code == 2
    missing = run_cli("token", "revoke", "nope")
    assert missing.exit_code == 1 and "error:" in missing.stderr
    assert set(ROLES) == {"reader", "opener", "editor", "admin"}
