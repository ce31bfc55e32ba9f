"""The ``postgresql`` rotator against a private PostgreSQL cluster that really checks passwords.

One cluster per module (``strongroom.testing.pg_cluster``); skipped when the server binaries
are missing, unless ``STRONGROOM_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from strongroom.errors import InvalidInputError, PathError
from strongroom.model import EnvRef, RevisionRef
from strongroom.rotation.engine import RotationEngine
from strongroom.rotation.postgresql import ADMIN_DSN_ENV, PostgresRotator, scram_sha256_verifier
from strongroom.rotation.rotators import Rotated, load_rotator
from strongroom.testing.pg_cluster import PostgresCluster, PostgresUnavailableError, find_postgres_bindir
from test_rotation_catalog import T0, Clock, clock, environ, make_service, service  # noqa: F401

REQUIRE_POSTGRES_ENV = "STRONGROOM_REQUIRE_POSTGRES"
ENV = EnvRef("acme", "prod")

#: Made by PostgreSQL 15 (``password_encryption = scram-sha-256``; ``CREATE ROLE ... PASSWORD``,
#: then ``SELECT rolpassword FROM pg_authid``): (password, stored verifier).
SERVER_VECTORS = [
    (
        "strongroom-vector-password",
        "SCRAM-SHA-256$4096:P57DIipKX8BNPWLJGZ7sMA==$JNhnnqujuZdROqMoLbAps9FMmekdRqj7tzTWuSWTLgU="
        ":73Tdb4RvW+PjkMjBP0gp52j2eKtdhKkQIba6SLH02k8=",
    ),
]


def canary(label: str) -> str:
    return f"CANARY{label}{secrets.token_hex(12)}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    try:
        started = PostgresCluster(find_postgres_bindir()).start()
    except PostgresUnavailableError as exc:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{exc}; {REQUIRE_POSTGRES_ENV}=1 requires a PostgreSQL server", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        started.stop()


def admin(cluster: PostgresCluster) -> psycopg.Connection[Any]:
    return psycopg.connect(cluster.socket_conninfo, autocommit=True)


@pytest.fixture
def old_password() -> str:
    return canary("OLD")


@pytest.fixture
def role(cluster: PostgresCluster, old_password: str) -> str:
    """A fresh login role whose password is ``old_password`` (set as a verifier: no plaintext in the log)."""
    name = f"app_{secrets.token_hex(4)}"
    with admin(cluster) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(scram_sha256_verifier(old_password))
            )
        )
    return name


@pytest.fixture
def rotator(cluster: PostgresCluster) -> PostgresRotator:
    return PostgresRotator(environ={ADMIN_DSN_ENV: cluster.admin_dsn})


def inputs_for(cluster: PostgresCluster, user: str, **more: Any) -> dict[str, Any]:
    return {"user": user, "host": cluster.host, "port": cluster.port, "procedure": {}, **more}


def can_login(cluster: PostgresCluster, user: str, password: str) -> bool:
    try:
        with psycopg.connect(
            host=cluster.host, port=cluster.port, user=user, password=password, dbname="postgres"
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def rotate_steps(rotator: PostgresRotator, inputs: dict[str, Any], current: str | None) -> tuple[str, dict[str, Any]]:
    """create, set and test as the engine runs them: (new value, the inputs set/test/retire get)."""
    made = rotator.create(current, inputs)
    made = made if isinstance(made, Rotated) else Rotated(made)
    with_memo = {**inputs, "memo": dict(made.memo)}
    rotator.set(made.value, with_memo)
    rotator.test(made.value, with_memo)
    return made.value, with_memo


def assert_clean(exc: BaseException, *hidden: str) -> None:
    """No secret in the message, the hint or the repr; psycopg's exception (it keeps the password) not attached."""
    text = f"{exc} {exc!r} {getattr(exc, 'hint', '')}"
    for secret in hidden:
        assert secret not in text
    assert exc.__cause__ is None and exc.__context__ is None


