"""Alembic environment for Strongroom's schema.

Run programmatically by :mod:`strongroom.storage.migrate`, which passes an open
SQLAlchemy connection (already inside a transaction) through
``config.attributes["connection"]``. No ``alembic.ini`` is needed. As a fallback
for maintainers running Alembic by hand, ``sqlalchemy.url`` in the config is used.
"""

from __future__ import annotations

__all__: list[str] = []

from alembic import context
from sqlalchemy import Connection, create_engine, pool


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        # SQLite cannot ALTER most things: future migrations use "move and copy".
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database to migrate: use strongroom.storage.migrate.upgrade(url), "
            "or set sqlalchemy.url in the Alembic config"
        )
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as own_connection:
            _run_on(own_connection)
    finally:
        engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=None,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
