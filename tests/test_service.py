"""The service layer over a real SQLite store and an environment-variable master key."""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from strongroom.cli.context import AppContext
from strongroom.definition import SECRET_FN, parse_definition
from strongroom.errors import (
    AlreadyExistsError,
    ConflictError,
    DecryptionError,
    EnvironmentNotFoundError,
    InvalidInputError,
    InvalidNameError,
    KeyUnavailableError,
    PathError,
    RevisionNotFoundError,
    TagNotFoundError,
    TooLargeError,
)
from strongroom.model import MAX_VALUE_BYTES, EnvRef, RevisionRef, Secret
from strongroom.service import Service, looks_like_credential, parse_value

ENV = EnvRef("aphiria.com", "Preview")
OTHER = EnvRef("aphiria.com", "Production")


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def latest(env: EnvRef = ENV) -> RevisionRef:
    return RevisionRef(env)


def at(number: int | str, env: EnvRef = ENV) -> RevisionRef:
    return RevisionRef(env, number)


def tokens(definition: str) -> list[str]:
    """Every ciphertext token in a stored definition, in document order."""
    doc = parse_definition(definition, "test")
    return [str(node[SECRET_FN]["ciphertext"]) for _path, node in doc.secret_nodes()]


@pytest.fixture
def master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


@pytest.fixture
def environ(tmp_path, master_key) -> dict[str, str]:
    return {
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_MASTER_KEY": master_key,
        "STRONGROOM_ACTOR": "tester",
    }


@pytest.fixture
def make_service(environ) -> Iterator[Callable[[], Service]]:
    """Build a Service the way the CLI does (AppContext), each with its own connection."""
    apps: list[AppContext] = []

    def make() -> Service:
        app = AppContext(environ)
        apps.append(app)
        return app.service()

    AppContext(environ).open_store(create=True).close()  # what `strongroom init` does first
    yield make
    for app in apps:
        app.close()


@pytest.fixture
def service(make_service) -> Service:
    svc = make_service()
    svc.initialise_keys()
    return svc


@pytest.fixture
def env(service) -> EnvRef:
    service.create_environment(ENV)
    return ENV


# --------------------------------------------------------------------------- create, read, set, remove


def test_create_read_set_remove(service):
    rev = service.create_environment(ENV, "values:\n  a: 1\n")
    assert rev.number == 1
    assert service.read(latest()) == {"a": 1}

    rev = service.set_value(ENV, ("b", "c"), "x")
    assert rev.number == 2
    assert service.read(latest()) == {"a": 1, "b": {"c": "x"}}
    assert service.read(latest(), ("b", "c")) == "x"

    rev = service.remove_value(ENV, ("a",))
    assert rev.number == 3
    assert service.read(latest()) == {"b": {"c": "x"}}
    assert [e.number for e in service.history(ENV)] == [3, 2, 1]
    assert service.read(at(1)) == {"a": 1}
    assert service.read(at(2)) == {"a": 1, "b": {"c": "x"}}


def test_empty_environment_reads_as_empty_mapping(env, service):
    assert service.read(latest()) == {}


def test_create_twice_is_refused_and_keeps_the_first(env, service):
    service.set_value(ENV, ("a",), 1)
    with pytest.raises(AlreadyExistsError):
        service.create_environment(ENV, "values:\n  a: 2\n")
    assert service.read(latest()) == {"a": 1}


def test_revision_numbers_count_up_and_history_is_newest_first(env, service):
    numbers = [service.set_value(ENV, ("k",), i).number for i in range(5)]
    assert numbers == [2, 3, 4, 5, 6]
    history = service.history(ENV)
    assert [h.number for h in history] == [6, 5, 4, 3, 2, 1]
    assert {h.author for h in history} == {"tester"}
    assert service.store.get_environment(ENV).latest_revision == 6


def test_list_and_delete_environments(service):
    service.create_environment(ENV)
    service.create_environment(OTHER)
    service.create_environment(EnvRef("other.org", "dev"))
    assert [str(r.ref) for r in service.list_environments()] == [
        "aphiria.com/Preview",
        "aphiria.com/Production",
        "other.org/dev",
    ]
    assert [str(r.ref) for r in service.list_environments(project="other.org")] == ["other.org/dev"]
    service.delete_environment(OTHER)
    assert [str(r.ref) for r in service.list_environments(project="aphiria.com")] == ["aphiria.com/Preview"]
    with pytest.raises(EnvironmentNotFoundError):
        service.read(latest(OTHER))


