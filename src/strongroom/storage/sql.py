"""A :class:`~strongroom.storage.base.Store` on SQLAlchemy Core: PostgreSQL (psycopg 3) or SQLite.

The schema belongs to the Alembic migrations (:mod:`strongroom.storage.migrate`);
this module only names the tables and columns it queries. Storage sees ciphertext
only, and nothing here logs or puts a definition into an error message.

Concurrency: ``append_revision`` is optimistic. It moves ``latest_revision`` with
``UPDATE ... WHERE latest_revision = :expected`` and checks the row count, so of
two writers based on the same revision exactly one wins (on PostgreSQL the loser
waits on the row lock, then matches no row; on SQLite writes take the database
write lock up front with ``BEGIN IMMEDIATE``). The primary key of ``revisions`` is
a second guard.

Audit log: every mutator takes ``audit`` events and appends them, hash-chained, in
the same transaction as its change, after the change itself; if the append fails,
the change is rolled back (fail-closed). The chain head (the single ``audit_head``
row) serialises appenders: on PostgreSQL it is locked with ``SELECT ... FOR UPDATE``
(a concurrent appender waits, then reads the head the first one committed); on
SQLite the ``BEGIN IMMEDIATE`` write lock already serialises. The head is always the
last lock a transaction takes, so it cannot be part of a deadlock.

Environment tags: writers lock the environment's row first (``SELECT ... FOR UPDATE``),
so ``create_only`` and ``expected_value`` are checked and acted on in one step.
Webhook deliveries are a work queue: ``enqueue_deliveries`` moves the webhook's audit
cursor with a compare-and-set ``UPDATE`` (a stale dispatcher writes nothing), and
``claim_delivery`` is a single conditional ``UPDATE`` whose row count says whether
this process, and no other, took the delivery.

Besides :class:`SqlAlchemyStore`, the module offers the few connection helpers
that :mod:`strongroom.storage.migrate` shares with it.
"""

from __future__ import annotations

__all__ = [
    "SqlAlchemyStore",
    "make_engine",
    "schema_version",
    "sqlite_file",
    "store_unavailable",
    "transaction",
]

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import TableClause

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

