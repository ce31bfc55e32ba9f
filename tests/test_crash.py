"""Crashes in the middle of writes leave the store consistent: the previous revision intact, no gaps."""

from __future__ import annotations

import base64
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.cli.context import AppContext
from strongroom.crypto.providers import Keyring, MasterKey
from strongroom.definition import parse_definition
from strongroom.language import Compiled
from strongroom.model import EnvRef, RevisionRef
from strongroom.service import Service
from strongroom.storage.sqlite import SqliteStore

ENV = EnvRef("crash", "env")

WRITER = textwrap.dedent(
    """
    import itertools, sys
    from strongroom.cli.context import AppContext
    from strongroom.model import EnvRef

    home, key = sys.argv[1], sys.argv[2]
    app = AppContext({"STRONGROOM_HOME": home, "STRONGROOM_MASTER_KEY": key, "STRONGROOM_ACTOR": "writer"})
    service = app.service()
    env = EnvRef("crash", "env")
    for i in itertools.count(1):
        value = format(i, "08d") * min(1 + i * 64, 12_000)  # grows to ~96 KB per value
        service.set_value(env, (f"k{i % 5}",), value, secret=i % 2 == 0)
        if i == 1:
            print("ready", flush=True)
    """
)


@pytest.fixture
def environ(tmp_path) -> dict[str, str]:
    return {
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        "STRONGROOM_ACTOR": "tester",
    }


@pytest.fixture
def service(environ) -> Iterator[Service]:
    AppContext(environ).open_store(create=True).close()
    app = AppContext(environ)
    svc = app.service()
    svc.initialise_keys()
    svc.create_environment(ENV, "# kept\nvalues:\n  first: 1\n")
    yield svc
    app.close()


def check_consistent(home: Path, environ: dict[str, str]) -> int:
    """Open the store as a new process would and check every invariant; returns the newest revision number."""
    conn = sqlite3.connect(home / "store.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    app = AppContext(environ)
    try:
        svc = app.service()
        record = svc.store.get_environment(ENV)
        revisions = svc.store.list_revisions(ENV)
        numbers = sorted(r.number for r in revisions)
        assert numbers == list(range(1, len(numbers) + 1)), "revision numbers have a gap"
        assert record.latest_revision == numbers[-1]
        newest = svc.store.get_revision(ENV)
        assert newest.number == record.latest_revision
        parse_definition(newest.definition, str(ENV))
        for rev in revisions:
            compiled = Compiled.from_json(rev.compiled)  # every cache loads, and belongs to this environment
            assert compiled.env == str(ENV) and not compiled.has_errors
        svc.read(RevisionRef(ENV), show_secrets=True)  # every secret of the newest revision decrypts
        return record.latest_revision
    finally:
        app.close()


# --------------------------------------------------------------------------- kill -9


def test_kill_9_during_writes_leaves_the_previous_revision_intact(service, environ, tmp_path):
    home = Path(environ["STRONGROOM_HOME"])
    service.store.close()
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    newest = 1
    progressed = 0
    for round_ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(home), environ["STRONGROOM_MASTER_KEY"]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready = child.stdout.readline() if child.stdout else ""
            assert ready.strip() == "ready", f"writer did not start: {child.stderr.read() if child.stderr else ''}"
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=rng.uniform(0.05, 0.5))  # let it write for a random while
            assert child.poll() is None, f"writer stopped by itself: {child.stderr.read() if child.stderr else ''}"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
        latest = check_consistent(home, environ)
        assert latest > newest, f"round {round_} (seed {seed}): no revision was written"
        progressed += latest - newest
        newest = latest
    assert progressed >= 5


# --------------------------------------------------------------------------- injected failures, no processes


class FailingConnection:
    """Delegates to a sqlite3 connection, but raises when a statement starting with ``fail_on`` runs."""

    def __init__(self, conn: sqlite3.Connection, fail_on: str) -> None:
        self._conn = conn
        self._fail_on = fail_on
        self.failed = 0

    def execute(self, sql: str, *args):
        if " ".join(sql.split()).startswith(self._fail_on):
            self.failed += 1
            raise sqlite3.OperationalError("injected failure: disk I/O error")
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args):
        if " ".join(sql.split()).startswith(self._fail_on):
            self.failed += 1
            raise sqlite3.OperationalError("injected failure: disk I/O error")
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def snapshot(home: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(f"file:{home / 'store.db'}?mode=ro", uri=True)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("environments", "revisions", "revision_tags", "store_meta")
        }
    finally:
        conn.close()