def test_unknown_environment_revision_and_path(env, service):
    with pytest.raises(EnvironmentNotFoundError):
        service.read(latest(OTHER))
    with pytest.raises(RevisionNotFoundError):
        service.read(at(99))
    with pytest.raises(TagNotFoundError):
        service.read(at("nope"))
    with pytest.raises(PathError, match="does not exist"):
        service.read(latest(), ("missing",))
    with pytest.raises(PathError):
        service.remove_value(ENV, ("missing",))
    assert [h.number for h in service.history(ENV)] == [1]


def test_path_through_a_scalar_is_refused_and_writes_nothing(env, service):
    service.set_value(ENV, ("a",), 1)
    with pytest.raises(PathError, match="through a scalar"):
        service.set_value(ENV, ("a", "b"), 1)
    with pytest.raises(PathError):
        service.read(latest(), ("a", "b"))
    assert service.read(latest()) == {"a": 1}
    assert len(service.history(ENV)) == 2


def test_lists_by_index(env, service):
    service.set_value(ENV, ("l",), [1, 2])
    service.set_value(ENV, ("l", 2), 3)  # append at len
    service.set_value(ENV, ("l", 0), "zero")
    assert service.read(latest(), ("l",)) == ["zero", 2, 3]
    with pytest.raises(PathError, match="out of range"):
        service.set_value(ENV, ("l", 9), 1)


def test_value_size_limit(env, service):
    with pytest.raises(TooLargeError):
        service.set_value(ENV, ("big",), "x" * (MAX_VALUE_BYTES + 1))
    rev = service.set_value(ENV, ("big",), "x" * MAX_VALUE_BYTES)
    assert rev.number == 2
    with pytest.raises(TooLargeError):
        service.set_value(ENV, ("big",), "y" * (MAX_VALUE_BYTES + 1), secret=True)
    assert service.read(latest(), ("big",)) == "x" * MAX_VALUE_BYTES


def test_a_secret_must_be_a_string(env, service):
    with pytest.raises(InvalidInputError):
        service.set_value(ENV, ("s",), 587, secret=True)
    assert len(service.history(ENV)) == 1


# --------------------------------------------------------------------------- secrets at rest


def test_secrets_are_stored_as_ciphertext_only(env, service):
    secret = canary()
    rev = service.set_value(ENV, ("pulumiConfig", "postgresql:password"), secret, secret=True)
    stored = service.store.get_revision(ENV)
    for record in (rev, stored):
        for field in (record.definition, record.compiled, record.author, record.created_at, repr(record)):
            assert secret not in field
    [token] = tokens(stored.definition)
    assert token in stored.compiled  # the compiled cache holds the ciphertext, never the plaintext
    assert secret not in repr(service.store.get_environment(ENV))


def test_plaintext_fn_secret_in_a_definition_is_encrypted(service):
    first, second = canary(), canary()
    rev = service.create_environment(ENV, f"values:\n  a:\n    fn::secret: {first}\n")
    assert first not in rev.definition and first not in rev.compiled
    rev = service.replace_definition(ENV, f"values:\n  b:\n    fn::secret: {second}\n")
    assert second not in rev.definition and second not in rev.compiled
    assert service.read(latest(), show_secrets=True) == {"b": Secret(second)}
    assert service.read(at(1), show_secrets=True) == {"a": Secret(first)}


def test_read_masked_and_revealed(env, service):
    secret = canary()
    service.set_value(ENV, ("s",), secret, secret=True)
    service.set_value(ENV, ("p",), "plain")
    masked = service.read(latest())
    assert masked["p"] == "plain"
    assert isinstance(masked["s"], Secret) and not masked["s"].revealed
    assert secret not in repr(masked) and secret not in str(masked)
    shown = service.read(latest(), show_secrets=True)
    assert shown["s"].reveal() == secret
    assert service.read(latest(), ("s",), show_secrets=True).reveal() == secret


def test_masked_reads_do_not_need_the_key(env, service):
    service.set_value(ENV, ("s",), canary(), secret=True)
    service.set_value(ENV, ("p",), 1)

    def no_key(_store):
        raise KeyUnavailableError("no key in this test")

    keyless = Service(service.store, load_keyring=no_key, actor="tester")
    masked = keyless.read(latest())
    assert masked["p"] == 1
    assert isinstance(masked["s"], Secret) and not masked["s"].revealed
    assert len(keyless.diff(at(2), at(3))) == 1
    with pytest.raises(KeyUnavailableError):
        keyless.read(latest(), show_secrets=True)


