"""Shared fixtures for Strongroom's tests.

PostgreSQL: tests that use ``postgres_url`` get a fresh database of their own on
the server named by ``STRONGROOM_TEST_POSTGRES`` (default: the local server as
``postgres``). When it cannot be reached they are skipped, with the reason shown,
unless ``STRONGROOM_REQUIRE_POSTGRES=1`` (CI), which makes them fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from strongroom.storage.migrate import normalise_url

# --------------------------------------------------------------------------- PostgreSQL

POSTGRES_URL_ENV = "STRONGROOM_TEST_POSTGRES"
REQUIRE_POSTGRES_ENV = "STRONGROOM_REQUIRE_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _admin_engine(url: str) -> sa.Engine:
    """An autocommit engine without a pool, for probing and CREATE/DROP DATABASE."""
    return sa.create_engine(
        normalise_url(url),
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The URL of a reachable PostgreSQL server's maintenance database (skips or fails if none)."""
    url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    engine = _admin_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        reason = f"PostgreSQL not reachable at {shown}; set {POSTGRES_URL_ENV} ({first_line})"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_POSTGRES_ENV}=1 requires it", pytrace=False)
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A SQLAlchemy URL of a new, empty database, dropped (connections and all) after the test."""
    name = f"sr_test_{secrets.token_hex(6)}"
    engine = _admin_engine(postgres_server_url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()


# --------------------------------------------------------------------------- CLI
# Fixtures for the CLI tests (test_cli.py, test_no_leaks.py). Appended; nothing above depends on them.

import base64  # noqa: E402

from click.testing import CliRunner, Result  # noqa: E402

#: A fixed, recognisable master key for tests (32 bytes), as STRONGROOM_MASTER_KEY takes it.
TEST_MASTER_KEY_BYTES = b"strongroom-test-master-key-0001!"
TEST_MASTER_KEY = base64.b64encode(TEST_MASTER_KEY_BYTES).decode("ascii")
assert len(TEST_MASTER_KEY_BYTES) == 32

#: Variables of the outer environment that would change what the CLI does; unset for every test.
_UNSET_FOR_CLI = (
    "STRONGROOM_STORE",
    "STRONGROOM_PASSPHRASE",
    "STRONGROOM_PASSPHRASE_FILE",
    "STRONGROOM_NEW_MASTER_KEY",
    "STRONGROOM_NEW_PASSPHRASE",
    "STRONGROOM_DEBUG",
    "VISUAL",
    "EDITOR",
)


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str | None]:
    """The environment for CLI runs: a store in ``tmp_path/home`` and a fixed test master key.

    A value of ``None`` unsets that variable (as ``CliRunner.invoke(env=...)`` does).
    """
    env: dict[str, str | None] = {name: None for name in _UNSET_FOR_CLI}
    env.update(
        {
            "STRONGROOM_HOME": str(tmp_path / "home"),
            "STRONGROOM_MASTER_KEY": TEST_MASTER_KEY,
            "STRONGROOM_ACTOR": "tester",
            "COLUMNS": "200",
        }
    )
    return env


@pytest.fixture
def run_cli(cli_env):
    """``run_cli(*args, input=None, env=None)``: invoke the CLI in-process and return the click Result.

    ``env`` entries are merged over ``cli_env`` (``None`` unsets). Exceptions other than
    ``SystemExit`` are not swallowed: an internal error (exit 70 in a real process) fails the test.
    """
    from strongroom.cli.app import cli

    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None, env: dict[str, str | None] | None = None) -> Result:
        merged = {**cli_env, **(env or {})}
        return runner.invoke(cli, list(args), input=input, env=merged, catch_exceptions=False)

    return run