# --------------------------------------------------------------------------- the SCRAM verifier


@pytest.mark.parametrize(("password", "stored"), SERVER_VECTORS)
def test_verifier_matches_server_vector(password: str, stored: str) -> None:
    import base64

    head, _, _keys = stored.partition("$")[2].partition("$")
    iterations, _, salt = head.partition(":")
    assert scram_sha256_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations)) == stored


def test_verifier_matches_what_the_server_computes(cluster: PostgresCluster) -> None:
    import base64

    plaintext = canary("VECTOR")
    name = f"vec_{secrets.token_hex(4)}"
    with admin(cluster) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(plaintext)))
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()
    assert row is not None
    stored = str(row[0])
    scheme, _, rest = stored.partition("$")
    head, _, _keys = rest.partition("$")
    iterations, _, salt = head.partition(":")
    assert scheme == "SCRAM-SHA-256" and iterations == "4096" and len(base64.b64decode(salt)) == 16
    assert scram_sha256_verifier(plaintext, salt=base64.b64decode(salt), iterations=4096) == stored


def test_verifier_shape_and_fresh_salt() -> None:
    one, two = scram_sha256_verifier("same-password"), scram_sha256_verifier("same-password")
    assert one != two and one.startswith("SCRAM-SHA-256$4096:") and "same-password" not in one
    with pytest.raises(InvalidInputError):
        scram_sha256_verifier("pässword")
    with pytest.raises(InvalidInputError):
        scram_sha256_verifier("")


def test_server_accepts_a_login_with_the_client_side_verifier(cluster: PostgresCluster, role: str) -> None:
    password = canary("VERIFIER")
    verifier = scram_sha256_verifier(password)
    with admin(cluster) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    assert stored == (verifier,)  # kept as given, not hashed again
    assert can_login(cluster, role, password)
    assert not can_login(cluster, role, password + "x")


# --------------------------------------------------------------------------- single user


def test_single_rotation(cluster: PostgresCluster, rotator: PostgresRotator, role: str, old_password: str) -> None:
    inputs = inputs_for(cluster, role)
    new = rotator.create(old_password, {**inputs, "memo": {}})
    assert isinstance(new, str) and len(new) == 43 and new != old_password  # 32 bytes, URL-safe base64
    rotator.set(new, inputs)
    rotator.set(new, inputs)  # idempotent: repeated after a crash
    rotator.test(new, inputs)
    assert can_login(cluster, role, new) and not can_login(cluster, role, old_password)
    rotator.retire(old_password, inputs)
    rotator.retire(old_password, inputs)  # idempotent
    assert can_login(cluster, role, new)


def test_password_length_follows_bytes(cluster: PostgresCluster, rotator: PostgresRotator, role: str) -> None:
    new = rotator.create(None, inputs_for(cluster, role, bytes=48))
    assert isinstance(new, str) and len(new) == 64


def test_retire_refuses_when_the_old_password_still_works(
    cluster: PostgresCluster, rotator: PostgresRotator, role: str, old_password: str
) -> None:
    with pytest.raises(InvalidInputError, match="still works") as caught:
        rotator.retire(old_password, inputs_for(cluster, role))
    assert role in str(caught.value)
    assert_clean(caught.value, old_password)


def test_test_step_names_user_and_host_not_the_password(
    cluster: PostgresCluster, rotator: PostgresRotator, role: str
) -> None:
    wrong = canary("WRONG")
    with pytest.raises(InvalidInputError) as caught:
        rotator.test(wrong, inputs_for(cluster, role))
    message = str(caught.value)
    assert role in message and f"{cluster.host}:{cluster.port}" in message and "new password" in message
    assert_clean(caught.value, wrong)


def test_test_step_refuses_a_server_that_does_not_ask_for_a_password(
    cluster: PostgresCluster, rotator: PostgresRotator
) -> None:
    anything = canary("TRUST")
    inputs = {"user": cluster.superuser, "host": str(cluster.socket_dir), "port": cluster.port}
    with pytest.raises(InvalidInputError, match="without asking for a password") as caught:
        rotator.test(anything, inputs)
    assert_clean(caught.value, anything)