def test_path_through_a_secret_is_refused(env, service):
    secret = canary()
    service.set_value(ENV, ("s",), secret, secret=True)
    with pytest.raises(PathError, match="secret") as info:
        service.set_value(ENV, ("s", "x"), 1)
    assert secret not in str(info.value)
    with pytest.raises(PathError, match="secret"):
        service.read(latest(), ("s", "x"), show_secrets=True)


def test_wrong_master_key_is_refused_before_writing(env, service, environ):
    service.set_value(ENV, ("s",), canary(), secret=True)
    other = AppContext({**environ, "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})
    try:
        wrong = other.service()
        with pytest.raises(KeyUnavailableError, match="wrong master key"):
            wrong.set_value(ENV, ("t",), "x", secret=True)
        with pytest.raises(KeyUnavailableError, match="wrong master key"):
            wrong.read(latest(), show_secrets=True)
        with pytest.raises(KeyUnavailableError, match="wrong master key"):
            wrong.create_environment(OTHER)
    finally:
        other.close()
    assert len(service.history(ENV)) == 2
    assert [str(r.ref) for r in service.list_environments()] == [str(ENV)]


# --------------------------------------------------------------------------- tags and rollback


def test_tags_and_env_at_tag(env, service):
    service.set_value(ENV, ("v",), 1)
    service.set_value(ENV, ("v",), 2)
    assert service.tag(ENV, "stable", 2) == 2
    assert service.tag(ENV, "newest") == 3
    assert service.read(RevisionRef.parse("aphiria.com/Preview@stable")) == {"v": 1}
    assert service.read(RevisionRef.parse("aphiria.com/Preview@newest")) == {"v": 2}
    assert service.read(RevisionRef.parse("aphiria.com/Preview@latest")) == {"v": 2}
    assert [(t.name, t.revision) for t in service.list_tags(ENV)] == [("newest", 3), ("stable", 2)]
    assert [h.tags for h in service.history(ENV)] == [("newest",), ("stable",), ()]

    assert service.tag(ENV, "stable", 3) == 3  # tags move
    assert service.read(at("stable")) == {"v": 2}
    service.untag(ENV, "stable")
    with pytest.raises(TagNotFoundError):
        service.read(at("stable"))
    with pytest.raises(TagNotFoundError):
        service.untag(ENV, "stable")


@pytest.mark.parametrize("name", ["1abc", "latest", "", "a b", "a/b", "x" * 101])
def test_invalid_tag_names(env, service, name):
    with pytest.raises(InvalidNameError):
        service.tag(ENV, name)
    assert service.list_tags(ENV) == []


def test_tag_of_an_unknown_revision(env, service):
    with pytest.raises(RevisionNotFoundError):
        service.tag(ENV, "stable", 7)
    assert service.list_tags(ENV) == []


def test_rollback_writes_a_new_revision_with_old_content(env, service):
    secret = canary()
    service.set_value(ENV, ("s",), secret, secret=True)  # 2
    service.set_value(ENV, ("s",), canary(), secret=True)  # 3
    service.remove_value(ENV, ("s",))  # 4
    rev = service.rollback(at(2))
    assert rev.number == 5
    assert rev.definition == service.store.get_revision(ENV, 2).definition
    assert rev.compiled == service.store.get_revision(ENV, 2).compiled
    assert service.read(latest(), ("s",), show_secrets=True).reveal() == secret
    assert [h.number for h in service.history(ENV)] == [5, 4, 3, 2, 1]
    assert service.read(at(4)) == {}  # history untouched


def test_rollback_to_a_tag(env, service):
    service.set_value(ENV, ("v",), 1)
    service.tag(ENV, "good")
    service.set_value(ENV, ("v",), 2)
    assert service.rollback(at("good")).number == 4
    assert service.read(latest()) == {"v": 1}


# --------------------------------------------------------------------------- clone


@pytest.mark.parametrize("preserve_history", [False, True])
def test_clone_reencrypts_secrets(env, service, preserve_history):
    first, second = canary(), canary()
    service.set_value(ENV, ("s",), first, secret=True)
    service.tag(ENV, "one")
    service.set_value(ENV, ("s",), second, secret=True)
    service.set_value(ENV, ("p",), "plain")

    count = service.clone(ENV, OTHER, preserve_history=preserve_history)

    assert count == (4 if preserve_history else 1)
    assert [h.number for h in service.history(OTHER)] == list(range(count, 0, -1))
    src, dst = service.store.get_revision(ENV), service.store.get_revision(OTHER)
    assert tokens(src.definition) != tokens(dst.definition)
    assert len(tokens(dst.definition)) == 1
    assert service.read(latest(OTHER), show_secrets=True) == service.read(latest(ENV), show_secrets=True)
    assert service.read(latest(OTHER), show_secrets=True) == {"s": Secret(second), "p": "plain"}
    assert service.store.get_environment(ENV).data_key != service.store.get_environment(OTHER).data_key
    if preserve_history:
        assert [(t.name, t.revision) for t in service.list_tags(OTHER)] == [("one", 2)]
        assert service.read(at("one", OTHER), show_secrets=True) == {"s": Secret(first)}
        assert tokens(service.store.get_revision(OTHER, 2).definition) != tokens(
            service.store.get_revision(ENV, 2).definition
        )
        src_history = [(h.author, h.created_at) for h in service.history(ENV)]
        assert [(h.author, h.created_at) for h in service.history(OTHER)] == src_history
    else:
        assert service.list_tags(OTHER) == []
    assert service.diff(latest(ENV), latest(OTHER)) == []


def test_clone_onto_an_existing_environment_is_refused(env, service):
    service.create_environment(OTHER, "values:\n  mine: 1\n")
    with pytest.raises(AlreadyExistsError):
        service.clone(ENV, OTHER)
    assert service.read(latest(OTHER)) == {"mine": 1}


def test_ciphertext_copied_between_environments_does_not_decrypt(env, service):
    service.create_environment(OTHER)
    service.set_value(ENV, ("s",), canary(), secret=True)
    [token] = tokens(service.store.get_revision(ENV).definition)
    service.replace_definition(OTHER, f"values:\n  s:\n    fn::secret:\n      ciphertext: {token}\n")
    assert isinstance(service.read(latest(OTHER))["s"], Secret)
    with pytest.raises(DecryptionError) as info:
        service.read(latest(OTHER), show_secrets=True)
    assert token not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


# --------------------------------------------------------------------------- diff


def test_diff_added_removed_changed(env, service):
    service.replace_definition(ENV, "values:\n  keep: 1\n  change: a\n  drop: x\n  l: [1]\n")  # 2
    service.replace_definition(ENV, "values:\n  keep: 1\n  change: b\n  add: y\n  l: [1, 2]\n")  # 3
    changes = service.diff(at(2), at(3))
    assert [(c.path, c.kind, c.old, c.new) for c in changes] == [
        ("values.add", "added", None, "y"),
        ("values.change", "changed", "a", "b"),
        ("values.drop", "removed", "x", None),
        ("values.l[1]", "added", None, 2),
    ]
    assert service.diff(at(3), at(3)) == []


def test_diff_tells_types_apart(env, service):
    service.set_value(ENV, ("v",), 1)
    service.set_value(ENV, ("v",), True)
    service.set_value(ENV, ("v",), "1")
    assert [(c.kind, c.old, c.new) for c in service.diff(at(2), at(3))] == [("changed", 1, True)]
    assert [(c.kind, c.old, c.new) for c in service.diff(at(3), at(4))] == [("changed", True, "1")]


def test_diff_masks_secrets(env, service):
    old, new = canary(), canary()
    service.set_value(ENV, ("s",), old, secret=True)
    service.set_value(ENV, ("s",), new, secret=True)
    [change] = service.diff(at(2), at(3))
    assert change.kind == "changed" and change.path == "values.s"
    assert isinstance(change.old, Secret) and isinstance(change.new, Secret)
    assert not change.old.revealed and not change.new.revealed
    assert old not in repr(change) and new not in repr(change)
    [shown] = service.diff(at(2), at(3), show_secrets=True)
    assert (shown.old.reveal(), shown.new.reveal()) == (old, new)


def test_diff_of_a_secret_reset_to_the_same_value_shows_no_change_when_revealed(env, service):
    value = canary()
    service.set_value(ENV, ("s",), value, secret=True)
    service.set_value(ENV, ("s",), value, secret=True)
    before, after = (tokens(service.store.get_revision(ENV, n).definition) for n in (2, 3))
    assert before != after
    assert service.diff(at(2), at(3), show_secrets=True) == []
    for change in service.diff(at(2), at(3)):  # masked: whatever it says, it says it masked
        assert isinstance(change.old, Secret) and not change.old.revealed
        assert isinstance(change.new, Secret) and not change.new.revealed


def test_masked_and_revealed_diffs_agree_on_what_changed(env, service):
    value = canary()
    service.set_value(ENV, ("s",), value, secret=True)
    service.set_value(ENV, ("s",), value, secret=True)
    masked = [(c.path, c.kind) for c in service.diff(at(2), at(3))]
    shown = [(c.path, c.kind) for c in service.diff(at(2), at(3), show_secrets=True)]
    assert masked == shown


def test_diff_across_environments_compares_plaintext(env, service):
    value = canary()
    service.set_value(ENV, ("s",), value, secret=True)
    service.create_environment(OTHER)
    service.set_value(OTHER, ("s",), value, secret=True)
    assert service.diff(latest(ENV), latest(OTHER)) == []
    service.set_value(OTHER, ("s",), canary(), secret=True)
    [change] = service.diff(latest(ENV), latest(OTHER))
    assert change.kind == "changed" and not change.new.revealed


# --------------------------------------------------------------------------- editing keeps the YAML


def test_comments_survive_set_value(service):
    service.create_environment(
        ENV,
        "# head comment\nvalues:\n  # about a\n  a: 1  # trailing a\n  s:\n    fn::secret: x  # secret comment\n",
    )
    rev = service.set_value(ENV, ("b",), "new")
    rev = service.set_value(ENV, ("a",), 2)
    for comment in ("# head comment", "# about a", "# trailing a", "# secret comment"):
        assert comment in rev.definition
    values = service.read(latest())
    assert list(values) == ["a", "s", "b"]  # key order kept
    assert (values["a"], values["b"]) == (2, "new")


def test_comments_survive_replace_definition_with_plaintext_secrets(env, service):
    secret = canary()
    rev = service.replace_definition(ENV, f"# top\nvalues:\n  # note\n  s:\n    fn::secret: {secret}  # inline\n")
    assert "# top" in rev.definition and "# note" in rev.definition and "# inline" in rev.definition
    assert secret not in rev.definition


# --------------------------------------------------------------------------- input rules


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("pulumiConfig", "namespace:imagePullSecret:username"), "your-github-username"),
        (("pulumiConfig", "grafana:githubOrg"), "aphiria"),
        (("pulumiConfig", "grafana:adminUser"), "your-github-username"),
        (("pulumiConfig", "grafana:smtpHost"), "smtp.gmail.com"),
        (("pulumiConfig", "grafana:smtpUser"), "alerts@example.com"),
        (("pulumiConfig", "grafana:smtpFromAddress"), "alerts@example.com"),
        (("pulumiConfig", "grafana:alertEmail"), "admin@example.com"),
        (("pulumiConfig", "grafana:githubClientId"), "YOUR_CLIENT_ID"),
        (("pulumiConfig", "postgresql:user"), "aphiria"),
        (("pulumiConfig", "prometheus:authToken"), "${secrets.token}"),
        (("pulumiConfig", "postgresql:password"), "short"),
    ],
)
def test_runbook_values_that_are_not_credentials(path, value):
    assert not looks_like_credential(path, value)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("pulumiConfig", "namespace:imagePullSecret:token"), "ghp_YOUR_TOKEN"),
        (("pulumiConfig", "namespace:imagePullSecret:username"), "ghp_YOUR_TOKEN"),  # a prefix anywhere
        (("anything",), "ghp_EXAMPLE456789abcdefghijklmnopqrstuvwxyz"),
        (("pulumiConfig", "gateway:digitaloceanDnsToken"), "dop_v1_YOUR_TOKEN_HERE"),
        (("a", 0), "dop_v1_x"),
        (("pulumiConfig", "prometheus:authToken"), "ab12" * 16),  # openssl rand -hex 32
        (("pulumiConfig", "prometheus:authToken"), "YOUR_GENERATED_TOKEN"),
        (("pulumiConfig", "grafana:githubClientSecret"), "YOUR_CLIENT_SECRET"),
        (("pulumiConfig", "grafana:smtpPassword"), "YOUR_APP_PASSWORD"),
        (("pulumiConfig", "postgresql:password"), "correct horse battery"),
    ],
)
def test_credential_like_values(path, value):
    assert looks_like_credential(path, value)