@pytest.fixture
def fail_on(service, monkeypatch):
    """``fail_on(prefix)`` makes the service's store raise when it runs a statement starting with ``prefix``."""
    store = service.store
    assert isinstance(store, SqliteStore)

    def install(prefix: str) -> FailingConnection:
        wrapper = FailingConnection(store._conn, prefix)
        monkeypatch.setattr(store, "_conn", wrapper)
        return wrapper

    return install


def test_failed_latest_revision_update_rolls_back_the_insert(service, environ, fail_on, monkeypatch):
    home = Path(environ["STRONGROOM_HOME"])
    service.set_value(ENV, ("secret",), "CANARY-crash", secret=True)
    before = snapshot(home)
    wrapper = fail_on("UPDATE environments SET latest_revision")
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        service.set_value(ENV, ("second",), 2)
    assert wrapper.failed == 1
    monkeypatch.undo()
    assert snapshot(home) == before  # the INSERT of revision 3 was rolled back with the failed UPDATE
    assert service.store.get_environment(ENV).latest_revision == 2
    assert check_consistent(home, environ) == 2
    # The store is still usable, and the next revision takes the number the failed one would have had.
    assert service.set_value(ENV, ("second",), 2).number == 3
    assert "# kept" in service.store.get_revision(ENV).definition


@pytest.mark.parametrize(
    ("operation", "statement"),
    [
        ("replace", "UPDATE environments SET latest_revision"),
        ("rollback", "UPDATE environments SET latest_revision"),
        ("clone", "INSERT INTO revisions"),
        ("clone", "INSERT INTO revision_tags"),
        ("delete", "DELETE FROM environments"),
        ("tag", "INSERT INTO revision_tags"),
    ],
)
def test_failed_statement_leaves_the_store_unchanged(service, environ, fail_on, monkeypatch, operation, statement):
    home = Path(environ["STRONGROOM_HOME"])
    service.set_value(ENV, ("a",), 1)
    service.tag(ENV, "one", 1)
    service.create_environment(EnvRef("crash", "other"))
    before = snapshot(home)
    fail_on(statement)
    actions = {
        "replace": lambda: service.replace_definition(ENV, "values:\n  b:\n    fn::secret: x\n"),
        "rollback": lambda: service.rollback(RevisionRef(ENV, 1)),
        "clone": lambda: service.clone(ENV, EnvRef("crash", "copy"), preserve_history=True),
        "delete": lambda: service.delete_environment(ENV),
        "tag": lambda: service.tag(ENV, "two", 2),
    }
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        actions[operation]()
    monkeypatch.undo()
    assert snapshot(home) == before
    assert check_consistent(home, environ) == 2


def test_failed_rotation_keeps_data_keys_and_revisions(service, environ, fail_on, monkeypatch):
    home = Path(environ["STRONGROOM_HOME"])
    service.set_value(ENV, ("s",), "CANARY-rotate", secret=True)
    before = snapshot(home)
    fail_on("UPDATE environments SET data_key")
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        service.rewrap_data_keys(Keyring([MasterKey.generate()]))
    monkeypatch.undo()
    after = snapshot(home)
    assert after["environments"] == before["environments"]
    assert after["revisions"] == before["revisions"]
    assert dict(after["store_meta"])["master_key_id"] == dict(before["store_meta"])["master_key_id"]


def test_failed_rotation_leaves_the_store_usable_with_the_old_key(service, environ, fail_on, monkeypatch):
    service.set_value(ENV, ("s",), "CANARY-rotate", secret=True)
    fail_on("UPDATE environments SET data_key")
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        service.rewrap_data_keys(Keyring([MasterKey.generate()]))  # as STRONGROOM_NEW_MASTER_KEY would
    monkeypatch.undo()
    app = AppContext(environ)  # a new process, still with the old STRONGROOM_MASTER_KEY
    try:
        fresh = app.service()
        assert fresh.read(RevisionRef(ENV), ("s",), show_secrets=True).reveal() == "CANARY-rotate"
        fresh.set_value(ENV, ("t",), "CANARY-after", secret=True)
    finally:
        app.close()
    assert check_consistent(Path(environ["STRONGROOM_HOME"]), environ) == 3
