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
the concurrency test races two handles instead of two threads on one.
"""

from __future__ import annotations

__all__ = ["StoreConformance"]

import threading
from collections.abc import Callable

import pytest

from strongroom.errors import (
    AlreadyExistsError,
    ConflictError,
    EnvironmentNotFoundError,
    InvalidInputError,
    RevisionNotFoundError,
    TagNotFoundError,
)
from strongroom.model import MAX_DEFINITION_BYTES, EnvRef, RevisionRecord
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


class StoreConformance:
    """The behaviour the ``Store`` Protocol promises, as tests. Needs a ``store`` fixture."""

    # ------------------------------------------------------------------ hooks

    def open_another(self, store: Store) -> Store | None:
        """A second handle on ``store``'s database, closed by the caller; ``None`` to share ``store``."""
        return None

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def create(store: Store, ref: EnvRef = _ENV, *, data_key: bytes = _KEY, key_id: str = "k1") -> RevisionRecord:
        return store.create_environment(
            ref,
            data_key=data_key,
            key_id=key_id,
            definition=_definition(1),
            compiled=_compiled(1),
            author="alice",
            at=_at(1),
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
