"""Schema migrations: bring a database to the schema this Strongroom expects.

The Alembic scripts in ``migrations/`` are the single source of truth for the
schema of every backend. They run programmatically, without an ``alembic.ini``;
Alembic and SQLAlchemy are imported only when a function here is called.
"""

from __future__ import annotations

__all__ = ["check_version", "current_version", "known_versions", "normalise_url", "upgrade"]

import os
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom.errors import StoreUnavailableError
from strongroom.storage.base import SCHEMA_VERSION

if TYPE_CHECKING:
    from alembic.config import Config

#: Key of the PostgreSQL advisory lock that serialises concurrent ``upgrade`` calls.
_PG_MIGRATION_LOCK = 0x5354_524F_4E47  # "STRONG"


def normalise_url(url: str) -> str:
    """Rewrite ``postgres://`` and ``postgresql://`` to ``postgresql+psycopg://``; others as given."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    location = Path(__file__).resolve().parent / "migrations"
    # The value goes through configparser interpolation: escape any '%'.
    config.set_main_option("script_location", str(location).replace("%", "%%"))
    return config


def known_versions() -> tuple[str, ...]:
    """Every schema version the migrations know, oldest first; the last one is the head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    return tuple(reversed([script_revision.revision for script_revision in script.walk_revisions()]))


def check_version(version: str | None, *, where: str) -> None:
    """Raise ``StoreUnavailableError`` unless ``version`` is the schema this code expects.

    ``where`` names the store in the message (without a password).
    """
    if version == SCHEMA_VERSION:
        return
    if version is None:
        raise StoreUnavailableError(f"the store at {where} is not initialised", hint="run `strongroom init`")
    if version in known_versions():
        raise StoreUnavailableError(
            f"the store at {where} has schema version {version}, and this Strongroom needs {SCHEMA_VERSION}",
            hint="run `strongroom init` to migrate it",
        )
    raise StoreUnavailableError(
        f"the store at {where} has schema version {version}, which is newer than this Strongroom "
        f"knows (it needs {SCHEMA_VERSION})",
        hint="upgrade Strongroom",
    )


def _create_sqlite_file(path: Path, where: str) -> None:
    """Create a missing SQLite file readable by its owner only (and its directory)."""
    if path.exists():
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the store at {where}: {exc.strerror or exc}",
            hint="check the directory exists and is writable",
        ) from exc


def upgrade(url: str) -> None:
    """Create the schema, or migrate it to the newest version, on the database at ``url``.

    Idempotent. Runs in one transaction (PostgreSQL and SQLite both have
    transactional DDL here); concurrent calls are serialised. ``url`` is a
    SQLAlchemy URL; ``postgres://`` and ``postgresql://`` mean psycopg 3.
    """
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from strongroom.storage.sql import (
        make_engine,
        schema_version,
        sqlite_file,
        store_unavailable,
        transaction,
    )

    engine = make_engine(url, pooled=False)
    where = engine.url.render_as_string(hide_password=True)
    try:
        path = sqlite_file(url)
        if path is not None:
            _create_sqlite_file(path, where)
        with transaction(engine, write=True) as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            version = schema_version(connection)
            if version is not None and version not in known_versions():
                check_version(version, where=where)  # raises: newer than this code
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError as exc:
        raise StoreUnavailableError(
            f"cannot migrate the store at {where}: {exc}", hint="check the store's schema version"
        ) from exc
    except SQLAlchemyError as exc:  # integrity errors, which transaction() lets through
        raise store_unavailable(engine.url, exc) from exc
    finally:
        engine.dispose()


def current_version(url: str) -> str | None:
    """The schema version of the database at ``url``; ``None`` when it has no schema yet.

    A SQLite file that does not exist is not created.
    """
    from strongroom.storage.sql import make_engine, schema_version, sqlite_file, transaction

    path = sqlite_file(url)
    if path is not None and not path.exists():
        return None
    engine = make_engine(url, pooled=False)
    try:
        with transaction(engine, write=False) as connection:
            return schema_version(connection)
    finally:
        engine.dispose()