def test_set_of_a_missing_role(cluster: PostgresCluster, rotator: PostgresRotator) -> None:
    new = canary("NEW")
    with pytest.raises(InvalidInputError, match="does not exist") as caught:
        rotator.set(new, inputs_for(cluster, f"nobody_{secrets.token_hex(3)}"))
    assert "CREATE ROLE" in (caught.value.hint or "")
    assert_clean(caught.value, new, cluster.superuser_password)


# --------------------------------------------------------------------------- nothing leaks


def test_statement_log_never_holds_the_plaintext(
    cluster: PostgresCluster, rotator: PostgresRotator, role: str, old_password: str
) -> None:
    new = canary("LOGGED")
    inputs = inputs_for(cluster, role)
    rotator.set(new, inputs)
    rotator.test(new, inputs)
    rotator.retire(old_password, inputs)
    log = cluster.log_text()
    altered = [line for line in log.splitlines() if "ALTER ROLE" in line and f'"{role}"' in line]
    assert altered and all("PASSWORD 'SCRAM-SHA-256$4096:" in line for line in altered)  # the log is on
    assert new not in log and old_password not in log and cluster.superuser_password not in log


def test_nothing_logged_or_shown_holds_a_secret(
    cluster: PostgresCluster, rotator: PostgresRotator, role: str, old_password: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    inputs = inputs_for(cluster, role, strategy="alternate", userPath="db.user")
    new, with_memo = rotate_steps(rotator, inputs, old_password)
    rotator.retire(old_password, with_memo)
    made = rotator.create(new, with_memo)
    shown = f"{caplog.text} {rotator!r} {made!r} {cluster!r}"
    for secret in (new, old_password, made.value if isinstance(made, Rotated) else made, cluster.superuser_password):
        assert secret not in shown
    assert repr(rotator) == "PostgresRotator()"


def test_load_rotator_imports_psycopg_only_for_postgresql() -> None:
    code = (
        "import sys\n"
        "from strongroom.rotation.rotators import load_rotator\n"
        "load_rotator('random'); load_rotator('manual')\n"
        "print('psycopg' in sys.modules)\n"
        "print(type(load_rotator('postgresql')).__name__, 'psycopg' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "PostgresRotator", "True"]
    assert type(load_rotator("postgresql")).__name__ == "PostgresRotator"


# --------------------------------------------------------------------------- alternating users


def test_alternating_across_two_rotations(
    cluster: PostgresCluster, rotator: PostgresRotator, role: str, old_password: str
) -> None:
    clone = f"{role}_clone"
    inputs = inputs_for(cluster, role, strategy="alternate", userPath='pulumiConfig["postgresql:user"]')
    with admin(cluster) as conn:  # something of the role's own, which the clone must be able to use
        conn.execute(sql.SQL("CREATE TABLE {} (n int)").format(sql.Identifier(f"{role}_data")))
        conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(f"{role}_data"), sql.Identifier(role)))

    first = rotator.create(old_password, {**inputs, "memo": {}})
    assert isinstance(first, Rotated)
    assert first.extra == {'pulumiConfig["postgresql:user"]': clone}
    assert first.memo == {"user": clone, "previous_user": role}
    memo1 = {**inputs, "memo": dict(first.memo)}
    rotator.set(first.value, memo1)
    rotator.set(first.value, memo1)  # idempotent, the clone is made once
    rotator.test(first.value, memo1)
    assert can_login(cluster, role, old_password) and can_login(cluster, clone, first.value)  # grace: both work
    with psycopg.connect(
        host=cluster.host, port=cluster.port, user=clone, password=first.value, dbname="postgres"
    ) as conn:
        assert conn.execute("SELECT session_user, current_user").fetchone() == (clone, role)
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(sql.Identifier(f"{role}_data")))
    rotator.retire(old_password, memo1)
    rotator.retire(old_password, memo1)  # idempotent
    assert not can_login(cluster, role, old_password) and can_login(cluster, clone, first.value)

    second = rotator.create(first.value, memo1)
    assert isinstance(second, Rotated)
    assert second.extra == {'pulumiConfig["postgresql:user"]': role}
    assert second.memo == {"user": role, "previous_user": clone}
    memo2 = {**inputs, "memo": dict(second.memo)}
    rotator.set(second.value, memo2)
    rotator.test(second.value, memo2)
    assert can_login(cluster, clone, first.value) and can_login(cluster, role, second.value)  # grace: both work
    rotator.retire(first.value, memo2)
    assert not can_login(cluster, clone, first.value) and can_login(cluster, role, second.value)
    with admin(cluster) as conn:
        row = conn.execute("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (clone,)).fetchone()
    assert row == (False, None)


def test_alternate_steps_need_the_memo(cluster: PostgresCluster, rotator: PostgresRotator, role: str) -> None:
    new = canary("NOMEMO")
    inputs = inputs_for(cluster, role, strategy="alternate", userPath="db.user")
    for step in (rotator.set, rotator.test):
        with pytest.raises(InvalidInputError, match="memo") as caught:
            step(new, inputs)
        assert_clean(caught.value, new)


def test_single_after_alternate_refuses_to_rotate_the_unused_user(rotator: PostgresRotator) -> None:
    inputs = {"user": "app", "memo": {"user": "app_clone", "previous_user": "app"}}
    with pytest.raises(InvalidInputError, match="app_clone as the active user"):
        rotator.create("CANARYcurrent0123456789", inputs)


def test_alternate_retire_never_disables_the_active_user(
    cluster: PostgresCluster, rotator: PostgresRotator, role: str, old_password: str
) -> None:
    inputs = inputs_for(
        cluster, role, strategy="alternate", userPath="db.user", memo={"user": role, "previous_user": role}
    )
    with pytest.raises(InvalidInputError, match="both the active and the previous"):
        rotator.retire(old_password, inputs)
    assert can_login(cluster, role, old_password)


# --------------------------------------------------------------------------- inputs and the admin connection


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({}, "needs user"),
        ({"user": ""}, "user must be a non-empty string"),
        ({"user": "app", "strategy": "blue-green"}, "strategy must be single or alternate"),
        ({"user": "app", "strategy": "alternate"}, "needs userPath"),
        ({"user": "app", "userPath": "db.user"}, "only with strategy: alternate"),
        ({"user": "app", "port": "5432"}, "port must be a whole number"),
        ({"user": "app", "port": 70000}, "port must be a whole number"),
        ({"user": "app", "bytes": 8}, "bytes must be a whole number from 16 to 1024"),
        ({"user": "app", "adminDSNEnv": "X"}, 'did you mean "adminDsnEnv"'),
        ({"user": "app", "adminDsnEnv": "not a name"}, "name of an environment variable"),
        ({"user": "a" * 64}, "longer than 63 bytes"),
        ({"user": "a" * 60, "strategy": "alternate", "userPath": "db.user"}, "longer than 63 bytes"),
        ({"user": "pg_monitor"}, "reserves"),
    ],
)
def test_bad_inputs(inputs: dict[str, Any], expected: str) -> None:
    rotator = PostgresRotator(environ={})
    for step in ("create", "set", "test", "retire"):
        with pytest.raises(InvalidInputError, match=expected) as caught:
            if step == "create":
                rotator.create(None, inputs)
            else:
                getattr(rotator, step)("CANARYnotused0123456789", inputs)
        assert caught.value.hint
        assert "CANARYnotused" not in str(caught.value)


