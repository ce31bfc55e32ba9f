"""The embedded default store: one SQLite file, read and written with the stdlib ``sqlite3``.

The schema is created and migrated by Alembic (``storage/migrate.py``), the same
migrations the PostgreSQL store runs; day-to-day reads and writes use ``sqlite3``
directly so that the CLI never imports SQLAlchemy on its hot paths
(see ``docs/decisions/storage.md``).
"""

from __future__ import annotations

__all__ = ["SqliteStore"]

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from strongroom.audit.chain import canonical_event, record_hash
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
    AuditEvent,
    AuditRecord,
    DeliveryRecord,
    EnvironmentRecord,
    EnvRef,
    EnvTagRecord,
    OpenSession,
    RevisionRecord,
    TagRecord,
    TokenRecord,
    WebhookRecord,
)
from strongroom.storage.base import SCHEMA_VERSION

_ENV_COLUMNS = "id, project, name, created_at, latest_revision, data_key, key_id"
_REV_COLUMNS = "r.number, r.created_at, r.author, r.definition, r.compiled"


_TOKEN_COLUMNS = "token_id, name, role, scopes, secret_hash, created_at, created_by, expires_at, revoked_at"


def _audit_record(row: tuple[Any, ...]) -> AuditRecord:
    details = json.loads(row[8])
    event = AuditEvent(
        at=row[1],
        actor=row[2],
        action=row[3],
        outcome=row[4],
        environment=row[5],
        revision=row[6],
        client=row[7],
        details=tuple(sorted((str(k), str(v)) for k, v in details.items())),
    )
    return AuditRecord(int(row[0]), event, str(row[9]), str(row[10]))


_DELIVERY_COLUMNS = (
    "delivery_id, webhook_id, audit_seq, event, payload, status, attempts, next_attempt_at, last_status,"
    " last_error, created_at, updated_at"
)


def _delivery_record(row: tuple[Any, ...]) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=int(row[0]),
        webhook_id=str(row[1]),
        audit_seq=int(row[2]),
        event=str(row[3]),
        payload=str(row[4]),
        status=str(row[5]),
        attempts=int(row[6]),
        next_attempt_at=str(row[7]),
        last_status=None if row[8] is None else int(row[8]),
        last_error=None if row[9] is None else str(row[9]),
        created_at=str(row[10]),
        updated_at=str(row[11]),
    )


