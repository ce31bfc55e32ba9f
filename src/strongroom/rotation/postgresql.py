"""The built-in ``postgresql`` rotator: a PostgreSQL role's password, set as a SCRAM-SHA-256 verifier.

The verifier is computed here (``scram_sha256_verifier``), so the plaintext is never part of a
statement and never reaches the server's statement log. ``strategy: alternate`` switches
between two roles, ``user`` and ``<user>_clone``, for rotation without downtime. See
``docs/rotation.md`` for the inputs. Imported only when a rotation names ``postgresql``.

psycopg's exceptions keep the failed connection, whose ``repr`` shows the password it was
given, so they are never chained onto ours: only their first line, with secrets masked, is kept.
"""

from __future__ import annotations

__all__ = ["ADMIN_DSN_ENV", "SCRAM_ITERATIONS", "PostgresRotator", "scram_sha256_verifier"]

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from strongroom.errors import InvalidInputError
from strongroom.language.diagnostics import did_you_mean
from strongroom.language.paths import parse_path
from strongroom.rotation.catalog import POSTGRESQL_INPUTS
from strongroom.rotation.rotators import Rotated

#: The environment variable that holds the admin connection string, unless ``adminDsnEnv`` names another.
ADMIN_DSN_ENV = "STRONGROOM_POSTGRES_ADMIN_DSN"
#: PostgreSQL's default ``scram_iterations``.
SCRAM_ITERATIONS = 4096
SALT_BYTES = 16
DEFAULT_BYTES = 32
CLONE_SUFFIX = "_clone"
SINGLE, ALTERNATE = "single", "alternate"
#: PostgreSQL keeps the first 63 bytes of a name (NAMEDATALEN - 1) and silently drops the rest.
MAX_NAME_BYTES = 63
APPLICATION_NAME = "strongroom-rotator"
INPUTS = POSTGRESQL_INPUTS
_ENGINE_INPUTS = ("procedure", "memo", "verify")  # added by the engine, not the rotator's
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HINT = "see the postgresql rotator in docs/rotation.md"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores in ``pg_authid.rolpassword`` for ``password`` under SCRAM-SHA-256.

    ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64), with
    SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations), StoredKey =
    SHA-256(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key")
    (RFC 5802, RFC 7677). Given to ``ALTER ROLE ... PASSWORD``, it is stored as is.
    Only ASCII passwords: PostgreSQL SASLpreps others, which this does not do.
    """
    if not password or not password.isascii():
        raise InvalidInputError("a SCRAM verifier is made here only for a non-empty ASCII password")
    if iterations < 1:
        raise InvalidInputError("SCRAM iterations must be at least 1")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


# -- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Settings:
    user: str
    host: str
    port: int
    dbname: str
    size: int
    strategy: str
    user_path: str | None
    admin_dsn_env: str
    admin_dsn_env_given: bool
    admin_user: str

    @property
    def clone(self) -> str:
        return self.user + CLONE_SUFFIX

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"


def _text(inputs: Mapping[str, Any], key: str, default: str | None, what: str) -> str:
    value = inputs.get(key, default)
    if value is None:
        raise InvalidInputError(
            f"the postgresql rotator needs {key} ({what})", hint=f"write rotator: {{postgresql: {{{key}: ...}}}}"
        )
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise InvalidInputError(f"the postgresql rotator's {key} must be a non-empty string ({what})", hint=_HINT)
    return value


def _role_name(name: str, key: str) -> str:
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidInputError(
            f"the postgresql rotator's {key} {name!r} is longer than {MAX_NAME_BYTES} bytes",
            hint="PostgreSQL would cut the name short; use a shorter role name",
        )
    if name.startswith("pg_"):
        raise InvalidInputError(
            f"the postgresql rotator's {key} {name!r} starts with pg_, which PostgreSQL reserves",
            hint="rotate the password of an ordinary login role",
        )
    return name


def _settings(inputs: Mapping[str, Any]) -> _Settings:
    """The rotator's inputs, checked. Every message names the input and never holds a value of a secret."""
    for key in inputs:
        if key not in INPUTS and key not in _ENGINE_INPUTS:
            suggestion = did_you_mean(str(key), INPUTS)
            raise InvalidInputError(
                f"unknown input {key!r} of the postgresql rotator"
                + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                hint="the postgresql rotator takes " + ", ".join(INPUTS),
            )
    user = _role_name(_text(inputs, "user", None, "the role whose password is rotated"), "user")
    host = _text(inputs, "host", "127.0.0.1", "a host name, address or socket directory")
    port = inputs.get("port", 5432)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidInputError("the postgresql rotator's port must be a whole number from 1 to 65535", hint=_HINT)
    dbname = _text(inputs, "dbname", "postgres", "the database to log in to")
    size = inputs.get("bytes", DEFAULT_BYTES)
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 1024:
        raise InvalidInputError(
            "the postgresql rotator's bytes must be a whole number from 16 to 1024",
            hint=f"the password is that many random bytes, URL-safe base64 (default {DEFAULT_BYTES})",
        )
    strategy = inputs.get("strategy", SINGLE)
    if strategy not in (SINGLE, ALTERNATE):
        raise InvalidInputError(
            f"the postgresql rotator's strategy must be {SINGLE} or {ALTERNATE}",
            hint=f"{SINGLE} (default) changes one role's password; {ALTERNATE} switches between user "
            f"and user{CLONE_SUFFIX} for rotation without downtime",
        )
    user_path = inputs.get("userPath")
    if strategy == ALTERNATE:
        if not isinstance(user_path, str) or not user_path.strip():
            raise InvalidInputError(
                "the postgresql rotator's alternate strategy needs userPath",
                hint="userPath is the value path that holds the active user name, "
                'e.g. userPath: pulumiConfig["postgresql:user"]',
            )
        parse_path(user_path)  # a PathError (an InvalidInputError) says what is wrong with it
        _role_name(user + CLONE_SUFFIX, "user (with its clone's suffix)")
    elif user_path is not None:
        raise InvalidInputError(
            "the postgresql rotator's userPath is used only with strategy: alternate",
            hint="add strategy: alternate, or remove userPath",
        )
    admin_dsn_env = _text(inputs, "adminDsnEnv", ADMIN_DSN_ENV, "an environment variable name")
    if not _ENV_NAME.fullmatch(admin_dsn_env):
        raise InvalidInputError(
            "the postgresql rotator's adminDsnEnv must be the name of an environment variable",
            hint=f"for example adminDsnEnv: {ADMIN_DSN_ENV}",
        )
    admin_user = _text(inputs, "adminUser", "postgres", "the role that may ALTER ROLE")
    return _Settings(
        user=user,
        host=host,
        port=port,
        dbname=dbname,
        size=size,
        strategy=str(strategy),
        user_path=user_path if strategy == ALTERNATE else None,
        admin_dsn_env=admin_dsn_env,
        admin_dsn_env_given="adminDsnEnv" in inputs,
        admin_user=admin_user,
    )


def _memo(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    memo = inputs.get("memo")
    return memo if isinstance(memo, Mapping) else {}


def _rotated_user(s: _Settings, inputs: Mapping[str, Any], step: str) -> str:
    """The role this rotation gives the new password: ``user``, or under ``alternate`` the memo's choice."""
    if s.strategy == SINGLE:
        return s.user
    name = _memo(inputs).get("user")
    if name not in (s.user, s.clone):
        raise InvalidInputError(
            f"the postgresql rotator's {step} step does not know which of {s.user} and {s.clone} "
            "this rotation sets (no memo from create)",
            hint="the alternate strategy needs an engine that keeps the memo create returns; rotate again",
        )
    return str(name)


# -- connections ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Refused:
    """A connection that failed: why (first line, secrets masked), and whether the server asked for a password."""

    reason: str
    challenged: bool


def _first_line(exc: BaseException, hide: tuple[str, ...]) -> str:
    text = " ".join(str(exc).split("\n", 1)[0].split()) or type(exc).__name__
    for secret in hide:
        if secret:
            text = text.replace(secret, "[secret]")
    return text


def _role_exists(connection: psycopg.Connection[Any], name: str) -> bool:
    return connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def _ensure_clone(connection: psycopg.Connection[Any], s: _Settings) -> None:
    """Make ``<user>_clone`` act as ``user`` (idempotent): a member of ``user`` that switches to it at
    login, so it has the same privileges and the objects it creates are owned by ``user``."""
    user, clone = sql.Identifier(s.user), sql.Identifier(s.clone)
    if not _role_exists(connection, s.clone):
        connection.execute(sql.SQL("CREATE ROLE {} WITH NOLOGIN").format(clone))
    connection.execute(sql.SQL("GRANT {} TO {}").format(user, clone))
    connection.execute(sql.SQL("ALTER ROLE {} SET role TO {}").format(clone, sql.Literal(s.user)))


def _connect(conninfo: str, hide: tuple[str, ...], **params: Any) -> psycopg.Connection[Any] | _Refused:
    try:
        return psycopg.connect(conninfo, autocommit=True, **params)
    except psycopg.Error as exc:
        pgconn = getattr(exc, "pgconn", None)
        challenged = bool(pgconn is not None and pgconn.used_password)
        return _Refused(_first_line(exc, hide), challenged)


class PostgresRotator:
    """Rotates the password of the PostgreSQL role ``user`` (inputs: see ``docs/rotation.md``).

    ``environ`` is where ``adminDsnEnv`` is looked up (default: the process environment; libpq
    itself reads ``PGPASSWORD`` and ``~/.pgpass`` for the fallback admin login).
    """

    def __init__(self, *, environ: Mapping[str, str] | None = None, connect_timeout: int = 10) -> None:
        self._environ = os.environ if environ is None else environ
        self._timeout = max(2, connect_timeout)

    def __repr__(self) -> str:
        return "PostgresRotator()"

    # -- the four steps -------------------------------------------------------------------------

    def create(self, current: str | None, inputs: Mapping[str, Any]) -> str | Rotated:
        s = _settings(inputs)
        password = secrets.token_urlsafe(s.size)
        if s.strategy == SINGLE:
            if _memo(inputs).get("user") == s.clone:
                raise InvalidInputError(
                    f"the last rotation left {s.clone} as the active user; strategy: single would change "
                    f"the password of {s.user}, which nothing uses",
                    hint="rotate once more with strategy: alternate (so that the user is active again), "
                    "then switch to single",
                )
            return password
        assert s.user_path is not None
        active = s.clone if _memo(inputs).get("user") == s.clone else s.user
        target = s.user if active == s.clone else s.clone
        return Rotated(password, extra={s.user_path: target}, memo={"user": target, "previous_user": active})

    def set(self, new: str, inputs: Mapping[str, Any]) -> None:
        s = _settings(inputs)
        target = _rotated_user(s, inputs, "set")
        verifier = scram_sha256_verifier(new)

        def apply(connection: psycopg.Connection[Any]) -> None:
            if s.strategy == ALTERNATE and target == s.clone:
                _ensure_clone(connection, s)
            connection.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(target), sql.Literal(verifier))
            )

        self._as_admin(s, apply, f"set the password of {target}", hide=(new, verifier))

    def test(self, new: str, inputs: Mapping[str, Any]) -> None:
        s = _settings(inputs)
        user = _rotated_user(s, inputs, "test")
        found = self._login(s, user, new)
        if isinstance(found, _Refused):
            raise InvalidInputError(
                f"could not log in as {user} at {s.where} with the new password: {found.reason}",
                hint="check that the set step reached this server and that pg_hba.conf lets the role in",
            )
        with found as connection:
            asked = connection.pgconn.used_password
            try:
                row = connection.execute("SELECT 1").fetchone()
            except psycopg.Error as exc:
                row = (_first_line(exc, (new,)),)
        if not asked:
            raise InvalidInputError(
                f"{s.where} let {user} in without asking for a password, so the new password was not tested",
                hint="pg_hba.conf trusts this connection; use scram-sha-256 for it",
            )
        if row != (1,):
            raise InvalidInputError(f"SELECT 1 as {user} at {s.where} did not answer 1: {row}", hint=_HINT)

    def retire(self, old: str, inputs: Mapping[str, Any]) -> None:
        s = _settings(inputs)
        memo = _memo(inputs)
        previous = memo.get("previous_user")
        if s.strategy == SINGLE or previous not in (s.user, s.clone):
            self._expect_refused(s, s.user, old, role_disabled=False)
            return
        previous = str(previous)
        if previous == memo.get("user"):
            raise InvalidInputError(
                f"the rotation's memo names {previous} as both the active and the previous user",
                hint="nothing was disabled; check the rotation state with strongroom rotation history",
            )
        existed = False

        def disable(connection: psycopg.Connection[Any]) -> None:
            nonlocal existed
            existed = _role_exists(connection, previous)
            if existed:
                connection.execute(sql.SQL("ALTER ROLE {} WITH NOLOGIN PASSWORD NULL").format(sql.Identifier(previous)))

        self._as_admin(s, disable, f"disable {previous}", hide=(old,))
        if existed:
            self._expect_refused(s, previous, old, role_disabled=True)

    # -- helpers ----------------------------------------------------------------------------------

    def _admin_who(self, s: _Settings) -> tuple[str, str, dict[str, Any], tuple[str, ...]]:
        """(conninfo, who it is for messages, parameters to add, secrets to mask) of the admin connection."""
        dsn = self._environ.get(s.admin_dsn_env, "")
        if not dsn.strip():
            if s.admin_dsn_env_given:
                raise InvalidInputError(
                    f"the environment variable {s.admin_dsn_env} (the postgresql rotator's adminDsnEnv) is not set",
                    hint="set it to a libpq connection string or URL of a role that may ALTER ROLE",
                )
            who = f"{s.admin_user}@{s.where} (password from PGPASSWORD or ~/.pgpass)"
            return "", who, {"host": s.host, "port": s.port, "dbname": s.dbname, "user": s.admin_user}, ()
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            params = None
        if params is None:
            raise InvalidInputError(
                f"the environment variable {s.admin_dsn_env} is not a libpq connection string or URL",
                hint="write host=... user=... password=... or postgresql://user:password@host:port/dbname",
            )
        missing = {"host": s.host, "port": s.port, "dbname": s.dbname}
        added = {key: value for key, value in missing.items() if key not in params}
        shown = {**params, **added}
        who = f"${s.admin_dsn_env} ({shown.get('user', 'default user')}@{shown['host']}:{shown['port']})"
        return dsn, who, added, (dsn, str(params.get("password") or ""))

    def _as_admin(
        self, s: _Settings, action: Callable[[psycopg.Connection[Any]], None], what: str, *, hide: tuple[str, ...]
    ) -> None:
        """Run ``action`` in one transaction on an admin connection; errors say ``what`` failed."""
        conninfo, who, params, admin_secrets = self._admin_who(s)
        hide = hide + admin_secrets
        found = _connect(conninfo, hide, connect_timeout=self._timeout, application_name=APPLICATION_NAME, **params)
        if isinstance(found, _Refused):
            raise InvalidInputError(
                f"could not connect to PostgreSQL as the admin {who} to {what}: {found.reason}",
                hint=f"set {s.admin_dsn_env} to a libpq connection string or URL of a role that may ALTER ROLE, "
                f"or give {s.admin_user} a password through PGPASSWORD or ~/.pgpass",
            )
        problem: tuple[str, str] | None = None
        with found as connection:
            try:
                with connection.transaction():
                    action(connection)
            except psycopg.errors.InsufficientPrivilege as exc:
                problem = (
                    f"the admin {who} may not {what}: {_first_line(exc, hide)}",
                    "the admin must be a superuser, or have CREATEROLE (and ADMIN OPTION on the role)",
                )
            except psycopg.errors.UndefinedObject as exc:
                problem = (
                    f"could not {what} at {s.where}: {_first_line(exc, hide)}",
                    f"create the role first (CREATE ROLE {s.user} LOGIN), or check the rotator's user",
                )
            except psycopg.Error as exc:
                problem = (f"could not {what} at {s.where}: {_first_line(exc, hide)}", _HINT)
        if problem is not None:
            raise InvalidInputError(problem[0], hint=problem[1])

    def _login(self, s: _Settings, user: str, password: str) -> psycopg.Connection[Any] | _Refused:
        return _connect(
            "",
            (password,),
            host=s.host,
            port=s.port,
            dbname=s.dbname,
            user=user,
            password=password,
            connect_timeout=self._timeout,
            application_name=APPLICATION_NAME,
        )

    def _expect_refused(self, s: _Settings, user: str, old: str, *, role_disabled: bool) -> None:
        """Raise unless a login as ``user`` with ``old`` is refused by the server."""
        found = self._login(s, user, old)
        if isinstance(found, psycopg.Connection):
            found.close()
            raise InvalidInputError(
                f"the old password of {user} still works at {s.where}",
                hint="the new password may not have been set, or pg_hba.conf does not ask for a password; "
                "retire runs again at the next scheduled run",
            )
        if found.challenged or role_disabled:
            return  # the server asked for the password and refused, or the role may no longer log in
        raise InvalidInputError(
            f"could not check that the old password of {user} no longer works at {s.where}: {found.reason}",
            hint="the server must be reachable; retire runs again at the next scheduled run",
        )
