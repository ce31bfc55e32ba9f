"""Storage backends against the conformance suite, plus migrations and opening a store."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from strongroom.audit.chain import verify
from strongroom.errors import InvalidInputError, StoreUnavailableError
from strongroom.model import AuditEvent, EnvRef, TokenRecord, WebhookRecord
from strongroom.storage import migrate
from strongroom.storage.base import SCHEMA_VERSION, Store, open_store
from strongroom.storage.sql import SqlAlchemyStore
from strongroom.testing.storage_conformance import StoreConformance

TABLES = {
    "alembic_version",
    "environments",
    "revisions",
    "revision_tags",
    "store_meta",
    "audit_log",
    "audit_head",
    "tokens",
    "environment_tags",
    "open_sessions",
    "webhooks",
    "webhook_deliveries",
}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def set_version(url: str, version: str) -> None:
    engine = sa.create_engine(migrate.normalise_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": version})
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(migrate.normalise_url(url), poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def run_sql(url: str, sql: str) -> None:
    """Run one statement on the database at ``url`` through a connection of its own, and commit."""
    engine = sa.create_engine(migrate.normalise_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(sql)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- two processes

# Appends COUNT revisions to aphiria.com/Preview, each with its audit event, retrying on
# ConflictError. Says "ready", waits for a line on stdin, then races; prints its conflicts.
RACE_SCRIPT = r"""
import sys
from pathlib import Path

from strongroom.errors import ConflictError
from strongroom.model import AuditEvent, EnvRef, TokenRecord, WebhookRecord

kind, who, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
target = sys.stdin.readline().strip()
if kind == "native":
    from strongroom.storage.sqlite import SqliteStore

    store = SqliteStore.open(Path(target))
else:
    from strongroom.storage.sql import SqlAlchemyStore

    store = SqlAlchemyStore.open(target, create=False)
env = EnvRef("aphiria.com", "Preview")
conflicts = 0
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    for _attempt in range(100_000):
        latest = store.get_environment(env).latest_revision
        event = AuditEvent(
            at=f"2026-11-29T03:00:00.{i:06d}Z",
            actor=who,
            action="env.write",
            environment=str(env),
            revision=latest + 1,
            details=(("i", str(i)),),
        )
        try:
            store.append_revision(
                env,
                expected_latest=latest,
                definition=f"{who}: {i}\n",
                compiled="{}",
                author=who,
                at=event.at,
                audit=[event],
            )
        except ConflictError:
            conflicts += 1
            continue
        break
    else:
        raise SystemExit(f"{who} never got change {i} in")
store.close()
print(f"done {conflicts}", flush=True)
"""


def race_two_processes(store: Store, kind: str, target: str, *, per_process: int = 50) -> list[int]:
    """Two processes each append ``per_process`` audited revisions to aphiria.com/Preview at once.

    ``target`` (a URL or a path) goes to them on stdin, not on the command line. Returns their
    conflict counts after checking the store: one unbroken chain, one record per revision.
    """
    env = EnvRef("aphiria.com", "Preview")
    store.create_environment(
        env,
        data_key=b"k",
        key_id="k1",
        definition="a: 1\n",
        compiled="{}",
        author="alice",
        at="2026-11-29T02:00:00Z",
        audit=[AuditEvent(at="2026-11-29T02:00:00Z", actor="alice", action="env.create", environment=str(env))],
    )
    outputs = run_two_processes(RACE_SCRIPT, target, [[kind, who, str(per_process)] for who in ("p1", "p2")])
    total = 2 * per_process + 1
    assert store.get_environment(env).latest_revision == total
    records = store.list_audit()
    head = store.audit_head()
    assert verify(records, head=head) == (total, None)
    assert head[0] == total
    assert [r.event.action for r in records] == ["env.create"] + ["env.write"] * (total - 1)
    assert [r.event.revision for r in records[1:]] == list(range(2, total + 1))
    for who in ("p1", "p2"):
        mine = [r.event.details for r in records if r.event.actor == who]
        assert mine == [(("i", str(i)),) for i in range(per_process)]
    authors = {r.number: r.author for r in store.list_revisions(env)}
    assert all(authors[r.event.revision] == r.event.actor for r in records[1:] if r.event.revision)
    return [int(out.split()[-1]) for out in outputs]


@contextmanager
def ready_processes(script: str, target: str, argvs: list[list[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start ``script`` in one process per ``argvs`` entry and wait until each has said "ready".

    Each process first reads ``target`` (a URL or a path: it goes on stdin, not on the command
    line). Processes still running when the block ends are killed.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for argv in argvs
    ]
    try:
        for proc in procs:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(target + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            assert line == "ready\n", (line, proc.stderr.read() if proc.stderr else "")
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    """Close the processes' stdin, wait for them to succeed, and return what each printed."""
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    return [out for out, _err in outputs]


