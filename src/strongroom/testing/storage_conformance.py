"""A conformance suite every :class:`~strongroom.storage.base.Store` backend must pass.

Subclass :class:`StoreConformance` in a test module (named ``Test...`` so pytest
collects it) and provide a ``store`` fixture that yields a fresh, empty store for
each test and closes it afterwards::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path: Path) -> Iterator[Store]:
            store = MyStore.open(tmp_path / "store.db", create=True)
            yield store
            store.close()

A backend that can open a second, independent handle on the same database (as a
second process would) should override :meth:`StoreConformance.open_another`, so
the concurrency tests race two handles instead of two threads on one.

Every backend must provide :meth:`StoreConformance.tamper`: it runs one raw SQL
statement on the store's database behind the store's back (as someone with access
to the database could), so the tests can show that the audit log's hash chain
reveals an edit, that a failed audit write fails the change it records, and that
nothing stays behind in a table after a delete (rows the store itself would not show)::

        def tamper(self, store: Store, sql: str) -> None:
            with sqlite3.connect(self.path) as conn:
                conn.execute(sql)
"""

from __future__ import annotations

__all__ = ["StoreConformance"]

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from strongroom.audit.chain import GENESIS, canonical_event, record_hash, verify
from strongroom.errors import (
    AlreadyExistsError,
    ConflictError,
    EnvironmentNotFoundError,
    InvalidInputError,
    NotFoundError,
    RevisionNotFoundError,
    StoreUnavailableError,
    TagNotFoundError,
)
from strongroom.model import (
    MAX_DEFINITION_BYTES,
    AuditEvent,
    AuditRecord,
    EnvRef,
    EnvTagRecord,
    OpenSession,
    RevisionRecord,
    TokenRecord,
    WebhookRecord,
)
from strongroom.storage.base import Store

_ENV = EnvRef("aphiria.com", "Preview")
_OTHER = EnvRef("aphiria.com", "Production")
_KEY = bytes(range(256))  # every byte value, NUL included: a wrapped key is binary


def _at(second: int) -> str:
    """An ISO-8601 UTC timestamp, distinct per ``second`` (0-3599)."""
    return f"2026-11-29T02:{second // 60:02d}:{second % 60:02d}.123456Z"


def _definition(n: int) -> str:
    return f"# revision {n}\nDATABASE_URL: !secret 'v1:ciphertext-{n}'\n"


def _compiled(n: int) -> str:
    return f'{{"DATABASE_URL": {{"secret": "v1:ciphertext-{n}"}}}}'


def _event(
    n: int,
    *,
    actor: str = "alice",
    action: str = "env.read",
    environment: str | None = str(_ENV),
    revision: int | None = None,
    details: tuple[tuple[str, str], ...] = (),
) -> AuditEvent:
    return AuditEvent(
        at=_at(n),
        actor=actor,
        action=action,
        environment=environment,
        revision=revision,
        client="cli/0.1",
        details=details,
    )


_TOKEN = TokenRecord(
    token_id="tok_a1",
    name="ci",
    role="reader",
    scopes=("aphiria.com/*", "other/Preview"),
    secret_hash="a" * 64,
    created_at=_at(1),
    created_by="alice",
    expires_at=_at(3000),
)

_HOOK = WebhookRecord(
    webhook_id="wh_a1",
    environment=str(_ENV),
    url="https://hooks.example/strongroom?x=1",
    secret='{"key_id": "k1", "wrapped": "c2VjcmV0"}',
    events=("env.write", "env.tag"),
    created_at=_at(1),
    created_by="alice",
    last_seq=0,
)

_Mutation = Callable[[Store, Sequence[AuditEvent]], object]

#: One call of every method that changes something, each valid on the state :meth:`StoreConformance.prepare` makes.
_MUTATIONS: dict[str, _Mutation] = {
    "create_environment": lambda s, audit: s.create_environment(
        _OTHER,
        data_key=b"other",
        key_id="k1",
        definition=_definition(1),
        compiled=_compiled(1),
        author="alice",
        at=_at(20),
        audit=audit,
    ),
    "import_environment": lambda s, audit: s.import_environment(
        _OTHER,
        data_key=b"other",
        key_id="k1",
        revisions=[(_definition(1), _compiled(1), "a", _at(1)), (_definition(2), _compiled(2), "b", _at(2))],
        tags=[("stable", 2)],
        at=_at(20),
        audit=audit,
    ),
    "append_revision": lambda s, audit: s.append_revision(
        _ENV,
        expected_latest=2,
        definition=_definition(3),
        compiled=_compiled(3),
        author="bob",
        at=_at(20),
        audit=audit,
    ),
    "delete_environment": lambda s, audit: s.delete_environment(_ENV, audit=audit),
    "set_tag": lambda s, audit: s.set_tag(_ENV, "canary", 2, at=_at(20), audit=audit),
    "move_tag": lambda s, audit: s.set_tag(_ENV, "stable", 2, at=_at(20), audit=audit),
    "delete_tag": lambda s, audit: s.delete_tag(_ENV, "stable", audit=audit),
    "replace_data_keys": lambda s, audit: s.replace_data_keys([(_ENV, b"rewrapped", "k2")], audit=audit),
    "create_token": lambda s, audit: s.create_token(
        dataclasses.replace(_TOKEN, token_id="tok_b2", name="deploy"), audit=audit
    ),
    "revoke_token": lambda s, audit: s.revoke_token(_TOKEN.token_id, at=_at(20), audit=audit),
    "set_env_tag": lambda s, audit: s.set_env_tag(
        _ENV, "team", "payments", at=_at(20), actor="bob", expected_value="platform", audit=audit
    ),
    "delete_env_tag": lambda s, audit: s.delete_env_tag(_ENV, "team", audit=audit),
    "create_webhook": lambda s, audit: s.create_webhook(
        dataclasses.replace(_HOOK, webhook_id="wh_b2", environment=None), audit=audit
    ),
    "delete_webhook": lambda s, audit: s.delete_webhook(_HOOK.webhook_id, audit=audit),
}

#: Calls that fail on the state :meth:`StoreConformance.prepare` makes, with the error each raises.
_FAILING_MUTATIONS: dict[str, tuple[type[Exception], _Mutation]] = {
    "create_existing": (AlreadyExistsError, lambda s, audit: StoreConformance.create(s, audit=audit)),
    "import_existing": (
        AlreadyExistsError,
        lambda s, audit: s.import_environment(
            _ENV, data_key=b"x", key_id="k9", revisions=[("a", "{}", "x", _at(1))], tags=[], at=_at(20), audit=audit
        ),
    ),
    "import_tag_on_missing_revision": (
        RevisionNotFoundError,
        lambda s, audit: s.import_environment(
            _OTHER,
            data_key=b"x",
            key_id="k9",
            revisions=[("a", "{}", "x", _at(1))],
            tags=[("stable", 2)],
            at=_at(20),
            audit=audit,
        ),
    ),
    "append_stale": (
        ConflictError,
        lambda s, audit: s.append_revision(
            _ENV, expected_latest=1, definition="lost\n", compiled="{}", author="eve", at=_at(20), audit=audit
        ),
    ),
    "append_unknown_environment": (
        EnvironmentNotFoundError,
        lambda s, audit: s.append_revision(
            _OTHER, expected_latest=1, definition="lost\n", compiled="{}", author="eve", at=_at(20), audit=audit
        ),
    ),
    "delete_unknown_environment": (
        EnvironmentNotFoundError,
        lambda s, audit: s.delete_environment(_OTHER, audit=audit),
    ),
    "set_tag_on_unknown_revision": (
        RevisionNotFoundError,
        lambda s, audit: s.set_tag(_ENV, "canary", 9, at=_at(20), audit=audit),
    ),
    "set_tag_in_unknown_environment": (
        EnvironmentNotFoundError,
        lambda s, audit: s.set_tag(_OTHER, "canary", 1, at=_at(20), audit=audit),
    ),
    "delete_unknown_tag": (TagNotFoundError, lambda s, audit: s.delete_tag(_ENV, "canary", audit=audit)),
    "replace_data_key_of_unknown_environment": (
        EnvironmentNotFoundError,
        lambda s, audit: s.replace_data_keys([(_ENV, b"new", "k2"), (_OTHER, b"new", "k2")], audit=audit),
    ),
    "create_duplicate_token": (
        AlreadyExistsError,
        lambda s, audit: s.create_token(dataclasses.replace(_TOKEN, name="impostor"), audit=audit),
    ),
    "revoke_unknown_token": (NotFoundError, lambda s, audit: s.revoke_token("tok_zz", at=_at(20), audit=audit)),
    "create_existing_env_tag": (
        AlreadyExistsError,
        lambda s, audit: s.set_env_tag(_ENV, "team", "x", at=_at(20), actor="eve", create_only=True, audit=audit),
    ),
    "set_env_tag_on_stale_value": (
        ConflictError,
        lambda s, audit: s.set_env_tag(_ENV, "team", "x", at=_at(20), actor="eve", expected_value="old", audit=audit),
    ),
    "set_env_tag_expecting_a_missing_tag": (
        TagNotFoundError,
        lambda s, audit: s.set_env_tag(_ENV, "tier", "x", at=_at(20), actor="eve", expected_value="1", audit=audit),
    ),
    "set_env_tag_in_unknown_environment": (
        EnvironmentNotFoundError,
        lambda s, audit: s.set_env_tag(_OTHER, "team", "x", at=_at(20), actor="eve", audit=audit),
    ),
    "delete_unknown_env_tag": (TagNotFoundError, lambda s, audit: s.delete_env_tag(_ENV, "tier", audit=audit)),
    "create_duplicate_webhook": (
        AlreadyExistsError,
        lambda s, audit: s.create_webhook(dataclasses.replace(_HOOK, url="https://evil.example/"), audit=audit),
    ),
    "delete_unknown_webhook": (NotFoundError, lambda s, audit: s.delete_webhook("wh_zz", audit=audit)),
}