# The tables as queried (lightweight clauses: the DDL lives in the migrations).
_ENVIRONMENTS = sa.table(
    "environments",
    sa.column("id", sa.Integer),
    sa.column("project", sa.String),
    sa.column("name", sa.String),
    sa.column("created_at", sa.Text),
    sa.column("latest_revision", sa.Integer),
    sa.column("data_key", sa.LargeBinary),
    sa.column("key_id", sa.String),
)
_REVISIONS = sa.table(
    "revisions",
    sa.column("env_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("created_at", sa.Text),
    sa.column("author", sa.String),
    sa.column("definition", sa.Text),
    sa.column("compiled", sa.Text),
)
_TAGS = sa.table(
    "revision_tags",
    sa.column("env_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("revision", sa.Integer),
    sa.column("updated_at", sa.Text),
)
_META = sa.table(
    "store_meta",
    sa.column("key", sa.String),
    sa.column("value", sa.Text),
)
_AUDIT_LOG = sa.table(
    "audit_log",
    sa.column("seq", sa.BigInteger),
    sa.column("at", sa.Text),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("outcome", sa.String),
    sa.column("environment", sa.String),
    sa.column("revision", sa.Integer),
    sa.column("client", sa.String),
    sa.column("details", sa.Text),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)
_AUDIT_HEAD = sa.table(
    "audit_head",
    sa.column("id", sa.Integer),
    sa.column("seq", sa.BigInteger),
    sa.column("hash", sa.String),
)
_TOKENS = sa.table(
    "tokens",
    sa.column("token_id", sa.String),
    sa.column("name", sa.String),
    sa.column("role", sa.String),
    sa.column("scopes", sa.Text),
    sa.column("secret_hash", sa.String),
    sa.column("created_at", sa.Text),
    sa.column("created_by", sa.String),
    sa.column("expires_at", sa.Text),
    sa.column("revoked_at", sa.Text),
)
_ENV_TAGS = sa.table(
    "environment_tags",
    sa.column("env_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("value", sa.Text),
    sa.column("created_at", sa.Text),
    sa.column("updated_at", sa.Text),
    sa.column("updated_by", sa.String),
)
_SESSIONS = sa.table(
    "open_sessions",
    sa.column("session_id", sa.String),
    sa.column("project", sa.String),
    sa.column("name", sa.String),
    sa.column("revision", sa.Integer),
    sa.column("actor", sa.String),
    sa.column("created_at", sa.Text),
    sa.column("expires_at", sa.Text),
)
_WEBHOOKS = sa.table(
    "webhooks",
    sa.column("webhook_id", sa.String),
    sa.column("environment", sa.String),
    sa.column("url", sa.Text),
    sa.column("secret", sa.Text),
    sa.column("events", sa.Text),
    sa.column("created_at", sa.Text),
    sa.column("created_by", sa.String),
    sa.column("last_seq", sa.BigInteger),
    sa.column("active", sa.Boolean),
)
_DELIVERIES = sa.table(
    "webhook_deliveries",
    sa.column("delivery_id", sa.Integer),
    sa.column("webhook_id", sa.String),
    sa.column("audit_seq", sa.BigInteger),
    sa.column("event", sa.String),
    sa.column("payload", sa.Text),
    sa.column("status", sa.String),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.Text),
    sa.column("last_status", sa.Integer),
    sa.column("last_error", sa.Text),
    sa.column("created_at", sa.Text),
    sa.column("updated_at", sa.Text),
)
#: The audit_log columns in the order :func:`_audit_record` reads them.
_AUDIT_COLUMNS = (
    _AUDIT_LOG.c.seq,
    _AUDIT_LOG.c.at,
    _AUDIT_LOG.c.actor,
    _AUDIT_LOG.c.action,
    _AUDIT_LOG.c.outcome,
    _AUDIT_LOG.c.environment,
    _AUDIT_LOG.c.revision,
    _AUDIT_LOG.c.client,
    _AUDIT_LOG.c.details,
    _AUDIT_LOG.c.prev_hash,
    _AUDIT_LOG.c.hash,
)

#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
_SQLITE_IMMEDIATE = "strongroom_sqlite_immediate"
#: Seconds a SQLite connection waits for another writer's lock.
_SQLITE_BUSY_TIMEOUT = 30.0
_PG_CONNECT_TIMEOUT = 10


# --------------------------------------------------------------------------- connections


def _normalise_url(url: str) -> str:
    from strongroom.storage.migrate import normalise_url

    return normalise_url(url)


def _parse_url(url: str) -> sa.URL:
    try:
        return sa.make_url(_normalise_url(url))
    except ArgumentError as exc:
        raise InvalidInputError(
            "the store URL cannot be parsed",
            hint="use postgresql://USER@HOST/DB or sqlite:////absolute/path.db",
        ) from exc


def sqlite_file(url: str) -> Path | None:
    """The database file a ``sqlite:`` URL names; ``None`` for other URLs and in-memory SQLite."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def make_engine(url: str, *, pooled: bool = True) -> Engine:
    """An engine for a store URL (PostgreSQL through psycopg 3, or a SQLite file).

    ``pooled=False`` gives a pool-less engine for one-off work such as migrations.
    Connecting happens later, on first use.
    """
    parsed = _parse_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if not pooled:
        options["poolclass"] = NullPool
    if backend == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT}, **options)
        _install_sqlite_transactions(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise InvalidInputError(
                f"unsupported PostgreSQL driver {parsed.get_driver_name()!r}",
                hint="use postgresql://... or postgresql+psycopg://...",
            )
        if pooled:
            options.update(pool_size=5, max_overflow=10, pool_timeout=30, pool_recycle=1800, pool_pre_ping=True)
        return sa.create_engine(
            parsed,
            connect_args={"connect_timeout": _PG_CONNECT_TIMEOUT, "application_name": "strongroom"},
            **options,
        )
    raise InvalidInputError(
        f"unsupported store URL scheme {parsed.drivername!r}",
        hint="use postgresql://USER@HOST/DB or sqlite:////absolute/path.db",
    )


def _install_sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions (so DDL is transactional
    and a write transaction can take the write lock up front), and enforce foreign keys."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)


def _where(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _reason(url: sa.URL, exc: BaseException) -> str:
    """The first line of a database error, without the store's password, SQL or parameters."""
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
    lines = str(cause).strip().splitlines()
    reason = lines[0].strip()[:300] if lines else type(cause).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def store_unavailable(url: sa.URL, exc: BaseException) -> StoreUnavailableError:
    """A ``StoreUnavailableError`` for a database error: names the store, never its password,
    and carries no SQL statement or parameters."""
    return StoreUnavailableError(
        f"cannot use the store at {_where(url)}: {_reason(url, exc)}",
        hint="check that the database is running and reachable, and that STRONGROOM_STORE is right",
    )


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One transaction, committed when the block ends without an exception.

    A ``write`` transaction on SQLite starts with ``BEGIN IMMEDIATE``. Database errors
    other than integrity errors become :class:`StoreUnavailableError`; integrity
    errors pass through for the caller to interpret.
    """
    try:
        with engine.connect() as connection:
            if write:
                connection.execution_options(**{_SQLITE_IMMEDIATE: True})
            with connection.begin():
                yield connection
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        raise store_unavailable(engine.url, exc) from exc


def schema_version(connection: Connection) -> str | None:
    """The Alembic version stamped in the database, ``None`` when there is none."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    versions = sorted(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    return ",".join(versions) if versions else None


# --------------------------------------------------------------------------- errors


def _env_not_found(ref: EnvRef) -> EnvironmentNotFoundError:
    return EnvironmentNotFoundError(
        f"environment {ref} does not exist", hint="run `strongroom env ls` to see the environments"
    )


def _already_exists(ref: EnvRef) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"environment {ref} already exists", hint="choose another name, or change the existing one"
    )


def _revision_not_found(ref: EnvRef, number: int, latest: int) -> RevisionNotFoundError:
    return RevisionNotFoundError(
        f"revision {number} of {ref} does not exist", hint=f"{ref} has revisions 1 to {latest}"
    )


def _tag_not_found(ref: EnvRef, tag: str) -> TagNotFoundError:
    return TagNotFoundError(
        f"tag {tag!r} does not exist in {ref}", hint="list the environment's tags to see which exist"
    )


def _token_not_found(token_id: str) -> NotFoundError:
    return NotFoundError(f"no token with id {token_id}", hint="run `strongroom token ls` to see the tokens")


# The environment tag and webhook errors say what the native SQLite store says.


def _env_tag_not_found(ref: EnvRef, name: str) -> TagNotFoundError:
    return TagNotFoundError(f"{ref} has no tag {name!r}")


def _webhook_not_found(webhook_id: str) -> NotFoundError:
    return NotFoundError(f"no webhook with id {webhook_id}", hint="run `strongroom webhook ls`")


def _conflict(ref: EnvRef, newest: int, expected: int) -> ConflictError:
    return ConflictError(
        f"environment {ref} was changed meanwhile: revision {newest} is the newest, "
        f"your change was based on {expected}",
        hint="re-read the environment and apply your change again",
    )


# --------------------------------------------------------------------------- records


def _details_json(event: AuditEvent) -> str:
    # The same text the native SQLite store writes, so either backend can read the other's file.
    return json.dumps(dict(event.details), sort_keys=True, separators=(",", ":"))


def _audit_record(row: Row[*tuple[Any, ...]]) -> AuditRecord:
    details = json.loads(row.details)
    event = AuditEvent(
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        environment=row.environment,
        revision=None if row.revision is None else int(row.revision),
        client=row.client,
        details=tuple(sorted((str(k), str(v)) for k, v in details.items())),
    )
    return AuditRecord(int(row.seq), event, str(row.prev_hash), str(row.hash))


def _token_record(row: Row[*tuple[Any, ...]]) -> TokenRecord:
    return TokenRecord(
        token_id=row.token_id,
        name=row.name,
        role=row.role,
        scopes=tuple(json.loads(row.scopes)),
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _webhook_record(row: Row[*tuple[Any, ...]]) -> WebhookRecord:
    return WebhookRecord(
        webhook_id=row.webhook_id,
        environment=row.environment,
        url=row.url,
        secret=row.secret,
        events=tuple(json.loads(row.events)),
        created_at=row.created_at,
        created_by=row.created_by,
        last_seq=int(row.last_seq),
        active=bool(row.active),
    )


def _delivery_record(row: Row[*tuple[Any, ...]]) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=int(row.delivery_id),
        webhook_id=row.webhook_id,
        audit_seq=int(row.audit_seq),
        event=row.event,
        payload=row.payload,
        status=row.status,
        attempts=int(row.attempts),
        next_attempt_at=row.next_attempt_at,
        last_status=None if row.last_status is None else int(row.last_status),
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise InvalidInputError(f"invalid limit {limit}: it must not be negative")


# --------------------------------------------------------------------------- the store


class SqlAlchemyStore:
    """The :class:`~strongroom.storage.base.Store` on a SQL database, through SQLAlchemy Core.

    Thread-safe: every method takes a connection from the engine's pool for one
    transaction. Normally made with :meth:`open`; the constructor takes an engine
    whose database already has the current schema.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._where = _where(engine.url)

    @classmethod
    def open(cls, url: str, *, create: bool) -> SqlAlchemyStore:
        """Open the store at ``url``; ``create=True`` first creates or migrates the schema.

        ``StoreUnavailableError`` when the database cannot be reached, is not
        initialised, or has another schema version.
        """
        from strongroom.storage.migrate import check_version, upgrade

        if create:
            upgrade(url)
        else:
            path = sqlite_file(url)
            if path is not None and not path.exists():
                # Do not let SQLite create an empty file for a store that is not there.
                check_version(None, where=_where(_parse_url(url)))
        engine = make_engine(url)
        try:
            with transaction(engine, write=False) as connection:
                version = schema_version(connection)
            check_version(version, where=_where(engine.url))
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def __repr__(self) -> str:
        return f"SqlAlchemyStore({self._where!r})"

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        try:
            with transaction(self._engine, write=write) as connection:
                yield connection
        except IntegrityError as exc:  # the methods translate the ones they expect
            raise ConflictError(
                f"the store at {self._where} refused a write that conflicts with its contents",
                hint="re-read and try again",
            ) from exc

    def _upsert(self, table: TableClause, keys: tuple[str, ...], values: Mapping[str, Any]) -> Any:
        if self._engine.dialect.name == "postgresql":
            pg_stmt = pg_dialect.insert(table).values(dict(values))
            return pg_stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={k: pg_stmt.excluded[k] for k in values if k not in keys},
            )
        lite_stmt = sqlite_dialect.insert(table).values(dict(values))
        return lite_stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: lite_stmt.excluded[k] for k in values if k not in keys},
        )

    def _insert_ignoring(self, table: TableClause, keys: tuple[str, ...]) -> Any:
        """``INSERT ... ON CONFLICT (keys) DO NOTHING``: rows whose key exists already are skipped."""
        if self._engine.dialect.name == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))
        return sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))

    @staticmethod
    def _environment(connection: Connection, ref: EnvRef, *, lock: bool = False) -> Row[*tuple[Any, ...]]:
        query = sa.select(_ENVIRONMENTS).where(_ENVIRONMENTS.c.project == ref.project, _ENVIRONMENTS.c.name == ref.name)
        if lock:
            query = query.with_for_update()
        row = connection.execute(query).one_or_none()
        if row is None:
            raise _env_not_found(ref)
        return row

    @staticmethod
    def _environment_record(row: Row[*tuple[Any, ...]]) -> EnvironmentRecord:
        return EnvironmentRecord(
            ref=EnvRef(row.project, row.name),
            created_at=row.created_at,
            latest_revision=row.latest_revision,
            data_key=bytes(row.data_key),
            key_id=row.key_id,
        )

    @staticmethod
    def _revision_record(ref: EnvRef, row: Row[*tuple[Any, ...]]) -> RevisionRecord:
        return RevisionRecord(
            ref=ref,
            number=row.number,
            created_at=row.created_at,
            author=row.author,
            definition=row.definition,
            compiled=row.compiled,
        )

    # ------------------------------------------------------------------ environments

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
        with self._transaction(write=True) as connection:
            env_id = self._insert_environment(connection, ref, data_key=data_key, key_id=key_id, latest=1, at=at)
            connection.execute(
                sa.insert(_REVISIONS).values(
                    env_id=env_id,
                    number=1,
                    created_at=at,
                    author=author,
                    definition=definition,
                    compiled=compiled,
                )
            )
            self._audit(connection, audit)
        return RevisionRecord(ref, 1, at, author, definition, compiled)

    @staticmethod
    def _insert_environment(
        connection: Connection, ref: EnvRef, *, data_key: bytes, key_id: str, latest: int, at: str
    ) -> int:
        try:
            env_id = connection.execute(
                sa.insert(_ENVIRONMENTS)
                .values(
                    project=ref.project,
                    name=ref.name,
                    created_at=at,
                    latest_revision=latest,
                    data_key=data_key,
                    key_id=key_id,
                )
                .returning(_ENVIRONMENTS.c.id)
            ).scalar_one()
        except IntegrityError as exc:
            raise _already_exists(ref) from exc
        return int(env_id)

    def get_environment(self, ref: EnvRef) -> EnvironmentRecord:
        with self._transaction(write=False) as connection:
            return self._environment_record(self._environment(connection, ref))

    def list_environments(
        self, *, project: str | None = None, after: EnvRef | None = None, limit: int | None = None
    ) -> list[EnvironmentRecord]:
        if limit is not None and limit < 0:
            raise InvalidInputError(f"invalid limit {limit}: it must not be negative")
        query = sa.select(_ENVIRONMENTS).order_by(_ENVIRONMENTS.c.project, _ENVIRONMENTS.c.name)
        if project is not None:
            query = query.where(_ENVIRONMENTS.c.project == project)
        if after is not None:
            # A row-value comparison: served by the unique (project, name) index.
            query = query.where(
                sa.tuple_(_ENVIRONMENTS.c.project, _ENVIRONMENTS.c.name)
                > sa.tuple_(sa.literal(after.project), sa.literal(after.name))
            )
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(write=False) as connection:
            return [self._environment_record(row) for row in connection.execute(query)]

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
            raise InvalidInputError(f"cannot import {ref} without any revision")
        count = len(revisions)
        seen: set[str] = set()
        for tag, number in tags:
            if tag in seen:
                raise InvalidInputError(f"cannot import {ref}: the tag {tag!r} is given twice")
            seen.add(tag)
            if not 1 <= number <= count:
                raise RevisionNotFoundError(
                    f"cannot import {ref}: the tag {tag!r} points at revision {number}, "
                    f"which is not among the {count} imported",
                )
        with self._transaction(write=True) as connection:
            env_id = self._insert_environment(connection, ref, data_key=data_key, key_id=key_id, latest=count, at=at)
            connection.execute(
                sa.insert(_REVISIONS),
                [
                    {
                        "env_id": env_id,
                        "number": number,
                        "created_at": created_at,
                        "author": author,
                        "definition": definition,
                        "compiled": compiled,
                    }
                    for number, (definition, compiled, author, created_at) in enumerate(revisions, 1)
                ],
            )
            if tags:
                connection.execute(
                    sa.insert(_TAGS),
                    [{"env_id": env_id, "name": tag, "revision": number, "updated_at": at} for tag, number in tags],
                )
            self._audit(connection, audit)

    def delete_environment(self, ref: EnvRef, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            env_id = self._environment(connection, ref, lock=True).id
            # Explicitly, not only by the foreign keys' ON DELETE CASCADE: a SQLite file may have been
            # written by a connection that did not enforce them.
            connection.execute(sa.delete(_ENV_TAGS).where(_ENV_TAGS.c.env_id == env_id))
            connection.execute(
                sa.delete(_SESSIONS).where(_SESSIONS.c.project == ref.project, _SESSIONS.c.name == ref.name)
            )
            connection.execute(sa.delete(_TAGS).where(_TAGS.c.env_id == env_id))
            connection.execute(sa.delete(_REVISIONS).where(_REVISIONS.c.env_id == env_id))
            connection.execute(sa.delete(_ENVIRONMENTS).where(_ENVIRONMENTS.c.id == env_id))
            self._audit(connection, audit)

    # ------------------------------------------------------------------ revisions

    def get_revision(self, ref: EnvRef, number: int | None = None) -> RevisionRecord:
        wanted = _ENVIRONMENTS.c.latest_revision if number is None else sa.literal(number)
        query = (
            sa.select(
                _ENVIRONMENTS.c.latest_revision,
                _REVISIONS.c.number,
                _REVISIONS.c.created_at,
                _REVISIONS.c.author,
                _REVISIONS.c.definition,
                _REVISIONS.c.compiled,
            )
            .select_from(
                _ENVIRONMENTS.outerjoin(
                    _REVISIONS,
                    sa.and_(_REVISIONS.c.env_id == _ENVIRONMENTS.c.id, _REVISIONS.c.number == wanted),
                )
            )
            .where(_ENVIRONMENTS.c.project == ref.project, _ENVIRONMENTS.c.name == ref.name)
        )
        with self._transaction(write=False) as connection:
            row = connection.execute(query).one_or_none()
        if row is None:
            raise _env_not_found(ref)
        if row.number is None:
            raise _revision_not_found(ref, row.latest_revision if number is None else number, row.latest_revision)
        return self._revision_record(ref, row)

    def list_revisions(self, ref: EnvRef) -> list[RevisionRecord]:
        with self._transaction(write=False) as connection:
            env_id = self._environment(connection, ref).id
            rows = connection.execute(
                sa.select(_REVISIONS).where(_REVISIONS.c.env_id == env_id).order_by(_REVISIONS.c.number.desc())
            ).all()
        return [self._revision_record(ref, row) for row in rows]

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
        number = expected_latest + 1
        with self._transaction(write=True) as connection:
            env = self._environment(connection, ref)
            if env.latest_revision != expected_latest:
                raise _conflict(ref, env.latest_revision, expected_latest)
            moved = connection.execute(
                sa.update(_ENVIRONMENTS)
                .where(
                    _ENVIRONMENTS.c.id == env.id,
                    _ENVIRONMENTS.c.latest_revision == expected_latest,
                )
                .values(latest_revision=number)
            ).rowcount
            if moved != 1:
                # Another writer committed between our read and our update.
                newest = connection.execute(
                    sa.select(_ENVIRONMENTS.c.latest_revision).where(_ENVIRONMENTS.c.id == env.id)
                ).scalar_one_or_none()
                if newest is None:
                    raise _env_not_found(ref)
                raise _conflict(ref, newest, expected_latest)
            try:
                connection.execute(
                    sa.insert(_REVISIONS).values(
                        env_id=env.id,
                        number=number,
                        created_at=at,
                        author=author,
                        definition=definition,
                        compiled=compiled,
                    )
                )
            except IntegrityError as exc:
                raise _conflict(ref, number, expected_latest) from exc
            self._audit(connection, audit)
        return RevisionRecord(ref, number, at, author, definition, compiled)

    # ------------------------------------------------------------------ tags

    def resolve_tag(self, ref: EnvRef, tag: str) -> int:
        query = (
            sa.select(_ENVIRONMENTS.c.id, _TAGS.c.revision)
            .select_from(
                _ENVIRONMENTS.outerjoin(_TAGS, sa.and_(_TAGS.c.env_id == _ENVIRONMENTS.c.id, _TAGS.c.name == tag))
            )
            .where(_ENVIRONMENTS.c.project == ref.project, _ENVIRONMENTS.c.name == ref.name)
        )
        with self._transaction(write=False) as connection:
            row = connection.execute(query).one_or_none()
        if row is None:
            raise _env_not_found(ref)
        if row.revision is None:
            raise _tag_not_found(ref, tag)
        return int(row.revision)

    def set_tag(self, ref: EnvRef, tag: str, revision: int, *, at: str, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            env = self._environment(connection, ref)
            exists = connection.execute(
                sa.select(_REVISIONS.c.number).where(_REVISIONS.c.env_id == env.id, _REVISIONS.c.number == revision)
            ).first()
            if exists is None:
                raise _revision_not_found(ref, revision, env.latest_revision)
            try:
                connection.execute(
                    self._upsert(
                        _TAGS,
                        ("env_id", "name"),
                        {"env_id": env.id, "name": tag, "revision": revision, "updated_at": at},
                    )
                )
            except IntegrityError as exc:  # the environment was deleted meanwhile
                raise _env_not_found(ref) from exc
            self._audit(connection, audit)

    def delete_tag(self, ref: EnvRef, tag: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            env_id = self._environment(connection, ref).id
            deleted = connection.execute(sa.delete(_TAGS).where(_TAGS.c.env_id == env_id, _TAGS.c.name == tag)).rowcount
            if deleted != 1:
                raise _tag_not_found(ref, tag)
            self._audit(connection, audit)

    def list_tags(self, ref: EnvRef) -> list[TagRecord]:
        with self._transaction(write=False) as connection:
            env_id = self._environment(connection, ref).id
            rows = connection.execute(
                sa.select(_TAGS.c.name, _TAGS.c.revision, _TAGS.c.updated_at)
                .where(_TAGS.c.env_id == env_id)
                .order_by(_TAGS.c.name)
            ).all()
        return [TagRecord(row.name, row.revision, row.updated_at) for row in rows]

    # ------------------------------------------------------------------ data keys

    def list_data_keys(self) -> list[tuple[EnvRef, bytes, str]]:
        query = sa.select(
            _ENVIRONMENTS.c.project,
            _ENVIRONMENTS.c.name,
            _ENVIRONMENTS.c.data_key,
            _ENVIRONMENTS.c.key_id,
        ).order_by(_ENVIRONMENTS.c.project, _ENVIRONMENTS.c.name)
        with self._transaction(write=False) as connection:
            rows = connection.execute(query).all()
        return [(EnvRef(row.project, row.name), bytes(row.data_key), row.key_id) for row in rows]

    def replace_data_keys(
        self,
        rewrapped: Iterable[tuple[EnvRef, bytes, str]],
        *,
        meta: Mapping[str, str] | None = None,
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        items = list(rewrapped)
        if not items and not audit and not meta:
            return
        with self._transaction(write=True) as connection:
            for key, value in (meta or {}).items():
                connection.execute(self._upsert(_META, ("key",), {"key": key, "value": value}))
            for ref, data_key, key_id in items:
                updated = connection.execute(
                    sa.update(_ENVIRONMENTS)
                    .where(_ENVIRONMENTS.c.project == ref.project, _ENVIRONMENTS.c.name == ref.name)
                    .values(data_key=data_key, key_id=key_id)
                ).rowcount
                if updated != 1:
                    raise _env_not_found(ref)
            self._audit(connection, audit)

    # ------------------------------------------------------------------ metadata

    def get_meta(self, key: str) -> str | None:
        with self._transaction(write=False) as connection:
            value = connection.execute(sa.select(_META.c.value).where(_META.c.key == key)).scalar_one_or_none()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction(write=True) as connection:
            connection.execute(self._upsert(_META, ("key",), {"key": key, "value": value}))

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        # READ COMMITTED: a racing UPDATE waits for the row lock, then re-checks its WHERE on the
        # committed row and matches nothing; a racing INSERT hits the primary key and does nothing.
        with self._transaction(write=True) as connection:
            if expected is None:
                stmt = self._insert_ignoring(_META, ("key",)).values(key=key, value=value)
            else:
                stmt = sa.update(_META).where(_META.c.key == key, _META.c.value == expected).values(value=value)
            return connection.execute(stmt.returning(_META.c.key)).first() is not None

    # ------------------------------------------------------------------ audit log

    def _audit(self, connection: Connection, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append ``events`` inside the caller's write transaction, extending the chain.

        Fail-closed: any error (a missing or damaged table, a value the columns refuse)
        is raised as ``StoreUnavailableError``, and the caller's change is rolled back
        with the transaction. Never ``ConflictError``: retrying would not help.
        """
        if not events:
            return []
        try:
            head = connection.execute(
                sa.select(_AUDIT_HEAD.c.seq, _AUDIT_HEAD.c.hash).where(_AUDIT_HEAD.c.id == 1).with_for_update()
            ).one_or_none()
            if head is None:
                raise StoreUnavailableError(
                    f"cannot write the audit log of the store at {self._where}: its chain head is missing, "
                    "so nothing was changed",
                    hint="the audit log has been tampered with; check it with `strongroom audit verify`",
                )
            seq, prev = int(head.seq), str(head.hash)
            records: list[AuditRecord] = []
            rows: list[dict[str, Any]] = []
            for event in events:
                seq += 1
                digest = record_hash(seq, prev, canonical_event(event))
                rows.append(
                    {
                        "seq": seq,
                        "at": event.at,
                        "actor": event.actor,
                        "action": event.action,
                        "outcome": event.outcome,
                        "environment": event.environment,
                        "revision": event.revision,
                        "client": event.client,
                        "details": _details_json(event),
                        "prev_hash": prev,
                        "hash": digest,
                    }
                )
                records.append(AuditRecord(seq, event, prev, digest))
                prev = digest
            connection.execute(sa.insert(_AUDIT_LOG), rows)
            connection.execute(sa.update(_AUDIT_HEAD).where(_AUDIT_HEAD.c.id == 1).values(seq=seq, hash=prev))
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(
                f"cannot write the audit log of the store at {self._where}, so nothing was changed: "
                f"{_reason(self._engine.url, exc)}",
                hint="check the store's audit log with `strongroom audit verify`",
            ) from exc
        return records

    def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if not events:
            return []
        with self._transaction(write=True) as connection:
            return self._audit(connection, events)

    def _audit_query(
        self,
        *,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> sa.Select[Any]:
        """The ``list_audit`` query: keyset paging on ``seq``, served by the (column, seq) indexes."""
        if limit is not None and limit < 0:
            raise InvalidInputError(f"invalid limit {limit}: it must not be negative")
        clauses: list[ColumnElement[bool]] = [_AUDIT_LOG.c.seq > after_seq]
        if environment is not None:
            clauses.append(_AUDIT_LOG.c.environment == environment)
        if actor is not None:
            clauses.append(_AUDIT_LOG.c.actor == actor)
        if action is not None:
            clauses.append(_AUDIT_LOG.c.action == action)
        if since is not None:
            clauses.append(_AUDIT_LOG.c.at >= since)
        query = sa.select(*_AUDIT_COLUMNS).where(*clauses).order_by(_AUDIT_LOG.c.seq)
        if limit is not None:
            query = query.limit(limit)
        return query

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
        query = self._audit_query(
            environment=environment, actor=actor, action=action, since=since, after_seq=after_seq, limit=limit
        )
        with self._transaction(write=False) as connection:
            return [_audit_record(row) for row in connection.execute(query)]

    def audit_head(self) -> tuple[int, str]:
        with self._transaction(write=False) as connection:
            head = connection.execute(
                sa.select(_AUDIT_HEAD.c.seq, _AUDIT_HEAD.c.hash).where(_AUDIT_HEAD.c.id == 1)
            ).one_or_none()
        if head is None:
            raise StoreUnavailableError(
                f"the audit log of the store at {self._where} has no chain head",
                hint="the audit log has been tampered with; check it with `strongroom audit verify`",
            )
        return int(head.seq), str(head.hash)

    # ------------------------------------------------------------------ tokens

    def create_token(self, token: TokenRecord, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            try:
                connection.execute(
                    sa.insert(_TOKENS).values(
                        token_id=token.token_id,
                        name=token.name,
                        role=token.role,
                        scopes=json.dumps(list(token.scopes)),
                        secret_hash=token.secret_hash,
                        created_at=token.created_at,
                        created_by=token.created_by,
                        expires_at=token.expires_at,
                        revoked_at=token.revoked_at,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExistsError(f"a token with id {token.token_id} already exists") from exc
            self._audit(connection, audit)

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._transaction(write=False) as connection:
            row = connection.execute(sa.select(_TOKENS).where(_TOKENS.c.token_id == token_id)).one_or_none()
        return None if row is None else _token_record(row)

    def list_tokens(self) -> list[TokenRecord]:
        # Byte-wise order, as on SQLite, whatever the PostgreSQL database's collation.
        order = [self._bytewise(_TOKENS.c.created_at), self._bytewise(_TOKENS.c.token_id)]
        with self._transaction(write=False) as connection:
            rows = connection.execute(sa.select(_TOKENS).order_by(*order)).all()
        return [_token_record(row) for row in rows]

    def revoke_token(self, token_id: str, *, at: str, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            revoked = connection.execute(
                sa.update(_TOKENS)
                .where(_TOKENS.c.token_id == token_id)
                .values(revoked_at=sa.func.coalesce(_TOKENS.c.revoked_at, at))
            ).rowcount
            if revoked != 1:
                raise _token_not_found(token_id)
            self._audit(connection, audit)

    # ------------------------------------------------------------------ environment tags

    def list_env_tags(self, ref: EnvRef) -> list[EnvTagRecord]:
        with self._transaction(write=False) as connection:
            env_id = self._environment(connection, ref).id
            rows = connection.execute(
                sa.select(
                    _ENV_TAGS.c.name,
                    _ENV_TAGS.c.value,
                    _ENV_TAGS.c.created_at,
                    _ENV_TAGS.c.updated_at,
                    _ENV_TAGS.c.updated_by,
                )
                .where(_ENV_TAGS.c.env_id == env_id)
                # Byte-wise, as on SQLite. The column is COLLATE "C" on PostgreSQL already: this costs nothing.
                .order_by(self._bytewise(_ENV_TAGS.c.name))
            ).all()
        return [EnvTagRecord(row.name, row.value, row.created_at, row.updated_at, row.updated_by) for row in rows]

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
        with self._transaction(write=True) as connection:
            # Locking the environment's row serialises the tag writers of one environment (and
            # delete_environment), so the checks below and the write after them are one step.
            env_id = self._environment(connection, ref, lock=True).id
            row = connection.execute(
                sa.select(_ENV_TAGS.c.value, _ENV_TAGS.c.created_at).where(
                    _ENV_TAGS.c.env_id == env_id, _ENV_TAGS.c.name == name
                )
            ).one_or_none()
            if row is not None and create_only:
                raise AlreadyExistsError(f"{ref} already has a tag {name!r}", hint="update it instead")
            if expected_value is not None:
                if row is None:
                    raise _env_tag_not_found(ref, name)
                if row.value != expected_value:
                    raise ConflictError(
                        f"the tag {name!r} of {ref} was changed meanwhile", hint="re-read it and try again"
                    )
            if row is None:
                created = at
                connection.execute(
                    sa.insert(_ENV_TAGS).values(
                        env_id=env_id, name=name, value=value, created_at=at, updated_at=at, updated_by=actor
                    )
                )
            else:
                created = str(row.created_at)
                connection.execute(
                    sa.update(_ENV_TAGS)
                    .where(_ENV_TAGS.c.env_id == env_id, _ENV_TAGS.c.name == name)
                    .values(value=value, updated_at=at, updated_by=actor)
                )
            self._audit(connection, audit)
        return EnvTagRecord(name, value, created, at, actor)

    def delete_env_tag(self, ref: EnvRef, name: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            env_id = self._environment(connection, ref, lock=True).id
            deleted = connection.execute(
                sa.delete(_ENV_TAGS).where(_ENV_TAGS.c.env_id == env_id, _ENV_TAGS.c.name == name)
            ).rowcount
            if deleted != 1:
                raise _env_tag_not_found(ref, name)
            self._audit(connection, audit)

    # ------------------------------------------------------------------ open sessions

    def create_open_session(self, session: OpenSession) -> None:
        with self._transaction(write=True) as connection:
            try:
                connection.execute(
                    sa.insert(_SESSIONS).values(
                        session_id=session.session_id,
                        project=session.env.project,
                        name=session.env.name,
                        revision=session.revision,
                        actor=session.actor,
                        created_at=session.created_at,
                        expires_at=session.expires_at,
                    )
                )
            except IntegrityError as exc:
                # The id is not repeated: it is what a reader presents to use the session.
                raise AlreadyExistsError("an open session with this id already exists") from exc

    def get_open_session(self, session_id: str) -> OpenSession | None:
        with self._transaction(write=False) as connection:
            row = connection.execute(sa.select(_SESSIONS).where(_SESSIONS.c.session_id == session_id)).one_or_none()
        if row is None:
            return None
        return OpenSession(
            session_id=row.session_id,
            env=EnvRef(row.project, row.name),
            revision=int(row.revision),
            actor=row.actor,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    def delete_expired_sessions(self, now: str) -> int:
        with self._transaction(write=True) as connection:
            return int(connection.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.expires_at <= now)).rowcount)

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, hook: WebhookRecord, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            try:
                connection.execute(
                    sa.insert(_WEBHOOKS).values(
                        webhook_id=hook.webhook_id,
                        environment=hook.environment,
                        url=hook.url,
                        secret=hook.secret,
                        events=json.dumps(list(hook.events)),
                        created_at=hook.created_at,
                        created_by=hook.created_by,
                        last_seq=hook.last_seq,
                        active=hook.active,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExistsError(f"a webhook with id {hook.webhook_id} already exists") from exc
            self._audit(connection, audit)

    def list_webhooks(self) -> list[WebhookRecord]:
        order = [self._bytewise(_WEBHOOKS.c.created_at), self._bytewise(_WEBHOOKS.c.webhook_id)]
        with self._transaction(write=False) as connection:
            rows = connection.execute(sa.select(_WEBHOOKS).order_by(*order)).all()
        return [_webhook_record(row) for row in rows]

    def delete_webhook(self, webhook_id: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        with self._transaction(write=True) as connection:
            # The webhook's row first: enqueue_deliveries locks it before it touches the deliveries,
            # so taking the locks in the same order cannot deadlock with it.
            deleted = connection.execute(sa.delete(_WEBHOOKS).where(_WEBHOOKS.c.webhook_id == webhook_id)).rowcount
            if deleted != 1:
                raise _webhook_not_found(webhook_id)
            # Already gone by ON DELETE CASCADE where foreign keys are enforced; explicit for any file that was not.
            connection.execute(sa.delete(_DELIVERIES).where(_DELIVERIES.c.webhook_id == webhook_id))
            self._audit(connection, audit)

    def enqueue_deliveries(
        self,
        webhook_id: str,
        deliveries: Sequence[tuple[int, str, str]],
        *,
        expected_last_seq: int,
        new_last_seq: int,
        at: str,
    ) -> bool:
        with self._transaction(write=True) as connection:
            # Compare-and-set on the cursor: of two dispatchers that read the same cursor, the second
            # waits on the row lock (PostgreSQL) or the write lock (SQLite), then matches no row.
            moved = connection.execute(
                sa.update(_WEBHOOKS)
                .where(_WEBHOOKS.c.webhook_id == webhook_id, _WEBHOOKS.c.last_seq == expected_last_seq)
                .values(last_seq=new_last_seq)
            ).rowcount
            if moved != 1:
                return False
            if deliveries:
                connection.execute(
                    self._insert_ignoring(_DELIVERIES, ("webhook_id", "audit_seq")),
                    [
                        {
                            "webhook_id": webhook_id,
                            "audit_seq": seq,
                            "event": event,
                            "payload": payload,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": at,
                            "created_at": at,
                            "updated_at": at,
                        }
                        for seq, event, payload in deliveries
                    ],
                )
        return True

    def due_deliveries(self, now: str, *, limit: int = 100) -> list[DeliveryRecord]:
        _check_limit(limit)
        # Times are fixed-width ISO-8601 UTC text, which every collation orders alike: no COLLATE here,
        # so that the (status, next_attempt_at) index serves both the filter and the order.
        query = (
            sa.select(_DELIVERIES)
            .where(_DELIVERIES.c.status == "pending", _DELIVERIES.c.next_attempt_at <= now)
            .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.delivery_id)
            .limit(limit)
        )
        with self._transaction(write=False) as connection:
            return [_delivery_record(row) for row in connection.execute(query)]

    def claim_delivery(self, delivery_id: int, *, now: str, lease_until: str) -> bool:
        # One conditional UPDATE: on PostgreSQL a second claimant waits on the row lock, then re-checks
        # the condition against the row the first one committed (its lease is in the future) and
        # matches nothing; on SQLite the write lock serialises claimants.
        with self._transaction(write=True) as connection:
            claimed = connection.execute(
                sa.update(_DELIVERIES)
                .where(
                    _DELIVERIES.c.delivery_id == delivery_id,
                    _DELIVERIES.c.status == "pending",
                    _DELIVERIES.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=lease_until)
            ).rowcount
        return claimed == 1

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
        with self._transaction(write=True) as connection:
            connection.execute(
                sa.update(_DELIVERIES)
                .where(_DELIVERIES.c.delivery_id == delivery_id)
                .values(
                    status=status,
                    attempts=attempts,
                    next_attempt_at=next_attempt_at,
                    last_status=last_status,
                    last_error=last_error,
                    updated_at=at,
                )
            )

    def list_deliveries(self, *, webhook_id: str | None = None, limit: int = 100) -> list[DeliveryRecord]:
        _check_limit(limit)
        query = sa.select(_DELIVERIES).order_by(_DELIVERIES.c.delivery_id.desc()).limit(limit)
        if webhook_id is not None:
            query = query.where(_DELIVERIES.c.webhook_id == webhook_id)
        with self._transaction(write=False) as connection:
            return [_delivery_record(row) for row in connection.execute(query)]

    def _bytewise(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        if self._engine.dialect.name == "postgresql":
            return column.collate("C")
        return column

    def close(self) -> None:
        self._engine.dispose()