def test_bad_user_path() -> None:
    with pytest.raises(PathError):
        PostgresRotator(environ={}).create(None, {"user": "app", "strategy": "alternate", "userPath": "a..b"})


def test_admin_that_cannot_connect(cluster: PostgresCluster, role: str, old_password: str) -> None:
    wrong_admin = canary("ADMINPW")
    dsn = f"postgresql://{cluster.superuser}:{wrong_admin}@{cluster.host}:{cluster.port}/postgres"
    rotator = PostgresRotator(environ={ADMIN_DSN_ENV: dsn})
    new = canary("NEW")
    with pytest.raises(InvalidInputError, match="could not connect to PostgreSQL as the admin") as caught:
        rotator.set(new, inputs_for(cluster, role))
    assert ADMIN_DSN_ENV in str(caught.value) and "password authentication failed" in str(caught.value)
    assert_clean(caught.value, new, wrong_admin, dsn)
    assert can_login(cluster, role, old_password)


def test_admin_dsn_that_does_not_parse(cluster: PostgresCluster, role: str) -> None:
    dsn = "host=127.0.0.1 password=CANARYdsnsecret0123 what"
    with pytest.raises(InvalidInputError, match="not a libpq connection string") as caught:
        PostgresRotator(environ={ADMIN_DSN_ENV: dsn}).set(canary("NEW"), inputs_for(cluster, role))
    assert_clean(caught.value, "CANARYdsnsecret0123")