def test_credential_like_plaintext_is_refused_unless_asked(env, service):
    token = "ab12" * 16
    path = ("pulumiConfig", "prometheus:authToken")
    with pytest.raises(InvalidInputError, match="looks like a credential") as info:
        service.set_value(ENV, path, token)
    assert token not in str(info.value)
    with pytest.raises(InvalidInputError, match="looks like a credential"):
        service.set_value(ENV, ("x",), "ghp_abc")
    assert len(service.history(ENV)) == 1
    service.set_value(ENV, path, token, plaintext_ok=True)
    assert service.read(latest(), path) == token
    service.set_value(ENV, path, token, secret=True)
    assert service.read(latest(), path, show_secrets=True).reveal() == token


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("587", 587),
        ("true", True),
        ("false", False),
        ("1.5", 1.5),
        ("alerts@example.com", "alerts@example.com"),
        ("smtp.gmail.com", "smtp.gmail.com"),
        ("[1, 2]", [1, 2]),
        ("{a: 1}", {"a": 1}),
        ("", ""),
        ("your-github-username", "your-github-username"),
        ("a: b", "a: b"),
        ("- x", "- x"),
        ('"587"', "587"),
        ("null", None),
        ("[unclosed", "[unclosed"),
    ],
)
def test_parse_value(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


# --------------------------------------------------------------------------- concurrency


def _two_writers(make_service, env: EnvRef, per_thread: int) -> tuple[list[BaseException], dict[str, int]]:
    """Two services (two connections), one thread each, setting different paths of ``env``."""
    services = [make_service(), make_service()]
    errors: list[BaseException] = []
    done = {"a": 0, "b": 0}
    start = threading.Barrier(2)

    def work(svc: Service, name: str) -> None:
        start.wait()
        for i in range(per_thread):
            try:
                svc.set_value(env, (name, f"k{i}"), i)
            except BaseException as exc:
                errors.append(exc)
            else:
                done[name] += 1

    threads = [threading.Thread(target=work, args=(svc, name)) for svc, name in zip(services, "ab", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors, done


def test_concurrent_writers_lose_no_update(service, make_service):
    """Every write that reports success is in the newest revision; nothing half-applied."""
    service.create_environment(ENV)
    errors, done = _two_writers(make_service, ENV, 30)
    assert all(isinstance(e, ConflictError) for e in errors), errors
    assert len(service.history(ENV)) == 1 + done["a"] + done["b"]
    values = service.read(latest())
    assert len(values.get("a", {})) == done["a"] and len(values.get("b", {})) == done["b"]
    numbers = [h.number for h in service.history(ENV)]
    assert numbers == list(range(len(numbers), 0, -1))


def test_concurrent_writers_all_succeed(service, make_service):
    for round_ in range(3):
        env = EnvRef("race", f"r{round_}")
        service.create_environment(env)
        errors, _done = _two_writers(make_service, env, 30)
        assert errors == []
        assert len(service.history(env)) == 61
        values = service.read(latest(env))
        assert values == {"a": {f"k{i}": i for i in range(30)}, "b": {f"k{i}": i for i in range(30)}}


def test_stale_append_raises_conflict_and_writes_nothing(env, service, make_service):
    other = make_service()
    base = service.store.get_environment(ENV).latest_revision
    other.set_value(ENV, ("won",), 1)
    before = service.store.list_revisions(ENV)
    with pytest.raises(ConflictError):
        service.store.append_revision(
            ENV, expected_latest=base, definition="values:\n  lost: 1\n", compiled='{"values":{"lost":1}}',
            author="tester", at="2024-01-01T00:00:00.000000Z",
        )  # fmt: skip
    assert service.store.list_revisions(ENV) == before
    assert service.store.get_environment(ENV).latest_revision == base + 1
    assert service.read(latest()) == {"won": 1}


def test_stale_replace_definition_is_a_conflict(env, service, make_service):
    current = service.definition(latest())
    make_service().set_value(ENV, ("other",), 1)
    with pytest.raises(ConflictError):
        service.replace_definition(ENV, "values:\n  mine: 1\n", expected_latest=current.number)
    assert service.read(latest()) == {"other": 1}


def test_compiled_cache_decodes_each_revision_once_and_stays_bounded(make_service, service, env):
    from strongroom.service import CompiledCache, Service

    cache = CompiledCache(size=2)
    cached = Service(service.store, load_keyring=lambda s: service.keyring(), actor="t", compiled_cache=cache)
    rev = service.store.get_revision(ENV)
    assert cached._compiled(rev) is cached._compiled(rev)
    service.set_value(ENV, ("a",), 1)
    service.set_value(ENV, ("a",), 2)
    for number in (1, 2, 3):
        cached._compiled(service.store.get_revision(ENV, number))
    assert len(cache._items) == 2
    assert cached.read(latest())["a"] == 2
