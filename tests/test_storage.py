"""Storage backends against the conformance suite, plus migrations and opening a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from strongroom.errors import InvalidInputError, StoreUnavailableError
from strongroom.model import EnvRef
from strongroom.storage import migrate
from strongroom.storage.base import SCHEMA_VERSION, Store, open_store
from strongroom.storage.sql import SqlAlchemyStore
from strongroom.testing.storage_conformance import StoreConformance

TABLES = {"alembic_version", "environments", "revisions", "revision_tags", "store_meta"}


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
            connection.execute(sa.text("DROP TABLE revision_tags, revisions, environments"))
        engine.dispose()
        with pytest.raises(StoreUnavailableError):
            store.get_environment(EnvRef("a", "b"))
    finally:
        store.close()