def test_named_admin_dsn_env_that_is_unset(cluster: PostgresCluster, role: str) -> None:
    with pytest.raises(InvalidInputError, match=r"PG_ROTATOR_ADMIN .* is not set"):
        PostgresRotator(environ={}).set(canary("NEW"), inputs_for(cluster, role, adminDsnEnv="PG_ROTATOR_ADMIN"))


def test_admin_dsn_from_a_named_variable_fills_in_host_and_port(
    cluster: PostgresCluster, role: str, old_password: str
) -> None:
    """A DSN with only the admin's credentials is completed with the rotator's host, port and dbname."""
    dsn = f"user={cluster.superuser} password={cluster.superuser_password}"
    rotator = PostgresRotator(environ={"PG_ROTATOR_ADMIN": dsn})
    inputs = inputs_for(cluster, role, adminDsnEnv="PG_ROTATOR_ADMIN")
    new, _ = rotate_steps(rotator, inputs, old_password)
    assert can_login(cluster, role, new)


def test_admin_fallback_uses_libpq_password(
    cluster: PostgresCluster, role: str, old_password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotator = PostgresRotator(environ={})  # no admin DSN: adminUser at host/port/dbname, PGPASSWORD from libpq
    inputs = inputs_for(cluster, role, adminUser=cluster.superuser)
    monkeypatch.setenv("PGPASSWORD", "CANARYwrongpgpassword")
    with pytest.raises(InvalidInputError, match=r"PGPASSWORD or ~/\.pgpass") as caught:
        rotator.set(canary("NEW"), inputs)
    assert_clean(caught.value, "CANARYwrongpgpassword")
    monkeypatch.setenv("PGPASSWORD", cluster.superuser_password)
    new, _ = rotate_steps(rotator, inputs, old_password)
    assert can_login(cluster, role, new) and not can_login(cluster, role, old_password)


def test_admin_without_the_right_to_alter_roles(cluster: PostgresCluster, role: str) -> None:
    weak, weak_password = f"weak_{secrets.token_hex(3)}", canary("WEAK")
    with admin(cluster) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(weak), sql.Literal(scram_sha256_verifier(weak_password))
            )
        )
    dsn = f"postgresql://{weak}:{weak_password}@{cluster.host}:{cluster.port}/postgres"
    new = canary("NEW")
    with pytest.raises(InvalidInputError, match="may not set the password") as caught:
        PostgresRotator(environ={ADMIN_DSN_ENV: dsn}).set(new, inputs_for(cluster, role))
    assert "CREATEROLE" in (caught.value.hint or "")
    assert_clean(caught.value, new, weak_password)


# --------------------------------------------------------------------------- through the engine