def _token_record(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(
        token_id=row[0],
        name=row[1],
        role=row[2],
        scopes=tuple(json.loads(row[3])),
        secret_hash=row[4],
        created_at=row[5],
        created_by=row[6],
        expires_at=row[7],
        revoked_at=row[8],
    )


def _not_found(ref: EnvRef) -> EnvironmentNotFoundError:
    return EnvironmentNotFoundError(
        f"environment {ref} does not exist", hint="run `strongroom env ls` to see the environments"
    )


class SqliteStore:
    """A :class:`~strongroom.storage.base.Store` over one SQLite file."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        # One connection serves every thread of this process; the lock keeps their
        # transactions from interleaving. Other processes are kept apart by SQLite's own locks.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r})"

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> SqliteStore:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            from strongroom.storage.migrate import upgrade

            upgrade(f"sqlite:///{path.resolve()}")
        elif not path.exists():
            raise StoreUnavailableError(
                f"no Strongroom store at {path}",
                hint="run `strongroom init` first, or set STRONGROOM_HOME / STRONGROOM_STORE",
            )
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            if create:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailableError(
                f"{path} is not an initialised Strongroom store ({exc})",
                hint="run `strongroom init`, or point STRONGROOM_HOME at the right folder",
            ) from None
        version = row[0] if row else None
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreUnavailableError(
                f"the store at {path} has schema version {version}, this Strongroom needs {SCHEMA_VERSION}",
                hint="run `strongroom init` to migrate it",
            )
        return cls(conn, path)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailableError(f"the store at {self._path} is busy or unwritable ({exc})") from None
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def _env_row(self, conn: sqlite3.Connection, ref: EnvRef) -> tuple[int, int]:
        row = conn.execute(
            "SELECT id, latest_revision FROM environments WHERE project = ? AND name = ?",
            (ref.project, ref.name),
        ).fetchone()
        if row is None:
            raise _not_found(ref)
        return int(row[0]), int(row[1])

    @staticmethod
    def _env_record(row: tuple[Any, ...]) -> EnvironmentRecord:
        return EnvironmentRecord(
            ref=EnvRef(str(row[1]), str(row[2])),
            created_at=str(row[3]),
            latest_revision=int(row[4]),
            data_key=bytes(row[5]),
            key_id=str(row[6]),
        )

    @staticmethod
    def _rev_record(ref: EnvRef, row: tuple[Any, ...]) -> RevisionRecord:
        return RevisionRecord(
            ref=ref,
            number=int(row[0]),
            created_at=str(row[1]),
            author=str(row[2]),
            definition=str(row[3]),
            compiled=str(row[4]),
        )

    # -- environments -------------------------------------------------------------------------

    def create_environment(
        self,
        ref: EnvRef,
        *,
        data_key: bytes,
        key_id: str,
        definition: str,
        compiled: str,
        author: str,
        at: str,
        audit: Sequence[AuditEvent] = (),
    ) -> RevisionRecord:
        self.import_environment(
            ref,
            data_key=data_key,
            key_id=key_id,
            revisions=[(definition, compiled, author, at)],
            tags=[],
            at=at,
            audit=audit,
        )
        return RevisionRecord(ref, 1, at, author, definition, compiled)

    def import_environment(
        self,
        ref: EnvRef,
        *,
        data_key: bytes,
        key_id: str,
        revisions: list[tuple[str, str, str, str]],
        tags: list[tuple[str, int]],
        at: str,
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        if not revisions:
            raise InvalidInputError(f"cannot create {ref} without a revision")
        with self._write() as conn:
            try:
                cur = conn.execute(
                    "INSERT INTO environments (project, name, created_at, latest_revision, data_key, key_id)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (ref.project, ref.name, at, len(revisions), data_key, key_id),
                )
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" not in str(exc):
                    raise StoreUnavailableError(f"the store at {self._path} refused the write ({exc})") from None
                raise AlreadyExistsError(
                    f"environment {ref} already exists",
                    hint="choose another name, or `strongroom env rm` it first",
                ) from None
            env_id = cur.lastrowid
            conn.executemany(
                "INSERT INTO revisions (env_id, number, created_at, author, definition, compiled)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (env_id, i, created, author, definition, compiled)
                    for i, (definition, compiled, author, created) in enumerate(revisions, start=1)
                ],
            )
            for _tag, number in tags:
                if not 1 <= number <= len(revisions):
                    raise RevisionNotFoundError(f"revision {number} of {ref} does not exist")
            conn.executemany(
                "INSERT INTO revision_tags (env_id, name, revision, updated_at) VALUES (?, ?, ?, ?)",
                [(env_id, name, number, at) for name, number in tags],
            )
            self._audit(conn, audit)

    def get_environment(self, ref: EnvRef) -> EnvironmentRecord:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_ENV_COLUMNS} FROM environments WHERE project = ? AND name = ?",
                (ref.project, ref.name),
            ).fetchone()
        if row is None:
            raise _not_found(ref)
        return self._env_record(row)

    def list_environments(
        self, *, project: str | None = None, after: EnvRef | None = None, limit: int | None = None
    ) -> list[EnvironmentRecord]:
        clauses: list[str] = []
        params: list[object] = []
        if project is not None:
            clauses.append("project = ?")
            params.append(project)
        if after is not None:
            clauses.append("(project, name) > (?, ?)")
            params.extend((after.project, after.name))
        sql = f"SELECT {_ENV_COLUMNS} FROM environments"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY project, name"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._read() as conn:
            return [self._env_record(row) for row in conn.execute(sql, params)]

    def delete_environment(self, ref: EnvRef, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            env_id, _ = self._env_row(conn, ref)
            conn.execute("DELETE FROM revision_tags WHERE env_id = ?", (env_id,))
            conn.execute("DELETE FROM environment_tags WHERE env_id = ?", (env_id,))
            conn.execute("DELETE FROM open_sessions WHERE project = ? AND name = ?", (ref.project, ref.name))
            conn.execute("DELETE FROM revisions WHERE env_id = ?", (env_id,))
            conn.execute("DELETE FROM environments WHERE id = ?", (env_id,))
            self._audit(conn, audit)

    # -- revisions ----------------------------------------------------------------------------

    def get_revision(self, ref: EnvRef, number: int | None = None) -> RevisionRecord:
        with self._lock:
            if number is None:
                row = self._conn.execute(
                    f"SELECT {_REV_COLUMNS} FROM revisions r JOIN environments e"
                    " ON r.env_id = e.id AND r.number = e.latest_revision"
                    " WHERE e.project = ? AND e.name = ?",
                    (ref.project, ref.name),
                ).fetchone()
                if row is None:
                    raise _not_found(ref)
                return self._rev_record(ref, row)
            row = self._conn.execute(
                f"SELECT {_REV_COLUMNS} FROM revisions r JOIN environments e ON r.env_id = e.id"
                " WHERE e.project = ? AND e.name = ? AND r.number = ?",
                (ref.project, ref.name, number),
            ).fetchone()
            if row is None:
                self._env_row(self._conn, ref)
                raise RevisionNotFoundError(
                    f"revision {number} of {ref} does not exist",
                    hint=f"run `strongroom env history {ref}` to see its revisions",
                )
            return self._rev_record(ref, row)

    def list_revisions(self, ref: EnvRef) -> list[RevisionRecord]:
        with self._lock:
            env_id, _ = self._env_row(self._conn, ref)
            rows = self._conn.execute(
                f"SELECT {_REV_COLUMNS} FROM revisions r WHERE r.env_id = ? ORDER BY r.number DESC",
                (env_id,),
            ).fetchall()
            return [self._rev_record(ref, row) for row in rows]

    def append_revision(
        self,
        ref: EnvRef,
        *,
        expected_latest: int,
        definition: str,
        compiled: str,
        author: str,
        at: str,
        audit: Sequence[AuditEvent] = (),
    ) -> RevisionRecord:
        with self._write() as conn:
            env_id, latest = self._env_row(conn, ref)
            if latest != expected_latest:
                raise ConflictError(
                    f"{ref} was changed meanwhile: revision {latest} is the newest, "
                    f"your change was based on {expected_latest}",
                    hint="re-read the environment and apply your change again",
                )
            number = latest + 1
            conn.execute(
                "INSERT INTO revisions (env_id, number, created_at, author, definition, compiled)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (env_id, number, at, author, definition, compiled),
            )
            conn.execute("UPDATE environments SET latest_revision = ? WHERE id = ?", (number, env_id))
            self._audit(conn, audit)
        return RevisionRecord(ref, number, at, author, definition, compiled)

    # -- tags ---------------------------------------------------------------------------------

    def resolve_tag(self, ref: EnvRef, tag: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT t.revision FROM revision_tags t JOIN environments e ON t.env_id = e.id"
                " WHERE e.project = ? AND e.name = ? AND t.name = ?",
                (ref.project, ref.name, tag),
            ).fetchone()
            if row is None:
                self._env_row(self._conn, ref)
                raise TagNotFoundError(
                    f"{ref} has no tag {tag!r}", hint=f"run `strongroom env tag {ref}` to list its tags"
                )
            return int(row[0])

    def set_tag(self, ref: EnvRef, tag: str, revision: int, *, at: str, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            env_id, latest = self._env_row(conn, ref)
            if not 1 <= revision <= latest:
                raise RevisionNotFoundError(
                    f"revision {revision} of {ref} does not exist",
                    hint=f"run `strongroom env history {ref}` to see its revisions",
                )
            conn.execute(
                "INSERT INTO revision_tags (env_id, name, revision, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (env_id, name) DO UPDATE SET revision = excluded.revision,"
                " updated_at = excluded.updated_at",
                (env_id, tag, revision, at),
            )
            self._audit(conn, audit)

    def delete_tag(self, ref: EnvRef, tag: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            env_id, _ = self._env_row(conn, ref)
            cur = conn.execute("DELETE FROM revision_tags WHERE env_id = ? AND name = ?", (env_id, tag))
            if cur.rowcount == 0:
                raise TagNotFoundError(f"{ref} has no tag {tag!r}")
            self._audit(conn, audit)

    def list_tags(self, ref: EnvRef) -> list[TagRecord]:
        with self._lock:
            env_id, _ = self._env_row(self._conn, ref)
            rows = self._conn.execute(
                "SELECT name, revision, updated_at FROM revision_tags WHERE env_id = ? ORDER BY name",
                (env_id,),
            ).fetchall()
            return [TagRecord(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    # -- keys and metadata --------------------------------------------------------------------

    def list_data_keys(self) -> list[tuple[EnvRef, bytes, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT project, name, data_key, key_id FROM environments ORDER BY project, name"
            ).fetchall()
            return [(EnvRef(str(r[0]), str(r[1])), bytes(r[2]), str(r[3])) for r in rows]

    def replace_data_keys(
        self,
        rewrapped: Iterable[tuple[EnvRef, bytes, str]],
        *,
        meta: Mapping[str, str] | None = None,
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        with self._write() as conn:
            for key, value in (meta or {}).items():
                conn.execute(
                    "INSERT INTO store_meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            for ref, data_key, key_id in rewrapped:
                cur = conn.execute(
                    "UPDATE environments SET data_key = ?, key_id = ? WHERE project = ? AND name = ?",
                    (data_key, key_id, ref.project, ref.name),
                )
                if cur.rowcount == 0:
                    raise _not_found(ref)
            self._audit(conn, audit)

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO store_meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        with self._write() as conn:
            if expected is None:
                cur = conn.execute(
                    "INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value)
                )
            else:
                cur = conn.execute(
                    "UPDATE store_meta SET value = ? WHERE key = ? AND value = ?", (value, key, expected)
                )
            return cur.rowcount == 1

    # -- audit log ----------------------------------------------------------------------------

    def _audit(self, conn: sqlite3.Connection, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append ``events`` inside the caller's write transaction, extending the chain.

        Any failure raises ``StoreUnavailableError``; the caller's transaction then rolls
        back, so a change never lands without its record (fail-closed).
        """
        if not events:
            return []
        try:
            return self._append_chain(conn, events)
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise StoreUnavailableError(
                f"cannot write the audit log of {self._path} ({type(exc).__name__}), so nothing was changed",
                hint="check the store with `strongroom audit verify`; restore it from a backup if it is damaged",
            ) from None

    @staticmethod
    def _append_chain(conn: sqlite3.Connection, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        seq, prev = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        records: list[AuditRecord] = []
        rows = []
        for event in events:
            seq += 1
            digest = record_hash(seq, prev, canonical_event(event))
            rows.append(
                (
                    seq,
                    event.at,
                    event.actor,
                    event.action,
                    event.outcome,
                    event.environment,
                    event.revision,
                    event.client,
                    json.dumps(dict(event.details), sort_keys=True, separators=(",", ":")),
                    prev,
                    digest,
                )
            )
            records.append(AuditRecord(seq, event, prev, digest))
            prev = digest
        conn.executemany(
            "INSERT INTO audit_log (seq, at, actor, action, outcome, environment, revision, client, details,"
            " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, prev))
        return records

    def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        with self._write() as conn:
            return self._audit(conn, events)

    def list_audit(
        self,
        *,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        clauses = ["seq > ?"]
        params: list[object] = [after_seq]
        for column, value in (("environment", environment), ("actor", actor), ("action", action)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("at >= ?")
            params.append(since)
        sql = (
            "SELECT seq, at, actor, action, outcome, environment, revision, client, details, prev_hash, hash"
            " FROM audit_log WHERE " + " AND ".join(clauses) + " ORDER BY seq"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._read() as conn:
            return [_audit_record(row) for row in conn.execute(sql, params)]

    def audit_head(self) -> tuple[int, str]:
        with self._read() as conn:
            row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        if row is None:
            raise StoreUnavailableError(f"the audit log of {self._path} has lost its chain head")
        return int(row[0]), str(row[1])

    # -- tokens -------------------------------------------------------------------------------

    def create_token(self, token: TokenRecord, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO tokens (token_id, name, role, scopes, secret_hash, created_at, created_by,"
                    " expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        token.token_id,
                        token.name,
                        token.role,
                        json.dumps(list(token.scopes)),
                        token.secret_hash,
                        token.created_at,
                        token.created_by,
                        token.expires_at,
                        token.revoked_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExistsError(f"a token with id {token.token_id} already exists") from None
            self._audit(conn, audit)

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_id = ?", (token_id,)).fetchone()
        return None if row is None else _token_record(row)

    def list_tokens(self) -> list[TokenRecord]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created_at, token_id").fetchall()
        return [_token_record(row) for row in rows]

    def revoke_token(self, token_id: str, *, at: str, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE token_id = ?", (at, token_id)
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"no token with id {token_id}", hint="run `strongroom token ls` to see the tokens")
            self._audit(conn, audit)

    # -- environment tags ---------------------------------------------------------------------

    def list_env_tags(self, ref: EnvRef) -> list[EnvTagRecord]:
        with self._read() as conn:
            env_id, _ = self._env_row(conn, ref)
            rows = conn.execute(
                "SELECT name, value, created_at, updated_at, updated_by FROM environment_tags"
                " WHERE env_id = ? ORDER BY name",
                (env_id,),
            ).fetchall()
        return [EnvTagRecord(*map(str, row)) for row in rows]

    def set_env_tag(
        self,
        ref: EnvRef,
        name: str,
        value: str,
        *,
        at: str,
        actor: str,
        create_only: bool = False,
        expected_value: str | None = None,
        audit: Sequence[AuditEvent] = (),
    ) -> EnvTagRecord:
        with self._write() as conn:
            env_id, _ = self._env_row(conn, ref)
            row = conn.execute(
                "SELECT value, created_at FROM environment_tags WHERE env_id = ? AND name = ?", (env_id, name)
            ).fetchone()
            if row is not None and create_only:
                raise AlreadyExistsError(f"{ref} already has a tag {name!r}", hint="update it instead")
            if expected_value is not None:
                if row is None:
                    raise TagNotFoundError(f"{ref} has no tag {name!r}")
                if row[0] != expected_value:
                    raise ConflictError(
                        f"the tag {name!r} of {ref} was changed meanwhile", hint="re-read it and try again"
                    )
            created = at if row is None else str(row[1])
            conn.execute(
                "INSERT INTO environment_tags (env_id, name, value, created_at, updated_at, updated_by)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (env_id, name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (env_id, name, value, created, at, actor),
            )
            self._audit(conn, audit)
        return EnvTagRecord(name, value, created, at, actor)

    def delete_env_tag(self, ref: EnvRef, name: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            env_id, _ = self._env_row(conn, ref)
            cur = conn.execute("DELETE FROM environment_tags WHERE env_id = ? AND name = ?", (env_id, name))
            if cur.rowcount == 0:
                raise TagNotFoundError(f"{ref} has no tag {name!r}")
            self._audit(conn, audit)

    # -- open sessions ------------------------------------------------------------------------

    def create_open_session(self, session: OpenSession) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM open_sessions WHERE session_id = ?", (session.session_id,)).fetchone():
                raise AlreadyExistsError("an open session with that id already exists")
            conn.execute(
                "INSERT INTO open_sessions (session_id, project, name, revision, actor, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session.session_id,
                    session.env.project,
                    session.env.name,
                    session.revision,
                    session.actor,
                    session.created_at,
                    session.expires_at,
                ),
            )

    def get_open_session(self, session_id: str) -> OpenSession | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT session_id, project, name, revision, actor, created_at, expires_at FROM open_sessions"
                " WHERE session_id = ?",
                (session_id,),
            ).fetchone()
        if row is None:
            return None
        return OpenSession(str(row[0]), EnvRef(str(row[1]), str(row[2])), int(row[3]), *map(str, row[4:]))

    def delete_expired_sessions(self, now: str) -> int:
        with self._write() as conn:
            return int(conn.execute("DELETE FROM open_sessions WHERE expires_at <= ?", (now,)).rowcount)

    # -- webhooks -----------------------------------------------------------------------------

    def create_webhook(self, hook: WebhookRecord, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO webhooks (webhook_id, environment, url, secret, events, created_at, created_by,"
                    " last_seq, active) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        hook.webhook_id,
                        hook.environment,
                        hook.url,
                        hook.secret,
                        json.dumps(list(hook.events)),
                        hook.created_at,
                        hook.created_by,
                        hook.last_seq,
                        hook.active,
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExistsError(f"a webhook with id {hook.webhook_id} already exists") from None
            self._audit(conn, audit)

    def list_webhooks(self) -> list[WebhookRecord]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT webhook_id, environment, url, secret, events, created_at, created_by, last_seq, active"
                " FROM webhooks ORDER BY created_at, webhook_id"
            ).fetchall()
        return [
            WebhookRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6], int(r[7]), bool(r[8]))
            for r in rows
        ]

    def delete_webhook(self, webhook_id: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))
            cur = conn.execute("DELETE FROM webhooks WHERE webhook_id = ?", (webhook_id,))
            if cur.rowcount == 0:
                raise NotFoundError(f"no webhook with id {webhook_id}", hint="run `strongroom webhook ls`")
            self._audit(conn, audit)

    def enqueue_deliveries(
        self,
        webhook_id: str,
        deliveries: Sequence[tuple[int, str, str]],
        *,
        expected_last_seq: int,
        new_last_seq: int,
        at: str,
    ) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE webhooks SET last_seq = ? WHERE webhook_id = ? AND last_seq = ?",
                (new_last_seq, webhook_id, expected_last_seq),
            )
            if cur.rowcount == 0:
                return False
            conn.executemany(
                "INSERT INTO webhook_deliveries (webhook_id, audit_seq, event, payload, status, attempts,"
                " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
                " ON CONFLICT (webhook_id, audit_seq) DO NOTHING",
                [(webhook_id, seq, event, payload, at, at, at) for seq, event, payload in deliveries],
            )
        return True

    def due_deliveries(self, now: str, *, limit: int = 100) -> list[DeliveryRecord]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = 'pending'"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at, delivery_id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [_delivery_record(r) for r in rows]

    def claim_delivery(self, delivery_id: int, *, now: str, lease_until: str) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE delivery_id = ? AND status = 'pending'"
                " AND next_attempt_at <= ?",
                (lease_until, delivery_id, now),
            )
            return cur.rowcount == 1

    def record_delivery_attempt(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: str,
        last_status: int | None,
        last_error: str | None,
        at: str,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?,"
                " last_error = ?, updated_at = ? WHERE delivery_id = ?",
                (status, attempts, next_attempt_at, last_status, last_error, at, delivery_id),
            )

    def list_deliveries(self, *, webhook_id: str | None = None, limit: int = 100) -> list[DeliveryRecord]:
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
        params: list[object] = []
        if webhook_id is not None:
            sql += " WHERE webhook_id = ?"
            params.append(webhook_id)
        sql += " ORDER BY delivery_id DESC LIMIT ?"
        params.append(limit)
        with self._read() as conn:
            return [_delivery_record(r) for r in conn.execute(sql, params)]

    def close(self) -> None:
        self._conn.close()