def run_two_processes(script: str, target: str, argvs: list[list[str]]) -> list[str]:
    """Run ``script`` in one process per ``argvs`` entry, released at once by a line on stdin once
    all are ready; returns their stdouts."""
    with ready_processes(script, target, argvs) as procs:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return finish(procs)


# For every delivery id it reads on stdin, tries to claim it and prints 1 (won) or 0 (lost).
CLAIM_SCRIPT = r"""
import sys

from strongroom.storage.sql import SqlAlchemyStore

store = SqlAlchemyStore.open(sys.stdin.readline().strip(), create=False)
print("ready", flush=True)
for line in sys.stdin:
    won = store.claim_delivery(int(line), now=sys.argv[1], lease_until=sys.argv[2])
    print(int(won), flush=True)
store.close()
"""


def race_two_processes_to_claim(store: Store, target: str, *, deliveries: int = 50) -> list[int]:
    """Two processes each try to claim the same ``deliveries`` due deliveries; returns how many each won,
    after checking that every delivery was claimed exactly once in total.

    They go in lockstep: both are handed the same delivery at the same moment, and the next one only
    when both have answered, so every delivery is contended (not just the first few).
    """
    at, now, lease_until = "2026-11-29T02:00:00.000000Z", "2026-11-29T03:00:00.000000Z", "2026-11-29T03:05:00.000000Z"
    store.create_webhook(
        WebhookRecord("wh_race", None, "https://hooks.example/", "{}", ("env.write",), at, "alice", last_seq=0)
    )
    batch = [(seq, "env.write", "{}") for seq in range(1, deliveries + 1)]
    assert store.enqueue_deliveries("wh_race", batch, expected_last_seq=0, new_last_seq=deliveries, at=at)
    ids = sorted(d.delivery_id for d in store.due_deliveries(now, limit=deliveries))
    assert len(ids) == deliveries
    winners: dict[int, list[int]] = {}
    with ready_processes(CLAIM_SCRIPT, target, [[now, lease_until]] * 2) as procs:
        for delivery_id in ids:
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(f"{delivery_id}\n")
                proc.stdin.flush()
            answers = [proc.stdout.readline() if proc.stdout else "" for proc in procs]
            for proc, answer in zip(procs, answers, strict=True):
                # Anything else means the process died (its stdout ended): its stderr says why.
                assert answer in ("0\n", "1\n"), (answer, proc.stderr.read() if proc.stderr else "")
            winners[delivery_id] = [n for n, a in enumerate(answers) if a == "1\n"]
        finish(procs)
    assert {d: w for d, w in winners.items() if len(w) != 1} == {}, "claimed by both, or by neither"
    assert store.due_deliveries(now) == []
    assert {d.next_attempt_at for d in store.list_deliveries()} == {lease_until}
    return [sum(w == [n] for w in winners.values()) for n in range(2)]


# --------------------------------------------------------------------------- conformance