def definition(cluster: PostgresCluster, role: str, password: str, **more: str) -> str:
    extra = "".join(f", {key}: {value}" for key, value in more.items())
    return f"""values:
  db:
    user: {role}
    password: {{fn::secret: {password}}}
rotation:
  db.password:
    schedule: quarterly
    rotator: {{postgresql: {{user: {role}, host: {cluster.host}, port: {cluster.port}{extra}}}}}
"""


def read(svc, path: str) -> str:  # type: ignore[no-untyped-def]
    value = svc.read(RevisionRef(ENV), tuple(path.split(".")), show_secrets=True)
    return value if isinstance(value, str) else value.reveal()


def stored_text(svc) -> str:  # type: ignore[no-untyped-def]
    parts = [repr(r.event) for r in svc.store.list_audit()]
    parts += [
        svc.store.get_meta(f"{prefix}{ENV}:db.password") or "" for prefix in ("rotation:state:", "rotation:lock:")
    ]
    return "\n".join(parts)


def test_engine_single_end_to_end(
    cluster: PostgresCluster,
    rotator: PostgresRotator,
    role: str,
    old_password: str,
    service,  # noqa: F811
    clock,  # noqa: F811
) -> None:
    service.create_environment(ENV, definition(cluster, role, old_password))
    engine = RotationEngine(service, clock=clock, rotators={"postgresql": rotator})
    result = engine.rotate(ENV, "db.password")
    assert result.outcome == "done", result
    new = read(service, "db.password")
    assert new != old_password and can_login(cluster, role, new) and not can_login(cluster, role, old_password)
    clock.now = T0 + timedelta(days=2)
    engine.resume()  # the grace period is over: retire checks that the old password is refused
    assert (engine.state(ENV, "db.password") or {}).get("previous") is None
    stored = stored_text(service)
    assert new not in stored and old_password not in stored


def test_engine_alternate_end_to_end(
    cluster: PostgresCluster,
    rotator: PostgresRotator,
    role: str,
    old_password: str,
    service,  # noqa: F811
    clock,  # noqa: F811
) -> None:
    clone = f"{role}_clone"
    service.create_environment(ENV, definition(cluster, role, old_password, strategy="alternate", userPath="db.user"))
    engine = RotationEngine(service, clock=clock, rotators={"postgresql": rotator})

    assert engine.rotate(ENV, "db.password").outcome == "done"
    first = read(service, "db.password")
    assert read(service, "db.user") == clone and can_login(cluster, clone, first)
    assert can_login(cluster, role, old_password)  # grace: the previous user still works

    clock.now = T0 + timedelta(days=2)
    assert engine.rotate(ENV, "db.password").outcome == "done"  # retires the previous value first
    second = read(service, "db.user"), read(service, "db.password")
    assert second[0] == role and can_login(cluster, role, second[1])
    assert not can_login(cluster, role, old_password) and can_login(cluster, clone, first)

    clock.now = T0 + timedelta(days=4)
    engine.resume()
    assert not can_login(cluster, clone, first) and can_login(cluster, role, second[1])
    stored = stored_text(service)
    assert all(secret not in stored for secret in (old_password, first, second[1]))


@pytest.mark.parametrize("point", ["after:create", "after:set", "before:test", "after:finish"])
def test_engine_crash_then_resume(
    cluster: PostgresCluster,
    rotator: PostgresRotator,
    role: str,
    old_password: str,
    make_service,  # noqa: F811
    service,  # noqa: F811
    clock,  # noqa: F811
    point: str,
) -> None:
    class Crash(BaseException):
        pass

    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    service.create_environment(ENV, definition(cluster, role, old_password, strategy="alternate", userPath="db.user"))
    with pytest.raises(Crash):
        RotationEngine(service, clock=clock, rotators={"postgresql": rotator}, observe=crash).rotate(ENV, "db.password")
    fresh = make_service()
    [result] = RotationEngine(fresh, clock=clock, rotators={"postgresql": rotator}).resume()
    assert result.outcome == "done", result
    user, password = read(fresh, "db.user"), read(fresh, "db.password")
    assert user == f"{role}_clone" and can_login(cluster, user, password)