#: Ways to make the audit write fail: (statements that break it, statements that repair it).
_AUDIT_BREAKAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "log_renamed": (
        ("ALTER TABLE audit_log RENAME TO audit_log_moved",),
        ("ALTER TABLE audit_log_moved RENAME TO audit_log",),
    ),
    "log_dropped": (("DROP TABLE audit_log",), ()),
    "head_deleted": (("DELETE FROM audit_head",), ()),
    # The head says the log is empty while record 1 exists: the next record's number is taken.
    "head_rewound": ((f"UPDATE audit_head SET seq = 0, hash = '{GENESIS}' WHERE id = 1",), ()),
}


class StoreConformance:
    """The behaviour the ``Store`` Protocol promises, as tests. Needs a ``store`` fixture."""

    # ------------------------------------------------------------------ hooks

    def open_another(self, store: Store) -> Store | None:
        """A second handle on ``store``'s database, closed by the caller; ``None`` to share ``store``."""
        return None

    def tamper(self, store: Store, sql: str) -> None:
        """Run one SQL statement on ``store``'s database directly, committed, bypassing the store."""
        raise NotImplementedError(f"{type(self).__name__} must implement tamper() to run the audit log tests")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def create(
        store: Store,
        ref: EnvRef = _ENV,
        *,
        data_key: bytes = _KEY,
        key_id: str = "k1",
        audit: Sequence[AuditEvent] = (),
    ) -> RevisionRecord:
        return store.create_environment(
            ref,
            data_key=data_key,
            key_id=key_id,
            definition=_definition(1),
            compiled=_compiled(1),
            author="alice",
            at=_at(1),
            audit=audit,
        )

    @staticmethod
    def append(store: Store, ref: EnvRef, expected_latest: int, *, author: str = "bob") -> RevisionRecord:
        n = expected_latest + 1
        return store.append_revision(
            ref,
            expected_latest=expected_latest,
            definition=_definition(n),
            compiled=_compiled(n),
            author=author,
            at=_at(n),
        )

    # ------------------------------------------------------------------ environments

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_create_returns_revision_one(self, store: Store) -> None:
        rev = self.create(store)
        assert (rev.ref, rev.number, rev.created_at, rev.author) == (_ENV, 1, _at(1), "alice")
        assert (rev.definition, rev.compiled) == (_definition(1), _compiled(1))

    def test_get_environment(self, store: Store) -> None:
        self.create(store, data_key=b"wrapped", key_id="key-2026")
        env = store.get_environment(_ENV)
        assert env.ref == _ENV
        assert env.created_at == _at(1)
        assert env.latest_revision == 1
        assert env.data_key == b"wrapped"
        assert isinstance(env.data_key, bytes)
        assert env.key_id == "key-2026"

    def test_binary_data_key_round_trips(self, store: Store) -> None:
        self.create(store, data_key=_KEY)
        assert store.get_environment(_ENV).data_key == _KEY

    def test_longest_names_and_author_round_trip(self, store: Store) -> None:
        ref = EnvRef("p" * 100, "n" * 100)
        store.create_environment(
            ref, data_key=b"k", key_id="k" * 64, definition="a: 1\n", compiled="{}", author="a" * 200, at=_at(1)
        )
        assert store.get_environment(ref).key_id == "k" * 64
        assert store.get_revision(ref).author == "a" * 200
        store.set_tag(ref, "t" * 100, 1, at=_at(2))
        assert store.resolve_tag(ref, "t" * 100) == 1

    def test_definition_is_stored_exactly(self, store: Store) -> None:
        definition = "a: 'é ü 漢字 🙂'\r\n  trailing spaces   \n\n\tb: |\n    x\n"
        store.create_environment(
            _ENV, data_key=b"k", key_id="k1", definition=definition, compiled='{"a": "é"}', author="ünï", at=_at(1)
        )
        rev = store.get_revision(_ENV, 1)
        assert (rev.definition, rev.compiled, rev.author) == (definition, '{"a": "é"}', "ünï")

    def test_largest_definition_round_trips(self, store: Store) -> None:
        definition = "x: '" + "a" * (MAX_DEFINITION_BYTES - 6) + "'\n"
        assert len(definition.encode()) == MAX_DEFINITION_BYTES
        store.create_environment(
            _ENV, data_key=b"k", key_id="k1", definition=definition, compiled="{}", author="a", at=_at(1)
        )
        assert store.get_revision(_ENV).definition == definition

    def test_get_unknown_environment(self, store: Store) -> None:
        with pytest.raises(EnvironmentNotFoundError) as caught:
            store.get_environment(_ENV)
        assert str(_ENV) in caught.value.message
        assert "does not exist" in caught.value.message
        assert caught.value.hint

    def test_create_existing_raises_already_exists(self, store: Store) -> None:
        self.create(store, data_key=b"first", key_id="k1")
        with pytest.raises(AlreadyExistsError) as caught:
            store.create_environment(
                _ENV, data_key=b"second", key_id="k2", definition="x", compiled="{}", author="eve", at=_at(9)
            )
        assert str(_ENV) in caught.value.message
        env = store.get_environment(_ENV)
        assert (env.data_key, env.key_id, env.latest_revision) == (b"first", "k1", 1)
        assert [r.definition for r in store.list_revisions(_ENV)] == [_definition(1)]

    def test_same_name_in_another_project_is_another_environment(self, store: Store) -> None:
        self.create(store, EnvRef("a", "Preview"), key_id="ka")
        self.create(store, EnvRef("b", "Preview"), key_id="kb")
        assert store.get_environment(EnvRef("a", "Preview")).key_id == "ka"
        assert store.get_environment(EnvRef("b", "Preview")).key_id == "kb"

    def test_list_empty(self, store: Store) -> None:
        assert store.list_environments() == []
        assert store.list_environments(project="x", limit=5) == []

    def test_list_orders_by_project_then_name(self, store: Store) -> None:
        refs = [
            EnvRef("b.example", "alpha"),
            EnvRef("a.example", "zeta"),
            EnvRef("a.example", "Zeta"),  # upper case sorts before lower case
            EnvRef("a.example", "beta"),
            EnvRef("B.example", "x"),
            EnvRef("a-b", "x"),
            EnvRef("a.example", "beta.2"),
            EnvRef("a.example", "beta-2"),
            EnvRef("a.example", "beta_2"),
        ]
        for ref in refs:
            self.create(store, ref)
        listed = store.list_environments()
        assert [e.ref for e in listed] == sorted(refs)
        assert all(e.latest_revision == 1 for e in listed)

    def test_list_filters_by_project(self, store: Store) -> None:
        for ref in (EnvRef("a", "2"), EnvRef("b", "1"), EnvRef("a", "1"), EnvRef("ab", "1")):
            self.create(store, ref)
        assert [e.ref for e in store.list_environments(project="a")] == [EnvRef("a", "1"), EnvRef("a", "2")]
        assert store.list_environments(project="nope") == []

    def test_list_pages_with_after_and_limit(self, store: Store) -> None:
        refs = sorted(EnvRef(f"p{i % 3}", f"env{i:02d}") for i in range(11))
        for ref in reversed(refs):
            self.create(store, ref)
        pages: list[list[EnvRef]] = []
        after: EnvRef | None = None
        while True:
            page = [e.ref for e in store.list_environments(after=after, limit=4)]
            if not page:
                break
            assert len(page) <= 4
            pages.append(page)
            after = page[-1]
        assert [len(p) for p in pages] == [4, 4, 3]
        assert [ref for page in pages for ref in page] == refs

    def test_list_after_is_strict_and_need_not_exist(self, store: Store) -> None:
        refs = [EnvRef("a", "1"), EnvRef("a", "3"), EnvRef("b", "1")]
        for ref in refs:
            self.create(store, ref)
        assert [e.ref for e in store.list_environments(after=EnvRef("a", "1"))] == refs[1:]
        assert [e.ref for e in store.list_environments(after=EnvRef("a", "2"))] == refs[1:]
        assert [e.ref for e in store.list_environments(after=EnvRef("a", "9"))] == refs[2:]
        assert store.list_environments(after=EnvRef("b", "1")) == []
        assert [e.ref for e in store.list_environments(after=EnvRef("a", "1"), limit=1)] == [refs[1]]

    def test_list_after_with_project(self, store: Store) -> None:
        refs = [EnvRef("a", "1"), EnvRef("a", "2"), EnvRef("a", "3"), EnvRef("b", "0")]
        for ref in refs:
            self.create(store, ref)
        got = store.list_environments(project="a", after=EnvRef("a", "1"), limit=5)
        assert [e.ref for e in got] == refs[1:3]
        assert [e.ref for e in store.list_environments(project="b", after=EnvRef("a", "9"))] == [refs[3]]

    def test_list_limit_zero(self, store: Store) -> None:
        self.create(store)
        assert store.list_environments(limit=0) == []

    def test_delete_environment(self, store: Store) -> None:
        self.create(store)
        self.create(store, _OTHER)
        self.append(store, _ENV, 1)
        store.set_tag(_ENV, "stable", 1, at=_at(5))
        store.delete_environment(_ENV)
        with pytest.raises(EnvironmentNotFoundError):
            store.get_environment(_ENV)
        with pytest.raises(EnvironmentNotFoundError):
            store.get_revision(_ENV, 1)
        with pytest.raises(EnvironmentNotFoundError):
            store.list_revisions(_ENV)
        with pytest.raises(EnvironmentNotFoundError):
            store.list_tags(_ENV)
        with pytest.raises(EnvironmentNotFoundError):
            store.resolve_tag(_ENV, "stable")
        assert [e.ref for e in store.list_environments()] == [_OTHER]
        assert [k[0] for k in store.list_data_keys()] == [_OTHER]
        assert store.get_revision(_OTHER).number == 1

    def test_delete_unknown_environment(self, store: Store) -> None:
        with pytest.raises(EnvironmentNotFoundError):
            store.delete_environment(_ENV)

    def test_delete_then_recreate_gets_fresh_history(self, store: Store) -> None:
        self.create(store, key_id="old")
        for n in range(1, 4):
            self.append(store, _ENV, n)
        store.set_tag(_ENV, "stable", 3, at=_at(5))
        store.delete_environment(_ENV)
        store.create_environment(
            _ENV, data_key=b"new", key_id="new", definition="fresh: 1\n", compiled="{}", author="zoe", at=_at(50)
        )
        env = store.get_environment(_ENV)
        assert (env.latest_revision, env.key_id, env.data_key, env.created_at) == (1, "new", b"new", _at(50))
        assert [(r.number, r.definition) for r in store.list_revisions(_ENV)] == [(1, "fresh: 1\n")]
        assert store.list_tags(_ENV) == []
        with pytest.raises(TagNotFoundError):
            store.resolve_tag(_ENV, "stable")
        with pytest.raises(RevisionNotFoundError):
            store.get_revision(_ENV, 2)
        assert self.append(store, _ENV, 1).number == 2

    # ------------------------------------------------------------------ revisions

    def test_revisions_are_numbered_from_one(self, store: Store) -> None:
        assert self.create(store).number == 1
        assert self.append(store, _ENV, 1).number == 2
        rev3 = self.append(store, _ENV, 2, author="carol")
        assert (rev3.ref, rev3.number, rev3.author, rev3.created_at) == (_ENV, 3, "carol", _at(3))
        assert rev3.definition == _definition(3)
        assert store.get_environment(_ENV).latest_revision == 3

    def test_get_revision_newest_by_default(self, store: Store) -> None:
        self.create(store)
        self.append(store, _ENV, 1)
        newest = store.get_revision(_ENV)
        assert (newest.number, newest.definition, newest.compiled) == (2, _definition(2), _compiled(2))
        assert store.get_revision(_ENV, None) == newest

    def test_get_revision_by_number(self, store: Store) -> None:
        self.create(store)
        self.append(store, _ENV, 1)
        self.append(store, _ENV, 2)
        rev = store.get_revision(_ENV, 2)
        assert (rev.ref, rev.number, rev.author, rev.created_at) == (_ENV, 2, "bob", _at(2))
        assert (rev.definition, rev.compiled) == (_definition(2), _compiled(2))

    def test_old_revisions_are_immutable(self, store: Store) -> None:
        first = self.create(store)
        for n in range(1, 5):
            self.append(store, _ENV, n)
        store.set_tag(_ENV, "stable", 1, at=_at(9))
        store.replace_data_keys([(_ENV, b"rewrapped", "k2")])
        assert store.get_revision(_ENV, 1) == first
        assert store.get_revision(_ENV, 3).definition == _definition(3)

    def test_list_revisions_newest_first(self, store: Store) -> None:
        self.create(store)
        self.append(store, _ENV, 1)
        self.append(store, _ENV, 2)
        revisions = store.list_revisions(_ENV)
        assert [r.number for r in revisions] == [3, 2, 1]
        assert [r.definition for r in revisions] == [_definition(3), _definition(2), _definition(1)]
        assert all(r.ref == _ENV for r in revisions)

    def test_revisions_belong_to_their_environment(self, store: Store) -> None:
        self.create(store)
        self.create(store, _OTHER)
        self.append(store, _OTHER, 1)
        assert [r.number for r in store.list_revisions(_ENV)] == [1]
        assert store.get_revision(_OTHER).number == 2
        with pytest.raises(RevisionNotFoundError):
            store.get_revision(_ENV, 2)

    def test_get_unknown_revision(self, store: Store) -> None:
        self.create(store)
        for number in (0, 2, 99):
            with pytest.raises(RevisionNotFoundError) as caught:
                store.get_revision(_ENV, number)
            assert str(number) in caught.value.message

    def test_revision_of_unknown_environment(self, store: Store) -> None:
        with pytest.raises(EnvironmentNotFoundError):
            store.get_revision(_ENV)
        with pytest.raises(EnvironmentNotFoundError):
            store.get_revision(_ENV, 1)
        with pytest.raises(EnvironmentNotFoundError):
            store.list_revisions(_ENV)

    def test_append_to_unknown_environment(self, store: Store) -> None:
        with pytest.raises(EnvironmentNotFoundError):
            self.append(store, _ENV, 1)
        assert store.list_environments() == []

    @pytest.mark.parametrize("stale", [1, 0, 5])
    def test_append_on_stale_revision_conflicts_and_writes_nothing(self, store: Store, stale: int) -> None:
        self.create(store)
        self.append(store, _ENV, 1)
        with pytest.raises(ConflictError) as caught:
            store.append_revision(
                _ENV, expected_latest=stale, definition="lost: 1\n", compiled="{}", author="eve", at=_at(30)
            )
        assert not isinstance(caught.value, AlreadyExistsError)
        assert "changed meanwhile" in caught.value.message
        assert "revision 2 is the newest" in caught.value.message
        assert f"based on {stale}" in caught.value.message
        assert caught.value.hint
        assert store.get_environment(_ENV).latest_revision == 2
        assert [r.number for r in store.list_revisions(_ENV)] == [2, 1]
        assert all(r.definition != "lost: 1\n" for r in store.list_revisions(_ENV))

    def test_concurrent_appends_lose_no_update(self, store: Store) -> None:
        per_writer = 50
        self.create(store)
        other = self.open_another(store)
        failures: list[BaseException] = []
        barrier = threading.Barrier(2)

        def writer(handle: Store, who: str) -> None:
            try:
                barrier.wait(timeout=30)
                for i in range(per_writer):
                    for _attempt in range(10_000):
                        latest = handle.get_environment(_ENV).latest_revision
                        try:
                            handle.append_revision(
                                _ENV,
                                expected_latest=latest,
                                definition=f"{who}: {i}\n",
                                compiled="{}",
                                author=who,
                                at=_at(1),
                            )
                        except ConflictError:
                            continue
                        break
                    else:
                        raise AssertionError(f"{who} never got revision for change {i} in")
            except BaseException as exc:
                failures.append(exc)

        def run(target: Callable[[Store, str], None], handle: Store, who: str) -> threading.Thread:
            thread = threading.Thread(target=target, args=(handle, who), daemon=True)
            thread.start()
            return thread

        try:
            threads = [run(writer, store, "w1"), run(writer, other or store, "w2")]
            for thread in threads:
                thread.join(timeout=300)
            assert not any(thread.is_alive() for thread in threads), "a writer hung"
        finally:
            if other is not None:
                other.close()
        assert failures == []
        total = 2 * per_writer + 1
        assert store.get_environment(_ENV).latest_revision == total
        revisions = store.list_revisions(_ENV)
        assert [r.number for r in revisions] == list(range(total, 0, -1))
        written = sorted(r.definition for r in revisions[:-1])
        assert written == sorted(f"{who}: {i}\n" for who in ("w1", "w2") for i in range(per_writer))

    # ------------------------------------------------------------------ tags

    def test_set_and_resolve_tag(self, store: Store) -> None:
        self.create(store)
        self.append(store, _ENV, 1)
        store.set_tag(_ENV, "stable", 1, at=_at(10))
        assert store.resolve_tag(_ENV, "stable") == 1
        tags = store.list_tags(_ENV)
        assert [(t.name, t.revision, t.updated_at) for t in tags] == [("stable", 1, _at(10))]

    def test_move_tag(self, store: Store) -> None:
        self.create(store)
        self.append(store, _ENV, 1)
        store.set_tag(_ENV, "stable", 1, at=_at(10))
        store.set_tag(_ENV, "stable", 2, at=_at(11))
        assert store.resolve_tag(_ENV, "stable") == 2
        assert [(t.name, t.revision, t.updated_at) for t in store.list_tags(_ENV)] == [("stable", 2, _at(11))]
        store.set_tag(_ENV, "stable", 1, at=_at(12))
        assert store.resolve_tag(_ENV, "stable") == 1

    def test_list_tags(self, store: Store) -> None:
        self.create(store)
        assert store.list_tags(_ENV) == []
        self.append(store, _ENV, 1)
        store.set_tag(_ENV, "stable", 1, at=_at(10))
        store.set_tag(_ENV, "canary", 2, at=_at(11))
        store.set_tag(_ENV, "previous", 1, at=_at(12))
        tags = sorted((t.name, t.revision, t.updated_at) for t in store.list_tags(_ENV))
        assert tags == [("canary", 2, _at(11)), ("previous", 1, _at(12)), ("stable", 1, _at(10))]

    def test_tags_belong_to_their_environment(self, store: Store) -> None:
        self.create(store)
        self.create(store, _OTHER)
        self.append(store, _OTHER, 1)
        store.set_tag(_OTHER, "stable", 2, at=_at(10))
        store.set_tag(_ENV, "stable", 1, at=_at(11))
        assert store.resolve_tag(_OTHER, "stable") == 2
        assert store.resolve_tag(_ENV, "stable") == 1
        store.delete_tag(_ENV, "stable")
        assert store.resolve_tag(_OTHER, "stable") == 2

    def test_delete_tag(self, store: Store) -> None:
        self.create(store)
        store.set_tag(_ENV, "stable", 1, at=_at(10))
        store.set_tag(_ENV, "canary", 1, at=_at(10))
        store.delete_tag(_ENV, "stable")
        with pytest.raises(TagNotFoundError):
            store.resolve_tag(_ENV, "stable")
        assert [t.name for t in store.list_tags(_ENV)] == ["canary"]
        assert [r.number for r in store.list_revisions(_ENV)] == [1]

    def test_unknown_tag(self, store: Store) -> None:
        self.create(store)
        with pytest.raises(TagNotFoundError) as caught:
            store.resolve_tag(_ENV, "stable")
        assert "stable" in caught.value.message
        with pytest.raises(TagNotFoundError):
            store.delete_tag(_ENV, "stable")

    def test_tag_on_unknown_revision(self, store: Store) -> None:
        self.create(store)
        with pytest.raises(RevisionNotFoundError):
            store.set_tag(_ENV, "stable", 2, at=_at(10))
        with pytest.raises(RevisionNotFoundError):
            store.set_tag(_ENV, "stable", 0, at=_at(10))
        assert store.list_tags(_ENV) == []
        store.set_tag(_ENV, "stable", 1, at=_at(10))
        with pytest.raises(RevisionNotFoundError):
            store.set_tag(_ENV, "stable", 7, at=_at(11))
        assert store.resolve_tag(_ENV, "stable") == 1

    def test_tags_of_unknown_environment(self, store: Store) -> None:
        with pytest.raises(EnvironmentNotFoundError):
            store.set_tag(_ENV, "stable", 1, at=_at(10))
        with pytest.raises(EnvironmentNotFoundError):
            store.resolve_tag(_ENV, "stable")
        with pytest.raises(EnvironmentNotFoundError):
            store.delete_tag(_ENV, "stable")
        with pytest.raises(EnvironmentNotFoundError):
            store.list_tags(_ENV)

    # ------------------------------------------------------------------ import

    def test_import_environment_with_history_and_tags(self, store: Store) -> None:
        history = [(_definition(n), _compiled(n), f"author{n}", _at(n)) for n in range(1, 5)]
        store.import_environment(
            _ENV,
            data_key=b"imported",
            key_id="k9",
            revisions=history,
            tags=[("stable", 2), ("canary", 4)],
            at=_at(100),
        )
        env = store.get_environment(_ENV)
        assert (env.latest_revision, env.data_key, env.key_id, env.created_at) == (4, b"imported", "k9", _at(100))
        revisions = store.list_revisions(_ENV)
        assert [r.number for r in revisions] == [4, 3, 2, 1]
        for rev in revisions:
            assert (rev.definition, rev.compiled, rev.author, rev.created_at) == history[rev.number - 1]
        assert store.get_revision(_ENV).number == 4
        assert store.resolve_tag(_ENV, "stable") == 2
        assert store.resolve_tag(_ENV, "canary") == 4
        assert sorted((t.name, t.revision, t.updated_at) for t in store.list_tags(_ENV)) == [
            ("canary", 4, _at(100)),
            ("stable", 2, _at(100)),
        ]
        assert self.append(store, _ENV, 4).number == 5

    def test_import_without_tags(self, store: Store) -> None:
        store.import_environment(
            _ENV, data_key=b"k", key_id="k1", revisions=[("a: 1\n", "{}", "x", _at(1))], tags=[], at=_at(2)
        )
        assert store.get_environment(_ENV).latest_revision == 1
        assert store.list_tags(_ENV) == []

    def test_import_existing_raises_already_exists(self, store: Store) -> None:
        self.create(store)
        with pytest.raises(AlreadyExistsError):
            store.import_environment(
                _ENV,
                data_key=b"other",
                key_id="k2",
                revisions=[("a", "{}", "x", _at(1)), ("b", "{}", "x", _at(2))],
                tags=[("stable", 2)],
                at=_at(3),
            )
        env = store.get_environment(_ENV)
        assert (env.latest_revision, env.data_key) == (1, _KEY)
        assert store.list_tags(_ENV) == []
        assert store.get_revision(_ENV).definition == _definition(1)

    def test_import_with_tag_on_missing_revision_writes_nothing(self, store: Store) -> None:
        with pytest.raises(RevisionNotFoundError):
            store.import_environment(
                _ENV,
                data_key=b"k",
                key_id="k1",
                revisions=[("a", "{}", "x", _at(1))],
                tags=[("stable", 2)],
                at=_at(3),
            )
        assert store.list_environments() == []

    def test_import_without_revisions_is_refused(self, store: Store) -> None:
        with pytest.raises(InvalidInputError):
            store.import_environment(_ENV, data_key=b"k", key_id="k1", revisions=[], tags=[], at=_at(3))
        assert store.list_environments() == []

    # ------------------------------------------------------------------ data keys

    def test_list_data_keys(self, store: Store) -> None:
        assert store.list_data_keys() == []
        self.create(store, _OTHER, data_key=b"two", key_id="k2")
        self.create(store, _ENV, data_key=b"one", key_id="k1")
        keys = sorted(store.list_data_keys())
        assert keys == [(_ENV, b"one", "k1"), (_OTHER, b"two", "k2")]
        assert all(isinstance(key, bytes) for _, key, _ in keys)

    def test_replace_data_keys(self, store: Store) -> None:
        third = EnvRef("other.example", "Preview")
        for ref in (_ENV, _OTHER, third):
            self.create(store, ref, data_key=b"old", key_id="k1")
        store.replace_data_keys(iter([(_ENV, b"new-1", "k2"), (_OTHER, b"new-2", "k2")]))
        assert sorted(store.list_data_keys()) == [
            (_ENV, b"new-1", "k2"),
            (_OTHER, b"new-2", "k2"),
            (third, b"old", "k1"),
        ]
        env = store.get_environment(_ENV)
        assert (env.data_key, env.key_id, env.latest_revision) == (b"new-1", "k2", 1)
        assert store.get_revision(_ENV).definition == _definition(1)

    def test_replace_data_keys_is_all_or_nothing(self, store: Store) -> None:
        self.create(store, _ENV, data_key=b"old-1", key_id="k1")
        self.create(store, _OTHER, data_key=b"old-2", key_id="k1")
        with pytest.raises(EnvironmentNotFoundError):
            store.replace_data_keys(
                [(_ENV, b"new-1", "k2"), (EnvRef("gone", "x"), b"new-x", "k2"), (_OTHER, b"new-2", "k2")]
            )
        assert sorted(store.list_data_keys()) == [(_ENV, b"old-1", "k1"), (_OTHER, b"old-2", "k1")]

    def test_replace_no_data_keys(self, store: Store) -> None:
        self.create(store)
        store.replace_data_keys([])
        assert store.list_data_keys() == [(_ENV, _KEY, "k1")]

    # ------------------------------------------------------------------ metadata

    def test_meta(self, store: Store) -> None:
        assert store.get_meta("key_check") is None
        store.set_meta("key_check", "v1:abc")
        store.set_meta("other", "")
        assert store.get_meta("key_check") == "v1:abc"
        assert store.get_meta("other") == ""
        store.set_meta("key_check", "v1:def")
        assert store.get_meta("key_check") == "v1:def"
        assert store.get_meta("missing") is None

    def test_swap_meta_is_compare_and_set(self, store: Store) -> None:
        assert store.swap_meta("lock", None, "a") is True
        assert store.swap_meta("lock", None, "b") is False  # exists: an absent-expectation loses
        assert store.get_meta("lock") == "a"
        assert store.swap_meta("lock", "stale", "b") is False
        assert store.get_meta("lock") == "a"
        assert store.swap_meta("lock", "a", "b") is True
        assert store.get_meta("lock") == "b"
        assert store.swap_meta("lock", "b", "") is True
        assert store.swap_meta("lock", "", "c") is True
        assert store.get_meta("lock") == "c"

    def test_swap_meta_has_one_winner_across_threads(self, store: Store) -> None:
        import threading

        store.set_meta("race", "free")
        wins: list[int] = []
        barrier = threading.Barrier(8)

        def contend(n: int) -> None:
            barrier.wait()
            if store.swap_meta("race", "free", f"owner-{n}"):
                wins.append(n)

        threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert store.get_meta("race") == f"owner-{wins[0]}"

    # ------------------------------------------------------------------ audit log: helpers

    @staticmethod
    def prepare(store: Store) -> None:
        """The state every mutation test starts from, written without audit events: ``_ENV`` with
        revisions 1 and 2, the tag ``stable`` on 1 and the environment tag ``team: platform``, the
        token ``tok_a1``, and the webhook ``wh_a1`` with one queued delivery."""
        StoreConformance.create(store)
        StoreConformance.append(store, _ENV, 1)
        store.set_tag(_ENV, "stable", 1, at=_at(5))
        store.set_env_tag(_ENV, "team", "platform", at=_at(5), actor="alice")
        store.create_token(_TOKEN)
        store.create_webhook(_HOOK)
        assert store.enqueue_deliveries(
            _HOOK.webhook_id, [(1, "env.write", "{}")], expected_last_seq=0, new_last_seq=1, at=_at(5)
        )

    @staticmethod
    def snapshot(store: Store) -> tuple[object, ...]:
        """Everything but the audit log, to compare before and after a change."""
        envs = store.list_environments()
        return (
            envs,
            [store.list_revisions(env.ref) for env in envs],
            [store.list_tags(env.ref) for env in envs],
            [store.list_env_tags(env.ref) for env in envs],
            store.list_tokens(),
            store.list_webhooks(),
            store.list_deliveries(),
        )

    def count_rows(self, store: Store, table: str) -> int:
        """How many rows ``table`` holds, whether or not the store would show them (through :meth:`tamper`)."""
        key = f"conformance.rows.{table}"
        self.tamper(store, f"DELETE FROM store_meta WHERE key = '{key}'")
        self.tamper(store, f"INSERT INTO store_meta (key, value) SELECT '{key}', CAST(COUNT(*) AS TEXT) FROM {table}")
        value = store.get_meta(key)
        assert value is not None
        return int(value)

    def tamper_all(self, store: Store, statements: Sequence[str]) -> None:
        for sql in statements:
            self.tamper(store, sql)

    @staticmethod
    def assert_chain(store: Store, length: int) -> list[AuditRecord]:
        records = store.list_audit()
        head = store.audit_head()
        assert verify(records, head=head) == (length, None)
        assert [r.seq for r in records] == list(range(1, length + 1))
        assert head == ((length, records[-1].hash) if records else (0, GENESIS))
        return records

    def chain_of_five(self, store: Store) -> list[AuditRecord]:
        """Five records written by mutators and by ``append_audit``; record 4 has details."""
        self.create(store, audit=[_event(1, action="env.create", revision=1)])
        store.append_revision(
            _ENV,
            expected_latest=1,
            definition=_definition(2),
            compiled=_compiled(2),
            author="bob",
            at=_at(2),
            audit=[_event(2, actor="bob", action="env.write", revision=2), _event(3, actor="bob", action="env.tag")],
        )
        store.append_audit(
            [
                _event(4, actor="carol", details=(("value", "hmac:1f2e"), ("view", "open"))),
                _event(5, actor="dave", action="env.list", environment=None),
            ]
        )
        return self.assert_chain(store, 5)

    # ------------------------------------------------------------------ audit log: appending

    def test_empty_audit_log(self, store: Store) -> None:
        assert store.list_audit() == []
        assert store.audit_head() == (0, GENESIS)
        assert store.append_audit([]) == []
        assert store.audit_head() == (0, GENESIS)
        assert verify(store.list_audit(), head=store.audit_head()) == (0, None)

    def test_append_audit_numbers_from_one_and_links_each_record_to_the_one_before(self, store: Store) -> None:
        first = store.append_audit([_event(1), _event(2, actor="bob"), _event(3, action="env.write")])
        second = store.append_audit([_event(4), _event(5, environment=None)])
        records = first + second
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert [r.event for r in records] == [
            _event(1),
            _event(2, actor="bob"),
            _event(3, action="env.write"),
            _event(4),
            _event(5, environment=None),
        ]
        prev = GENESIS
        for rec in records:
            assert rec.prev_hash == prev
            assert rec.hash == record_hash(rec.seq, rec.prev_hash, canonical_event(rec.event))
            prev = rec.hash
        assert len({r.hash for r in records}) == 5
        assert store.list_audit() == records
        assert store.audit_head() == (5, records[-1].hash)
        assert verify(store.list_audit(), head=store.audit_head()) == (5, None)

    def test_audit_record_round_trips_every_field(self, store: Store) -> None:
        event = AuditEvent(
            at=_at(7),
            actor="ünïcödé 漢字 🙂 " + "a" * 180,
            action="x" * 100,
            outcome="denied",
            environment=f"{'p' * 100}/{'n' * 100}",
            revision=2_000_000_000,
            client="c" * 200,
            # given out of order: stored (and hashed) as a mapping
            details=(("zeta", "last"), ("alpha", 'é " \\ \n 🙂'), ("empty", "")),
        )
        written = store.append_audit([event])
        [stored] = store.list_audit()
        assert stored.event == dataclasses.replace(event, details=tuple(sorted(event.details)))
        assert (stored.seq, stored.prev_hash, stored.hash) == (1, GENESIS, written[0].hash)
        assert stored.hash == record_hash(1, GENESIS, canonical_event(event))
        bare = AuditEvent(at=_at(8), actor="a", action="b")
        store.append_audit([bare])
        assert store.list_audit(after_seq=1)[0].event == bare
        self.assert_chain(store, 2)

    @pytest.mark.parametrize("mutation", sorted(_MUTATIONS))
    def test_mutator_writes_its_audit_events_with_the_change(self, store: Store, mutation: str) -> None:
        self.prepare(store)
        assert store.list_audit() == []
        before = self.snapshot(store)
        [opened] = store.append_audit([_event(10, action="env.open")])
        events = [_event(11, action=mutation, revision=2), _event(12, action=mutation, details=(("step", "2"),))]
        _MUTATIONS[mutation](store, events)
        assert self.snapshot(store) != before, "the change was applied"
        records = self.assert_chain(store, 3)
        assert records[0] == opened
        assert [r.event for r in records[1:]] == events
        assert records[1].prev_hash == opened.hash

    @pytest.mark.parametrize("mutation", sorted(_MUTATIONS))
    def test_mutator_without_audit_events_writes_none(self, store: Store, mutation: str) -> None:
        self.prepare(store)
        _MUTATIONS[mutation](store, ())
        assert store.list_audit() == []
        assert store.audit_head() == (0, GENESIS)

    @pytest.mark.parametrize("failure", sorted(_FAILING_MUTATIONS))
    def test_failed_mutator_writes_no_audit_record(self, store: Store, failure: str) -> None:
        self.prepare(store)
        [opened] = store.append_audit([_event(10)])
        before = self.snapshot(store)
        error, call = _FAILING_MUTATIONS[failure]
        with pytest.raises(error):
            call(store, [_event(11, action=failure), _event(12, action=failure)])
        assert store.list_audit() == [opened]
        assert store.audit_head() == (1, opened.hash)
        assert self.snapshot(store) == before
        # and the chain goes on from where it was
        [nxt] = store.append_audit([_event(13)])
        assert (nxt.seq, nxt.prev_hash) == (2, opened.hash)
        self.assert_chain(store, 2)

    # ------------------------------------------------------------------ audit log: fail-closed

    @pytest.mark.parametrize("mutation", sorted(_MUTATIONS))
    def test_failed_audit_write_fails_the_change(self, store: Store, mutation: str) -> None:
        self.prepare(store)
        [opened] = store.append_audit([_event(10)])
        before = self.snapshot(store)
        breaks, repairs = _AUDIT_BREAKAGES["log_renamed"]
        self.tamper_all(store, breaks)
        with pytest.raises(Exception):  # noqa: B017 - any error will do; the type is checked below
            _MUTATIONS[mutation](store, [_event(11, action=mutation)])
        assert self.snapshot(store) == before, "the change went through although its audit record did not"
        self.tamper_all(store, repairs)
        assert store.list_audit() == [opened]
        assert store.audit_head() == (1, opened.hash)
        _MUTATIONS[mutation](store, [_event(11, action=mutation)])
        assert self.snapshot(store) != before
        self.assert_chain(store, 2)

    @pytest.mark.parametrize("breakage", sorted(_AUDIT_BREAKAGES))
    def test_every_kind_of_audit_failure_fails_the_change(self, store: Store, breakage: str) -> None:
        self.prepare(store)
        store.append_audit([_event(10)])
        before = self.snapshot(store)
        self.tamper_all(store, _AUDIT_BREAKAGES[breakage][0])
        with pytest.raises(Exception):  # noqa: B017 - see test_failed_audit_write_is_store_unavailable
            _MUTATIONS["append_revision"](store, [_event(11, action="env.write")])
        with pytest.raises(Exception):  # noqa: B017
            _MUTATIONS["revoke_token"](store, [_event(12, action="token.revoke")])
        assert self.snapshot(store) == before
        assert store.get_environment(_ENV).latest_revision == 2
        token = store.get_token(_TOKEN.token_id)
        assert token is not None
        assert token.revoked_at is None

    @pytest.mark.parametrize("breakage", sorted(_AUDIT_BREAKAGES))
    def test_failed_audit_write_is_store_unavailable(self, store: Store, breakage: str) -> None:
        """A broken audit log is reported as the store being unusable (not as a driver error, nor
        as a ``ConflictError`` that would invite retrying), by mutators and ``append_audit`` alike."""
        self.prepare(store)
        store.append_audit([_event(10)])
        self.tamper_all(store, _AUDIT_BREAKAGES[breakage][0])
        with pytest.raises(StoreUnavailableError) as caught:
            _MUTATIONS["append_revision"](store, [_event(11, action="env.write")])
        assert not isinstance(caught.value, ConflictError)
        with pytest.raises(StoreUnavailableError):
            store.append_audit([_event(12)])

    # ------------------------------------------------------------------ audit log: tamper evidence

    def test_verify_passes_on_a_good_chain(self, store: Store) -> None:
        records = self.chain_of_five(store)
        assert [r.event.actor for r in records] == ["alice", "bob", "bob", "carol", "dave"]
        assert verify(records) == (5, None)

    @pytest.mark.parametrize(
        ("statements", "first_bad", "reason"),
        [
            pytest.param(("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",), 3, "changed", id="edit-actor"),
            pytest.param(("UPDATE audit_log SET details = '{}' WHERE seq = 4",), 4, "changed", id="edit-details"),
            pytest.param(("UPDATE audit_log SET revision = 9 WHERE seq = 2",), 2, "changed", id="edit-revision"),
            pytest.param(("DELETE FROM audit_log WHERE seq = 2",), 2, "missing", id="delete-middle"),
            pytest.param(("DELETE FROM audit_log WHERE seq = 1",), 1, "missing", id="delete-first"),
            pytest.param(
                (
                    "UPDATE audit_log SET seq = -1 WHERE seq = 2",
                    "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                    "UPDATE audit_log SET seq = 3 WHERE seq = -1",
                ),
                2,
                "broken",
                id="swap",
            ),
            pytest.param(("DELETE FROM audit_log WHERE seq = 5",), 5, "removed", id="delete-last"),
        ],
    )
    def test_verify_names_the_first_bad_record(
        self, store: Store, statements: tuple[str, ...], first_bad: int, reason: str
    ) -> None:
        self.chain_of_five(store)
        self.tamper_all(store, statements)
        checked, brk = verify(store.list_audit(), head=store.audit_head())
        assert brk is not None, "the tampering went unnoticed"
        assert brk.seq == first_bad
        assert checked == first_bad - 1
        assert reason in brk.reason

    def test_cutting_off_the_end_shows_only_against_the_head(self, store: Store) -> None:
        self.chain_of_five(store)
        self.tamper(store, "DELETE FROM audit_log WHERE seq >= 4")
        assert verify(store.list_audit()) == (3, None)
        checked, brk = verify(store.list_audit(), head=store.audit_head())
        assert checked == 3
        assert brk is not None
        assert brk.seq == 4

    def test_rewriting_a_record_with_a_fresh_hash_breaks_the_next_link(self, store: Store) -> None:
        records = self.chain_of_five(store)
        third = records[2]
        forged = record_hash(3, third.prev_hash, canonical_event(dataclasses.replace(third.event, actor="mallory")))
        self.tamper(store, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged}' WHERE seq = 3")
        assert store.list_audit()[2].event.actor == "mallory"
        checked, brk = verify(store.list_audit(), head=store.audit_head())
        assert (checked, brk is not None and brk.seq) == (3, 4)

    # ------------------------------------------------------------------ audit log: listing

    def test_list_audit_filters(self, store: Store) -> None:
        other = str(_OTHER)
        store.append_audit(
            [
                _event(1, actor="alice", action="env.read"),
                _event(2, actor="bob", action="env.write"),
                _event(3, actor="alice", action="env.write", environment=other),
                _event(4, actor="carol", action="token.create", environment=None),
                _event(5, actor="alice", action="env.read", environment=other),
                _event(6, actor="bob", action="env.read"),
            ]
        )

        def seqs(**filters: Any) -> list[int]:
            return [r.seq for r in store.list_audit(**filters)]

        assert seqs() == [1, 2, 3, 4, 5, 6]
        assert seqs(environment=str(_ENV)) == [1, 2, 6]
        assert seqs(environment=other) == [3, 5]
        assert seqs(environment="aphiria.com/preview") == [], "environment names are case-sensitive"
        assert seqs(actor="alice") == [1, 3, 5]
        assert seqs(actor="Alice") == []
        assert seqs(action="env.write") == [2, 3]
        assert seqs(action="env") == [], "filters match whole values"
        assert seqs(since=_at(4)) == [4, 5, 6], "since is inclusive"
        assert seqs(since=_at(4) + "x") == [5, 6]
        assert seqs(since=_at(7)) == []
        assert seqs(environment=other, actor="alice") == [3, 5]
        assert seqs(environment=other, actor="alice", action="env.read") == [5]
        assert seqs(actor="alice", since=_at(2)) == [3, 5]
        assert seqs(actor="bob", action="env.read", environment=str(_ENV), since=_at(1)) == [6]
        assert seqs(actor="nobody") == []
        assert seqs(actor="alice", after_seq=3) == [5]
        assert seqs(actor="alice", limit=2) == [1, 3]
        assert seqs(action="env.read", after_seq=1, limit=1) == [5]
        assert seqs(limit=0) == []
        assert seqs(after_seq=6) == []
        assert seqs(after_seq=100) == []
        [rec] = store.list_audit(actor="carol")
        assert rec.event == _event(4, actor="carol", action="token.create", environment=None)

    def test_list_audit_pages_with_after_seq_and_limit(self, store: Store) -> None:
        actors = ("alice", "bob", "carol")
        store.append_audit([_event(n, actor=actors[n % 3]) for n in range(23)])
        everything = store.list_audit()
        assert len(everything) == 23

        def pages(limit: int, **filters: str) -> list[list[AuditRecord]]:
            out: list[list[AuditRecord]] = []
            after = 0
            while page := store.list_audit(after_seq=after, limit=limit, **filters):
                assert len(page) <= limit
                out.append(page)
                after = page[-1].seq
            return out

        got = pages(5)
        assert [len(p) for p in got] == [5, 5, 5, 5, 3]
        assert [r for p in got for r in p] == everything
        by_bob = pages(3, actor="bob")
        assert [len(p) for p in by_bob] == [3, 3, 2]
        assert [r.seq for p in by_bob for r in p] == [n + 1 for n in range(23) if n % 3 == 1]
        assert [r for p in by_bob for r in p] == store.list_audit(actor="bob")

    # ------------------------------------------------------------------ audit log: concurrency

    def race(self, store: Store, writer: Callable[[Store, str], None]) -> None:
        """Run ``writer(handle, "w1")`` and ``writer(other handle, "w2")`` at once, in two threads."""
        other = self.open_another(store)
        failures: list[BaseException] = []
        barrier = threading.Barrier(2)

        def run(handle: Store, who: str) -> None:
            try:
                barrier.wait(timeout=30)
                writer(handle, who)
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=run, args=(store, "w1"), daemon=True),
            threading.Thread(target=run, args=(other or store, "w2"), daemon=True),
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)
            assert not any(thread.is_alive() for thread in threads), "a writer hung"
        finally:
            if other is not None:
                other.close()
        assert failures == []

    def test_concurrent_append_audit_keeps_one_chain(self, store: Store) -> None:
        per_writer = 50

        def writer(handle: Store, who: str) -> None:
            for i in range(per_writer):
                [rec] = handle.append_audit([_event(1, actor=who, details=(("i", str(i)),))])
                assert rec.event.actor == who

        self.race(store, writer)
        records = self.assert_chain(store, 2 * per_writer)
        for who in ("w1", "w2"):
            mine = [r.event.details for r in records if r.event.actor == who]
            assert mine == [(("i", str(i)),) for i in range(per_writer)]

    def test_concurrent_audited_appends_keep_one_chain(self, store: Store) -> None:
        per_writer = 25
        self.create(store, audit=[_event(1, action="env.create", revision=1)])

        def writer(handle: Store, who: str) -> None:
            for i in range(per_writer):
                for _attempt in range(10_000):
                    latest = handle.get_environment(_ENV).latest_revision
                    try:
                        handle.append_revision(
                            _ENV,
                            expected_latest=latest,
                            definition=f"{who}: {i}\n",
                            compiled="{}",
                            author=who,
                            at=_at(2),
                            audit=[
                                _event(2, actor=who, action="env.write", revision=latest + 1, details=(("i", str(i)),))
                            ],
                        )
                    except ConflictError:
                        continue
                    break
                else:
                    raise AssertionError(f"{who} never got change {i} in")

        self.race(store, writer)
        total = 2 * per_writer + 1
        assert store.get_environment(_ENV).latest_revision == total
        records = self.assert_chain(store, total)  # no record for a losing attempt
        assert [r.event.action for r in records] == ["env.create"] + ["env.write"] * (total - 1)
        assert [r.event.revision for r in records] == list(range(1, total + 1))
        authors = {r.number: r.author for r in store.list_revisions(_ENV)}
        assert all(authors[r.event.revision] == r.event.actor for r in records[1:] if r.event.revision)

    # ------------------------------------------------------------------ tokens

    def test_create_and_get_token(self, store: Store) -> None:
        assert store.get_token(_TOKEN.token_id) is None
        store.create_token(_TOKEN)
        assert store.get_token(_TOKEN.token_id) == _TOKEN
        assert store.get_token("tok_zz") is None
        assert store.get_token(_TOKEN.token_id.upper()) is None
        bare = TokenRecord("tok_c3", "bare", "admin", (), "b" * 64, _at(2), "bob")
        store.create_token(bare)
        got = store.get_token("tok_c3")
        assert got == bare
        assert got is not None
        assert (got.scopes, got.expires_at, got.revoked_at) == ((), None, None)

    def test_list_tokens(self, store: Store) -> None:
        assert store.list_tokens() == []
        tokens = [
            dataclasses.replace(_TOKEN, token_id="tok_b", created_at=_at(2)),
            dataclasses.replace(_TOKEN, token_id="tok_a", created_at=_at(3)),
            dataclasses.replace(_TOKEN, token_id="tok_Z", created_at=_at(2)),
            dataclasses.replace(_TOKEN, token_id="tok_c", created_at=_at(1), revoked_at=_at(2)),
        ]
        for token in tokens:
            store.create_token(token)
        # oldest first, then by id (byte-wise: upper case before lower case)
        assert store.list_tokens() == [tokens[3], tokens[2], tokens[0], tokens[1]]

    def test_revoke_token_keeps_the_first_revocation(self, store: Store) -> None:
        store.create_token(_TOKEN)
        store.create_token(dataclasses.replace(_TOKEN, token_id="tok_b2"))
        store.revoke_token(_TOKEN.token_id, at=_at(10), audit=[_event(10, action="token.revoke")])
        assert store.get_token(_TOKEN.token_id) == dataclasses.replace(_TOKEN, revoked_at=_at(10))
        store.revoke_token(_TOKEN.token_id, at=_at(20), audit=[_event(20, action="token.revoke")])
        got = store.get_token(_TOKEN.token_id)
        assert got is not None
        assert got.revoked_at == _at(10)
        other = store.get_token("tok_b2")
        assert other is not None
        assert other.revoked_at is None
        assert [r.event.at for r in self.assert_chain(store, 2)] == [_at(10), _at(20)]

    def test_revoke_unknown_token(self, store: Store) -> None:
        store.create_token(_TOKEN)
        with pytest.raises(NotFoundError) as caught:
            store.revoke_token("tok_zz", at=_at(10), audit=[_event(10)])
        assert type(caught.value) is NotFoundError
        assert "tok_zz" in caught.value.message
        assert caught.value.hint
        assert store.list_audit() == []
        assert store.list_tokens() == [_TOKEN]

    def test_create_duplicate_token(self, store: Store) -> None:
        store.create_token(_TOKEN, audit=[_event(1, action="token.create")])
        with pytest.raises(AlreadyExistsError) as caught:
            store.create_token(dataclasses.replace(_TOKEN, name="impostor", role="admin"), audit=[_event(2)])
        assert _TOKEN.token_id in caught.value.message
        assert store.list_tokens() == [_TOKEN]
        assert [r.event.action for r in self.assert_chain(store, 1)] == ["token.create"]

    # ------------------------------------------------------------------ environment tags

    def test_set_env_tag_creates_then_updates(self, store: Store) -> None:
        self.create(store)
        assert store.list_env_tags(_ENV) == []
        created = store.set_env_tag(_ENV, "team", "platform", at=_at(10), actor="alice", create_only=True)
        assert created == EnvTagRecord("team", "platform", _at(10), _at(10), "alice")
        assert store.list_env_tags(_ENV) == [created]
        updated = store.set_env_tag(_ENV, "team", "payments", at=_at(11), actor="bob")
        assert updated == EnvTagRecord("team", "payments", _at(10), _at(11), "bob"), "created_at is kept"
        again = store.set_env_tag(_ENV, "team", "é 漢字 🙂\n", at=_at(12), actor="carol", expected_value="payments")
        assert again == EnvTagRecord("team", "é 漢字 🙂\n", _at(10), _at(12), "carol")
        store.set_env_tag(_ENV, "empty", "", at=_at(13), actor="a" * 200)
        assert store.list_env_tags(_ENV) == [EnvTagRecord("empty", "", _at(13), _at(13), "a" * 200), again]
        # Environment tags are not revision tags: the names live apart.
        assert store.list_tags(_ENV) == []
        with pytest.raises(TagNotFoundError):
            store.resolve_tag(_ENV, "team")

    def test_env_tags_list_in_byte_order_and_belong_to_their_environment(self, store: Store) -> None:
        self.create(store)
        self.create(store, _OTHER)
        names = ["zeta", "Zeta", "beta", "beta.2", "beta-2", "beta_2", "B", "a", "t" * 100, "10", "9"]
        for i, name in enumerate(names):
            store.set_env_tag(_ENV, name, f"v{i}", at=_at(i), actor="alice")
        store.set_env_tag(_OTHER, "team", "other", at=_at(20), actor="bob")
        listed = store.list_env_tags(_ENV)
        assert [t.name for t in listed] == sorted(names), "byte-wise: upper case first, '-' < '.' < '_'"
        assert {t.name: t.value for t in listed} == {name: f"v{i}" for i, name in enumerate(names)}
        assert store.list_env_tags(_OTHER) == [EnvTagRecord("team", "other", _at(20), _at(20), "bob")]
        store.delete_env_tag(_OTHER, "team")
        assert len(store.list_env_tags(_ENV)) == len(names)

    def test_set_env_tag_preconditions(self, store: Store) -> None:
        self.create(store)
        first = store.set_env_tag(_ENV, "team", "platform", at=_at(10), actor="alice")
        with pytest.raises(AlreadyExistsError) as exists:
            store.set_env_tag(_ENV, "team", "x", at=_at(11), actor="eve", create_only=True)
        assert "team" in exists.value.message
        assert str(_ENV) in exists.value.message
        with pytest.raises(ConflictError) as stale:
            store.set_env_tag(_ENV, "team", "x", at=_at(12), actor="eve", expected_value="Platform")
        assert not isinstance(stale.value, AlreadyExistsError)
        assert "team" in stale.value.message
        assert stale.value.hint
        with pytest.raises(TagNotFoundError) as missing:
            store.set_env_tag(_ENV, "tier", "x", at=_at(13), actor="eve", expected_value="1")
        assert "tier" in missing.value.message
        with pytest.raises(AlreadyExistsError):  # create_only wins over a matching expected_value
            store.set_env_tag(_ENV, "team", "x", at=_at(14), actor="eve", create_only=True, expected_value="platform")
        assert store.list_env_tags(_ENV) == [first], "a refused write changes nothing"
        matched = store.set_env_tag(_ENV, "team", "payments", at=_at(15), actor="bob", expected_value="platform")
        assert store.list_env_tags(_ENV) == [matched]
        assert matched.value == "payments"

    def test_delete_env_tag(self, store: Store) -> None:
        self.create(store)
        store.set_env_tag(_ENV, "team", "platform", at=_at(10), actor="alice")
        kept = store.set_env_tag(_ENV, "tier", "1", at=_at(11), actor="alice")
        store.delete_env_tag(_ENV, "team")
        assert store.list_env_tags(_ENV) == [kept]
        for name in ("team", "Tier", "nope"):
            with pytest.raises(TagNotFoundError) as caught:
                store.delete_env_tag(_ENV, name)
            assert name in caught.value.message
        assert store.list_env_tags(_ENV) == [kept]
        again = store.set_env_tag(_ENV, "team", "new", at=_at(12), actor="bob", create_only=True)
        assert again == EnvTagRecord("team", "new", _at(12), _at(12), "bob"), "a deleted tag comes back new"

    def test_env_tags_of_unknown_environment(self, store: Store) -> None:
        self.create(store)
        store.set_env_tag(_ENV, "team", "platform", at=_at(10), actor="alice")
        with pytest.raises(EnvironmentNotFoundError) as caught:
            store.list_env_tags(_OTHER)
        assert str(_OTHER) in caught.value.message
        with pytest.raises(EnvironmentNotFoundError):
            store.set_env_tag(_OTHER, "team", "x", at=_at(11), actor="eve")
        with pytest.raises(EnvironmentNotFoundError):
            store.set_env_tag(_OTHER, "team", "x", at=_at(11), actor="eve", create_only=True)
        with pytest.raises(EnvironmentNotFoundError):
            store.set_env_tag(_OTHER, "team", "x", at=_at(11), actor="eve", expected_value="platform")
        with pytest.raises(EnvironmentNotFoundError):
            store.delete_env_tag(_OTHER, "team")
        assert [e.ref for e in store.list_environments()] == [_ENV]

    def test_env_tags_vanish_with_their_environment(self, store: Store) -> None:
        self.create(store)
        self.create(store, _OTHER)
        store.set_env_tag(_ENV, "team", "platform", at=_at(10), actor="alice")
        store.set_env_tag(_ENV, "tier", "1", at=_at(10), actor="alice")
        kept = store.set_env_tag(_OTHER, "team", "other", at=_at(10), actor="alice")
        store.delete_environment(_ENV)
        with pytest.raises(EnvironmentNotFoundError):
            store.list_env_tags(_ENV)
        self.create(store)
        assert store.list_env_tags(_ENV) == [], "the old tags came back with the new environment"
        assert store.list_env_tags(_OTHER) == [kept]
        store.set_env_tag(_ENV, "team", "new", at=_at(11), actor="bob", create_only=True)
        assert self.count_rows(store, "environment_tags") == 2, "the deleted environment's tags are still stored"

    def test_concurrent_env_tag_updates_lose_no_update(self, store: Store) -> None:
        """``expected_value`` is a compare-and-set: two writers counting up in one tag lose no step."""
        per_writer = 25
        self.create(store)
        store.set_env_tag(_ENV, "counter", "0", at=_at(1), actor="alice")

        def writer(handle: Store, who: str) -> None:
            for _step in range(per_writer):
                for _attempt in range(10_000):
                    [tag] = [t for t in handle.list_env_tags(_ENV) if t.name == "counter"]
                    try:
                        handle.set_env_tag(
                            _ENV, "counter", str(int(tag.value) + 1), at=_at(2), actor=who, expected_value=tag.value
                        )
                    except ConflictError:
                        continue
                    break
                else:
                    raise AssertionError(f"{who} never got a step in")

        self.race(store, writer)
        assert [t.value for t in store.list_env_tags(_ENV)] == [str(2 * per_writer)]

    # ------------------------------------------------------------------ open sessions

    def test_open_session_round_trip(self, store: Store) -> None:
        session = OpenSession("a" * 32, _ENV, 3, "alice", _at(1), _at(600))
        other = OpenSession("b" * 32, EnvRef("p" * 100, "n" * 100), 2_000_000_000, "ünï " + "b" * 190, _at(2), _at(9))
        assert store.get_open_session(session.session_id) is None
        store.create_open_session(session)
        store.create_open_session(other)
        assert store.get_open_session(session.session_id) == session
        assert store.get_open_session(other.session_id) == other
        assert store.get_open_session("A" * 32) is None
        assert store.get_open_session("") is None

    def test_delete_expired_sessions(self, store: Store) -> None:
        expiries = {"s1": _at(100), "s2": _at(200), "s3": _at(200), "s4": _at(300)}
        for sid, expires in expiries.items():
            store.create_open_session(OpenSession(sid, _ENV, 1, "alice", _at(1), expires))
        assert store.delete_expired_sessions(_at(99)) == 0
        assert store.delete_expired_sessions(_at(100)) == 1, "a session expires at its expires_at"
        assert store.get_open_session("s1") is None
        assert store.delete_expired_sessions(_at(250)) == 2
        assert store.delete_expired_sessions(_at(250)) == 0
        assert [store.get_open_session(sid) is not None for sid in expiries] == [False, False, False, True]
        assert store.delete_expired_sessions(_at(3000)) == 1
        assert store.get_open_session("s4") is None

    def test_duplicate_open_session_is_refused(self, store: Store) -> None:
        session = OpenSession("a" * 32, _ENV, 1, "alice", _at(1), _at(600))
        store.create_open_session(session)
        with pytest.raises(AlreadyExistsError) as caught:
            store.create_open_session(dataclasses.replace(session, actor="eve", revision=2))
        assert session.session_id not in caught.value.message, "a session id is as good as a password"
        assert store.get_open_session(session.session_id) == session

    # ------------------------------------------------------------------ webhooks

    def test_create_list_and_delete_webhooks(self, store: Store) -> None:
        assert store.list_webhooks() == []
        hooks = [
            dataclasses.replace(_HOOK, webhook_id="wh_b", created_at=_at(2)),
            dataclasses.replace(_HOOK, webhook_id="wh_a", created_at=_at(3), last_seq=2**40),
            dataclasses.replace(_HOOK, webhook_id="wh_Z", created_at=_at(2), environment=None, active=False),
            dataclasses.replace(_HOOK, webhook_id="wh_c", created_at=_at(1), events=()),
        ]
        for hook in hooks:
            store.create_webhook(hook)
        # oldest first, then by id (byte-wise: upper case before lower case); every field round-trips
        assert store.list_webhooks() == [hooks[3], hooks[2], hooks[0], hooks[1]]
        store.delete_webhook("wh_b")
        assert store.list_webhooks() == [hooks[3], hooks[2], hooks[1]]
        with pytest.raises(NotFoundError) as caught:
            store.delete_webhook("wh_b")
        assert type(caught.value) is NotFoundError
        assert "wh_b" in caught.value.message
        assert caught.value.hint
        with pytest.raises(AlreadyExistsError) as exists:
            store.create_webhook(dataclasses.replace(hooks[1], url="https://evil.example/"))
        assert "wh_a" in exists.value.message
        assert store.list_webhooks() == [hooks[3], hooks[2], hooks[1]]

    def test_delete_webhook_removes_its_deliveries(self, store: Store) -> None:
        other = dataclasses.replace(_HOOK, webhook_id="wh_b2")
        store.create_webhook(_HOOK)
        store.create_webhook(other)
        batch = [(1, "env.write", "{}"), (2, "env.tag", "{}")]
        assert store.enqueue_deliveries(_HOOK.webhook_id, batch, expected_last_seq=0, new_last_seq=2, at=_at(5))
        assert store.enqueue_deliveries(other.webhook_id, batch, expected_last_seq=0, new_last_seq=2, at=_at(5))
        store.delete_webhook(_HOOK.webhook_id)
        assert {d.webhook_id for d in store.list_deliveries()} == {other.webhook_id}
        assert {d.webhook_id for d in store.due_deliveries(_at(100))} == {other.webhook_id}
        assert store.list_deliveries(webhook_id=_HOOK.webhook_id) == []
        assert self.count_rows(store, "webhook_deliveries") == 2
        # The id can be used again, and starts with no deliveries.
        store.create_webhook(_HOOK)
        assert store.list_deliveries(webhook_id=_HOOK.webhook_id) == []

    # ------------------------------------------------------------------ webhook deliveries

    @staticmethod
    def queue(store: Store, at: str, seqs: Sequence[int], *, webhook_id: str = _HOOK.webhook_id) -> None:
        """Enqueue deliveries of audit records ``seqs`` (cursor moving from whatever it is to the last one)."""
        [hook] = [h for h in store.list_webhooks() if h.webhook_id == webhook_id]
        batch = [(seq, "env.write", f'{{"seq": {seq}}}') for seq in seqs]
        assert store.enqueue_deliveries(
            webhook_id, batch, expected_last_seq=hook.last_seq, new_last_seq=max(seqs, default=hook.last_seq), at=at
        )

    def test_enqueue_moves_the_cursor_and_queues(self, store: Store) -> None:
        store.create_webhook(dataclasses.replace(_HOOK, last_seq=5))
        batch = [(6, "env.write", '{"seq": 6, "é": "🙂"}'), (8, "env.tag", "{}")]
        assert store.enqueue_deliveries(_HOOK.webhook_id, batch, expected_last_seq=5, new_last_seq=9, at=_at(10))
        assert [h.last_seq for h in store.list_webhooks()] == [9]
        deliveries = store.list_deliveries()
        assert [(d.audit_seq, d.event, d.payload) for d in deliveries] == [(8, "env.tag", "{}"), batch[0]]
        assert deliveries[0].delivery_id > deliveries[1].delivery_id
        for d in deliveries:
            assert (d.webhook_id, d.status, d.attempts, d.last_status, d.last_error) == (
                _HOOK.webhook_id,
                "pending",
                0,
                None,
                None,
            )
            assert (d.next_attempt_at, d.created_at, d.updated_at) == (_at(10), _at(10), _at(10))
        # Nothing to deliver still moves the cursor past what was looked at.
        assert store.enqueue_deliveries(_HOOK.webhook_id, [], expected_last_seq=9, new_last_seq=12, at=_at(11))
        assert [h.last_seq for h in store.list_webhooks()] == [12]
        assert store.list_deliveries() == deliveries

    def test_enqueue_on_a_moved_cursor_writes_nothing(self, store: Store) -> None:
        store.create_webhook(_HOOK)
        self.queue(store, _at(10), [1, 2])
        before = store.list_deliveries()
        for stale in (0, 1, 3):
            assert not store.enqueue_deliveries(
                _HOOK.webhook_id, [(3, "env.write", "{}")], expected_last_seq=stale, new_last_seq=3, at=_at(11)
            )
        assert not store.enqueue_deliveries(
            "wh_zz", [(3, "env.write", "{}")], expected_last_seq=0, new_last_seq=3, at=_at(11)
        )
        assert [h.last_seq for h in store.list_webhooks()] == [2]
        assert store.list_deliveries() == before
        assert self.count_rows(store, "webhook_deliveries") == 2

    def test_enqueue_ignores_duplicates(self, store: Store) -> None:
        other = dataclasses.replace(_HOOK, webhook_id="wh_b2")
        store.create_webhook(_HOOK)
        store.create_webhook(other)
        first = [(1, "env.write", "first"), (2, "env.write", "first")]
        assert store.enqueue_deliveries(_HOOK.webhook_id, first, expected_last_seq=0, new_last_seq=2, at=_at(10))
        again = [(2, "env.tag", "again"), (3, "env.tag", "again"), (3, "env.tag", "twice")]
        assert store.enqueue_deliveries(_HOOK.webhook_id, again, expected_last_seq=2, new_last_seq=3, at=_at(11))
        got = [(d.audit_seq, d.event, d.payload, d.created_at) for d in store.list_deliveries()]
        assert got == [
            (3, "env.tag", "again", _at(11)),
            (2, "env.write", "first", _at(10)),
            (1, "env.write", "first", _at(10)),
        ]
        # The same audit record for another webhook is another delivery.
        assert store.enqueue_deliveries(other.webhook_id, first, expected_last_seq=0, new_last_seq=2, at=_at(12))
        assert [d.audit_seq for d in store.list_deliveries(webhook_id=other.webhook_id)] == [2, 1]
        assert [h.last_seq for h in store.list_webhooks()] == [3, 2]

    def test_due_deliveries_are_oldest_first_and_up_to_now(self, store: Store) -> None:
        other = dataclasses.replace(_HOOK, webhook_id="wh_b2")
        store.create_webhook(_HOOK)
        store.create_webhook(other)
        self.queue(store, _at(30), [1, 2])
        self.queue(store, _at(10), [3], webhook_id=other.webhook_id)
        self.queue(store, _at(20), [4, 5])
        self.queue(store, _at(10), [6], webhook_id=other.webhook_id)
        assert store.due_deliveries(_at(9)) == []
        due = store.due_deliveries(_at(30))
        # by next_attempt_at, then in the order they were queued
        assert [(d.webhook_id[-1], d.audit_seq) for d in due] == [
            ("2", 3),
            ("2", 6),
            ("1", 4),
            ("1", 5),
            ("1", 1),
            ("1", 2),
        ]
        assert [d.audit_seq for d in store.due_deliveries(_at(20))] == [3, 6, 4, 5], "due at now is due"
        assert [d.audit_seq for d in store.due_deliveries(_at(30), limit=3)] == [3, 6, 4]
        assert store.due_deliveries(_at(30), limit=0) == []
        by_seq = {d.audit_seq: d.delivery_id for d in due}
        for seq, status, next_at in ((3, "delivered", _at(31)), (6, "failed", _at(31)), (4, "pending", _at(40))):
            store.record_delivery_attempt(
                by_seq[seq],
                status=status,
                attempts=1,
                next_attempt_at=next_at,
                last_status=None,
                last_error=None,
                at=_at(31),
            )
        assert [d.audit_seq for d in store.due_deliveries(_at(39))] == [5, 1, 2], "only pending ones are due"
        assert [d.audit_seq for d in store.due_deliveries(_at(40))] == [5, 1, 2, 4]

    def test_claim_delivery_is_a_lease(self, store: Store) -> None:
        store.create_webhook(_HOOK)
        self.queue(store, _at(10), [1, 2])
        self.queue(store, _at(50), [3])
        first, second, later = sorted(d.delivery_id for d in store.list_deliveries())
        assert store.claim_delivery(first, now=_at(20), lease_until=_at(80))
        [claimed] = store.list_deliveries(limit=3)[2:]
        assert (claimed.delivery_id, claimed.next_attempt_at, claimed.status) == (first, _at(80), "pending")
        assert (claimed.attempts, claimed.updated_at) == (0, _at(10))
        assert [d.delivery_id for d in store.due_deliveries(_at(20))] == [second], "a leased delivery is not due"
        assert not store.claim_delivery(first, now=_at(20), lease_until=_at(90)), "taken already"
        assert not store.claim_delivery(first, now=_at(79), lease_until=_at(90)), "the lease has not run out"
        assert not store.claim_delivery(later, now=_at(20), lease_until=_at(80)), "not due yet"
        assert not store.claim_delivery(10_000, now=_at(20), lease_until=_at(80)), "no such delivery"
        assert store.claim_delivery(later, now=_at(50), lease_until=_at(80)), "due at now is due"
        # A lease that ran out (the claimant died) can be taken again.
        assert store.claim_delivery(first, now=_at(80), lease_until=_at(140))
        store.record_delivery_attempt(
            second,
            status="delivered",
            attempts=1,
            next_attempt_at=_at(21),
            last_status=204,
            last_error=None,
            at=_at(21),
        )
        assert not store.claim_delivery(second, now=_at(100), lease_until=_at(160)), "delivered is not pending"
        assert [d.next_attempt_at for d in sorted(store.list_deliveries(), key=lambda d: d.delivery_id)] == [
            _at(140),
            _at(21),
            _at(80),
        ]

    def test_concurrent_claims_have_one_winner(self, store: Store) -> None:
        rounds = 20
        store.create_webhook(_HOOK)
        self.queue(store, _at(10), range(1, rounds + 1))
        ids = sorted(d.delivery_id for d in store.list_deliveries(limit=rounds))
        wins: dict[str, list[int]] = {"w1": [], "w2": []}
        barrier = threading.Barrier(2)

        def claimant(handle: Store, who: str) -> None:
            for delivery_id in ids:
                barrier.wait(timeout=30)  # both go for the same delivery at once
                if handle.claim_delivery(delivery_id, now=_at(20), lease_until=_at(80)):
                    wins[who].append(delivery_id)

        self.race(store, claimant)
        assert sorted(wins["w1"] + wins["w2"]) == ids, wins
        assert store.due_deliveries(_at(79)) == []

    def test_record_delivery_attempt_and_list_deliveries(self, store: Store) -> None:
        other = dataclasses.replace(_HOOK, webhook_id="wh_b2")
        store.create_webhook(_HOOK)
        store.create_webhook(other)
        assert store.list_deliveries() == []
        self.queue(store, _at(10), [1, 2])
        self.queue(store, _at(11), [3], webhook_id=other.webhook_id)
        self.queue(store, _at(12), [4])
        one, two, three, four = sorted(store.list_deliveries(), key=lambda d: d.delivery_id)
        store.record_delivery_attempt(
            one.delivery_id,
            status="pending",
            attempts=1,
            next_attempt_at=_at(70),
            last_status=503,
            last_error="HTTP 503",
            at=_at(20),
        )
        store.record_delivery_attempt(
            three.delivery_id,
            status="failed",
            attempts=5,
            next_attempt_at=_at(21),
            last_status=None,
            last_error="ConnectError",
            at=_at(21),
        )
        store.record_delivery_attempt(
            one.delivery_id,
            status="delivered",
            attempts=2,
            next_attempt_at=_at(72),
            last_status=200,
            last_error=None,
            at=_at(72),
        )
        store.record_delivery_attempt(  # an unknown id changes nothing
            10_000, status="delivered", attempts=1, next_attempt_at=_at(1), last_status=200, last_error=None, at=_at(1)
        )
        one_after = dataclasses.replace(
            one, status="delivered", attempts=2, next_attempt_at=_at(72), last_status=200, updated_at=_at(72)
        )
        three_after = dataclasses.replace(
            three, status="failed", attempts=5, next_attempt_at=_at(21), last_error="ConnectError", updated_at=_at(21)
        )
        assert store.list_deliveries() == [four, three_after, two, one_after], "newest first"
        assert store.list_deliveries(webhook_id=_HOOK.webhook_id) == [four, two, one_after]
        assert store.list_deliveries(webhook_id=other.webhook_id) == [three_after]
        assert store.list_deliveries(webhook_id="wh_zz") == []
        assert store.list_deliveries(limit=2) == [four, three_after]
        assert store.list_deliveries(webhook_id=_HOOK.webhook_id, limit=1) == [four]
        assert store.list_deliveries(limit=0) == []
        assert [d.delivery_id for d in store.due_deliveries(_at(100))] == [two.delivery_id, four.delivery_id]