class TestSqlAlchemyStoreOnSqlite(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        self.url = sqlite_url(tmp_path / "store.db")
        store = SqlAlchemyStore.open(self.url, create=True)
        yield store
        store.close()

    def open_another(self, store: Store) -> Store | None:
        return SqlAlchemyStore.open(self.url, create=False)

    def tamper(self, store: Store, sql: str) -> None:
        run_sql(self.url, sql)

    def test_two_processes_extend_one_audit_chain(self, store: Store) -> None:
        race_two_processes(store, "sqlalchemy", self.url)

    @pytest.mark.parametrize(
        ("filters", "index"),
        [
            ({"environment": "a/b"}, "ix_audit_log_environment"),
            ({"actor": "alice"}, "ix_audit_log_actor"),
            ({"action": "env.read"}, "ix_audit_log_action"),
        ],
    )
    def test_list_audit_uses_the_index(self, store: Store, filters: dict[str, str], index: str) -> None:
        assert isinstance(store, SqlAlchemyStore)
        query = store._audit_query(**filters, after_seq=10, limit=5)
        sql = str(query.compile(dialect=sa.dialects.sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        finally:
            engine.dispose()
        assert f"USING INDEX {index}" in plan, plan
        assert "seq>?" in plan.replace(" ", ""), plan  # keyset paging runs on the index too
        assert "TEMP B-TREE" not in plan, plan  # and the index gives the order: no sort


@pytest.mark.postgres
class TestSqlAlchemyStoreOnPostgres(StoreConformance):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[Store]:
        self.url = postgres_url
        store = SqlAlchemyStore.open(self.url, create=True)
        yield store
        store.close()

    def open_another(self, store: Store) -> Store | None:
        return SqlAlchemyStore.open(self.url, create=False)

    def tamper(self, store: Store, sql: str) -> None:
        run_sql(self.url, sql)

    def test_two_processes_extend_one_audit_chain(self, store: Store) -> None:
        conflicts = race_two_processes(store, "sqlalchemy", self.url)
        print(f"conflicts retried: {conflicts}")

    def test_two_processes_claim_each_delivery_once(self, store: Store) -> None:
        won = race_two_processes_to_claim(store, self.url)
        print(f"claims won: {won}")

    def test_overlong_audit_value_fails_the_change(self, store: Store) -> None:
        """PostgreSQL enforces the column lengths: an audit event that does not fit fails its change."""
        self.create(store)
        self.append(store, EnvRef("aphiria.com", "Preview"), 1)
        with pytest.raises(StoreUnavailableError, match="audit log"):
            store.append_revision(
                EnvRef("aphiria.com", "Preview"),
                expected_latest=2,
                definition="x: 1\n",
                compiled="{}",
                author="bob",
                at="2026-11-29T02:00:00Z",
                audit=[AuditEvent(at="2026-11-29T02:00:00Z", actor="m" * 201, action="env.write")],
            )
        assert store.get_environment(EnvRef("aphiria.com", "Preview")).latest_revision == 2
        assert store.list_audit() == []
        assert store.audit_head()[0] == 0

    @pytest.mark.parametrize(
        ("filters", "index"),
        [
            ({"environment": "aphiria.com/Preview"}, "ix_audit_log_environment"),
            ({"actor": "alice"}, "ix_audit_log_actor"),
            ({"action": "env.create"}, "ix_audit_log_action"),
        ],
    )
    def test_list_audit_uses_the_index(self, store: Store, filters: dict[str, str], index: str) -> None:
        assert isinstance(store, SqlAlchemyStore)
        # Enough rows, and statistics, for the planner to prefer an index to a scan.
        values = [("aphiria.com/Other", "bob", "env.read")] * 4000 + [("aphiria.com/Preview", "alice", "env.create")]
        store.append_audit(
            [
                AuditEvent(at="2026-11-29T02:00:00Z", actor=actor, action=action, environment=environment)
                for environment, actor, action in values
            ]
        )
        self.tamper(store, "ANALYZE audit_log")
        query = store._audit_query(**filters, after_seq=10, limit=5)
        sql = str(query.compile(dialect=sa.dialects.postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                plan = "\n".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}"))
        finally:
            engine.dispose()
        assert f"Index Scan using {index}" in plan, plan
        assert "Sort" not in plan, plan
        assert [r.seq for r in store.list_audit(**filters, after_seq=10, limit=5)] == [4001]


class TestNativeSqliteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        try:
            from strongroom.storage.sqlite import SqliteStore
        except ModuleNotFoundError as exc:
            if exc.name != "strongroom.storage.sqlite":
                raise
            pytest.skip("strongroom.storage.sqlite (SqliteStore) does not exist yet")
        self.path = tmp_path / "store.db"
        store = SqliteStore.open(self.path, create=True)
        yield store
        store.close()

    def open_another(self, store: Store) -> Store | None:
        from strongroom.storage.sqlite import SqliteStore

        return SqliteStore.open(self.path, create=False)

    def tamper(self, store: Store, sql: str) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute(sql)
        finally:
            conn.close()

    def test_two_processes_extend_one_audit_chain(self, store: Store) -> None:
        race_two_processes(store, "native", str(self.path))

    # Known bugs of SqliteStore (strongroom/storage/sqlite.py), kept visible: strict, so a fix shows up.

    def test_env_tags_vanish_with_their_environment(self, store: Store) -> None:
        super().test_env_tags_vanish_with_their_environment(store)

    def test_duplicate_open_session_is_refused(self, store: Store) -> None:
        super().test_duplicate_open_session_is_refused(store)


def test_both_sqlite_stores_extend_the_same_chain(tmp_path: Path) -> None:
    """The native store and SqlAlchemyStore read and write one SQLite file's audit log alike."""
    from strongroom.storage.sqlite import SqliteStore

    path = tmp_path / "store.db"
    native = SqliteStore.open(path, create=True)
    other = SqlAlchemyStore.open(sqlite_url(path), create=False)
    try:
        details = (("value", "hmac:é🙂"), ("view", "open"))
        event = AuditEvent(at="2026-11-29T02:00:00Z", actor="ünï", action="env.open", details=details)
        written = native.append_audit([event]) + other.append_audit([event]) + native.append_audit([event])
        other.create_token(
            TokenRecord("tok_a1", "ci", "reader", ("a/*",), "a" * 64, "2026-11-29T02:00:00Z", "alice"),
            audit=[event],
        )
        native.revoke_token("tok_a1", at="2026-11-29T03:00:00Z", audit=[event])
        assert written == native.list_audit()[:3]
        assert native.list_audit() == other.list_audit()
        assert native.audit_head() == other.audit_head()
        assert verify(other.list_audit(), head=other.audit_head()) == (5, None)
        assert native.list_tokens() == other.list_tokens()
        assert other.list_tokens()[0].revoked_at == "2026-11-29T03:00:00Z"
        # Environment tags, webhooks and deliveries too.
        env = EnvRef("a", "b")
        other.create_environment(env, data_key=b"k", key_id="k1", definition="", compiled="{}", author="a", at="t")
        tag = native.set_env_tag(env, "team", "ünï", at="2026-11-29T02:00:00Z", actor="alice")
        assert other.list_env_tags(env) == [tag]
        hook = WebhookRecord("wh_1", None, "https://h.example/", "{}", ("env.write", "é"), "t", "a", 0, active=False)
        native.create_webhook(hook, audit=[event])
        assert other.list_webhooks() == [hook]
        assert other.enqueue_deliveries("wh_1", [(5, "env.write", "{}")], expected_last_seq=0, new_last_seq=5, at="t")
        [delivery] = native.due_deliveries("t")
        assert other.claim_delivery(delivery.delivery_id, now="t", lease_until="u")
        assert not native.claim_delivery(delivery.delivery_id, now="t", lease_until="u")
        assert native.list_deliveries() == other.list_deliveries()
        assert native.list_webhooks() == [dataclasses.replace(hook, last_seq=5)]
        other.delete_environment(env)
        assert verify(native.list_audit(), head=native.audit_head()) == (6, None)
    finally:
        native.close()
        other.close()


# --------------------------------------------------------------------------- migrations


def test_head_is_schema_version() -> None:
    assert migrate.known_versions()[-1] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////abs/path.db", "sqlite:////abs/path.db"),
    ],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert migrate.normalise_url(given) == expected


def test_upgrade_sqlite_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "store.db"
    url = sqlite_url(path)
    assert migrate.current_version(url) is None
    assert not path.exists(), "current_version must not create the file"
    migrate.upgrade(url)
    assert migrate.current_version(url) == SCHEMA_VERSION
    assert path.stat().st_mode & 0o077 == 0, "the store file is readable by its owner only"
    migrate.upgrade(url)
    assert migrate.current_version(url) == SCHEMA_VERSION
    assert table_names(url) >= TABLES


@pytest.mark.postgres
def test_upgrade_postgres_is_idempotent(postgres_url: str) -> None:
    assert migrate.current_version(postgres_url) is None
    migrate.upgrade(postgres_url)
    migrate.upgrade(postgres_url)
    assert migrate.current_version(postgres_url) == SCHEMA_VERSION
    assert table_names(postgres_url) >= TABLES


@pytest.mark.postgres
def test_upgrade_accepts_plain_postgresql_urls(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    migrate.upgrade(plain)
    assert migrate.current_version(plain.replace("postgresql://", "postgres://")) == SCHEMA_VERSION


# --------------------------------------------------------------------------- opening


def test_missing_sqlite_store_is_not_initialised(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with pytest.raises(StoreUnavailableError) as caught:
        SqlAlchemyStore.open(sqlite_url(path), create=False)
    assert "not initialised" in str(caught.value)
    assert "strongroom init" in str(caught.value)
    assert not path.exists(), "opening must not create the file"


def test_empty_sqlite_store_is_not_initialised(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.touch()
    with pytest.raises(StoreUnavailableError, match="strongroom init"):
        SqlAlchemyStore.open(sqlite_url(path), create=False)


@pytest.mark.postgres
def test_empty_postgres_store_is_not_initialised(postgres_url: str) -> None:
    with pytest.raises(StoreUnavailableError, match="not initialised; run `strongroom init`"):
        SqlAlchemyStore.open(postgres_url, create=False)


def test_open_with_create_then_without(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "store.db")
    SqlAlchemyStore.open(url, create=True).close()
    store = SqlAlchemyStore.open(url, create=False)
    try:
        assert store.list_environments() == []
    finally:
        store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "store.db")
    migrate.upgrade(url)
    set_version(url, "9999")
    for create in (False, True):
        with pytest.raises(StoreUnavailableError, match="newer") as caught:
            SqlAlchemyStore.open(url, create=create)
        assert caught.value.hint == "upgrade Strongroom"
    assert migrate.current_version(url) == "9999"


def test_older_schema_asks_for_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrate, "known_versions", lambda: ("0000", SCHEMA_VERSION))
    with pytest.raises(StoreUnavailableError) as caught:
        migrate.check_version("0000", where="somewhere")
    assert "run `strongroom init` to migrate" in str(caught.value)


def test_unreachable_postgres_names_host_but_not_password() -> None:
    url = "postgresql://strongroom:s3cr3t-pw@127.0.0.1:1/db"
    with pytest.raises(StoreUnavailableError) as caught:
        SqlAlchemyStore.open(url, create=False)
    text = f"{caught.value} {caught.value!r}"
    assert "127.0.0.1" in text
    assert "s3cr3t-pw" not in text
    with pytest.raises(StoreUnavailableError) as caught:
        migrate.upgrade(url)
    assert "s3cr3t-pw" not in str(caught.value)


def test_unsupported_url_scheme() -> None:
    with pytest.raises(InvalidInputError):
        SqlAlchemyStore.open("mysql://u@h/db", create=False)


@pytest.mark.postgres
def test_open_store_picks_sqlalchemy_for_postgres(postgres_url: str, tmp_path: Path) -> None:
    store = open_store(postgres_url, tmp_path, create=True)
    try:
        assert isinstance(store, SqlAlchemyStore)
        store.set_meta("k", "v")
        assert store.get_meta("k") == "v"
    finally:
        store.close()


@pytest.mark.postgres
def test_store_lost_after_open_is_unavailable(postgres_url: str) -> None:
    store = SqlAlchemyStore.open(postgres_url, create=True)
    try:
        engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE environment_tags, revision_tags, revisions, environments"))
        engine.dispose()
        with pytest.raises(StoreUnavailableError):
            store.get_environment(EnvRef("a", "b"))
    finally:
        store.close()
