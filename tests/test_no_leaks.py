"""Canary secrets never leak: not to the database file, the terminal, reprs, exceptions, logs or temp files."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sys
import tempfile
import textwrap
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.cli.context import AppContext
from strongroom.crypto.format import decrypt_secret, new_data_key
from strongroom.crypto.providers import EnvironmentKeyProvider, Keyring, MasterKey
from strongroom.errors import ConflictError, DecryptionError, KeyUnavailableError, PathError, StrongroomError
from strongroom.model import EnvRef, RevisionRef, Secret
from strongroom.service import Service

E = "leak/env"
ENV = EnvRef("leak", "env")


@pytest.fixture
def master_key(cli_env) -> str:
    """The test master key (base64) every CLI run here uses."""
    return cli_env["STRONGROOM_MASTER_KEY"]


@pytest.fixture
def master_key_bytes(master_key) -> bytes:
    return base64.b64decode(master_key)


def canary(prefix: str = "CANARY-") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def key_forms(raw: bytes) -> list[bytes]:
    """Ways a key's bytes could show up in a file."""
    b64 = base64.b64encode(raw)
    return [raw, b64, base64.urlsafe_b64encode(raw), raw.hex().encode(), raw.hex().upper().encode(), b64.rstrip(b"=")]


def store_files(home: Path) -> dict[str, bytes]:
    """The raw bytes of the SQLite database and its -wal / -shm / -journal files, whichever exist."""
    return {p.name: p.read_bytes() for p in home.iterdir() if p.name.startswith("store.db")}


def assert_absent(haystack: str | bytes, needles: list[str], where: str) -> None:
    for needle in needles:
        probe = needle.encode("utf-8") if isinstance(haystack, bytes) else needle
        assert probe not in haystack, f"{needle!r} leaked into {where}"


def exception_text(exc: BaseException) -> str:
    """Everything an exception could show: str, repr, args, hint, diagnostics, chained causes, the traceback."""
    parts = [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    parts.append(str(getattr(exc, "hint", "")))
    parts.extend(str(d) for d in getattr(exc, "diagnostics", ()))
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None:
            parts.append(exception_text(linked))
    return "\n".join(parts)


def edit_dirs() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("strongroom-edit-")}


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- a full CLI workflow, recorded


class Recorder:
    """Runs CLI commands and keeps every result, noting which ones are allowed to reveal secrets."""

    def __init__(self, run_cli) -> None:
        self._run = run_cli
        self.results: list[tuple[tuple[str, ...], object, bool]] = []

    def __call__(self, *args: str, reveals: bool = False, expect: int | None = 0, **kwargs):
        result = self._run(*args, **kwargs)
        if expect is not None:
            assert result.exit_code == expect, (args, result.stdout, result.stderr)
        self.results.append((args, result, reveals))
        return result

    def assert_quiet(self, secrets: list[str]) -> int:
        """No secret in the stdout or stderr of any command that may not reveal; returns how many were checked."""
        checked = 0
        for args, result, reveals in self.results:
            if reveals:
                continue
            assert_absent(result.stdout, secrets, f"stdout of {args}")  # type: ignore[attr-defined]
            assert_absent(result.stderr, secrets, f"stderr of {args}")  # type: ignore[attr-defined]
            checked += 1
        return checked


@pytest.fixture
def workflow(run_cli, cli_env, tmp_path) -> Iterator[tuple[Recorder, dict[str, str], Path]]:
    """Every command of the CLI, with secrets entered every way there is. Yields (recorder, secrets, home)."""
    home = Path(cli_env["STRONGROOM_HOME"])
    secrets = {
        "arg": canary(),
        "stdin": canary(),
        "file": canary(),
        "init_file": canary(),
        "init_stdin": canary(),
        "edit_file": canary(),
        "editor": canary(),
        "refused": canary("ghp_CANARY"),
        "refused_token": canary("CANARYTOKEN"),
    }
    run = Recorder(run_cli)
    run("init")
    (tmp_path / "init.yaml").write_text(
        f"# comment\nvalues:\n  pulumiConfig:\n    dns:\n      fn::secret: {secrets['init_file']}\n    port: 587\n"
    )
    run("env", "init", E, "-f", str(tmp_path / "init.yaml"))
    run("env", "init", "leak/stdin", "-f", "-", input=f"values:\n  s:\n    fn::secret: {secrets['init_stdin']}\n")
    run("env", "set", E, 'pulumiConfig."postgresql:password"', secrets["arg"], "--secret")
    run("env", "set", E, "pulumiConfig.fromStdin", "--secret", "-f", "-", input=secrets["stdin"])
    (tmp_path / "value.txt").write_text(secrets["file"])
    run("env", "set", E, "pulumiConfig.fromFile", "--secret", "-f", str(tmp_path / "value.txt"))
    run("env", "set", E, "pulumiConfig.plain", "visible")
    # Refused credential-looking plaintext: the error must not echo it.
    run("env", "set", E, "pulumiConfig.github", secrets["refused"], expect=1)
    run("env", "set", E, "pulumiConfig.authToken", secrets["refused_token"], expect=1)
    run("env", "tag", E, "before-edit")
    # Errors around secrets.
    run("env", "set", E, 'pulumiConfig."postgresql:password".below', "1", expect=1)
    run("env", "get", E, 'pulumiConfig."postgresql:password".below', "--show-secrets", expect=1)
    run("env", "set", E, "pulumiConfig.port.x", "1", expect=1)
    wrong = {"STRONGROOM_MASTER_KEY": base64.b64encode(b"W" * 32).decode()}
    run("env", "get", E, "--show-secrets", env=wrong, expect=1)
    run("env", "set", E, "x", secrets["arg"], "--secret", env=wrong, expect=1)
    # Reads, masked and revealed.
    run("env", "get", E)
    run("env", "get", E, "--format", "json")
    run("env", "get", E, 'pulumiConfig."postgresql:password"')
    run("env", "get", E, "--show-secrets", reveals=True)
    run("env", "get", E, "--show-secrets", "--format", "json", reveals=True)
    run("env", "get", "leak/stdin", "--show-secrets", reveals=True)
    # Replacing the definition from a file and from $EDITOR.
    current = run("env", "get", E, "--show-secrets", "--format", "json", reveals=True)
    assert json.loads(current.stdout)["pulumiConfig"]["postgresql:password"] == secrets["arg"]
    (tmp_path / "edit.yaml").write_text(
        "values:\n  pulumiConfig:\n"
        f"    edited:\n      fn::secret: {secrets['edit_file']}\n"
        f"    dns:\n      fn::secret: {secrets['init_file']}\n"
    )
    run("env", "edit", E, "-f", str(tmp_path / "edit.yaml"))
    by_editor = secrets["editor"]
    editor = write_script(
        tmp_path / "editor.py",
        f"""
        import sys
        text = open(sys.argv[1], encoding="utf-8").read()
        open(sys.argv[1], "w", encoding="utf-8").write(
            text + "    byEditor:\\n      fn::secret: {by_editor}\\n"
        )
        """,
    )
    run("env", "edit", E, env={"EDITOR": str(editor)})
    edited = run("env", "get", E, "--show-secrets", "--format", "json", reveals=True)
    values = json.loads(edited.stdout)["pulumiConfig"]
    assert values["byEditor"] == secrets["editor"] and values["edited"] == secrets["edit_file"]
    # History, diffs, tags, rollback, clone, listing, keys.
    run("env", "history", E)
    run("env", "diff", f"{E}@before-edit")
    run("env", "diff", f"{E}@1", E)
    run("env", "diff", f"{E}@before-edit", "--show-secrets", reveals=True)
    run("env", "tag", E)
    run("env", "rollback", f"{E}@before-edit")
    run("env", "clone", E, "leak/copy", "--preserve-history")
    run("env", "diff", E, "leak/copy")
    run("env", "ls", "-l")
    run("env", "rm", E, "pulumiConfig.plain")
    run("env", "rm", "leak/stdin", "--yes")
    run("key", "show")
    new_key = base64.b64encode(b"N" * 32).decode()
    run("key", "rotate", env={"STRONGROOM_NEW_MASTER_KEY": new_key})
    run("env", "get", E, env={"STRONGROOM_MASTER_KEY": new_key})
    revealed = run("env", "get", "leak/copy", "--show-secrets", env={"STRONGROOM_MASTER_KEY": new_key}, reveals=True)
    assert secrets["arg"] in revealed.stdout  # the copy holds the rolled-back content
    yield run, secrets, home


def test_cli_output_never_shows_secrets_unless_asked(workflow):
    run, secrets, _home = workflow
    checked = run.assert_quiet(list(secrets.values()))
    assert checked >= 30
    revealing = [r for _a, r, reveals in run.results if reveals]
    assert any(secrets["arg"] in r.stdout for r in revealing)  # the check above is not vacuous


def test_database_files_hold_no_plaintext_and_no_master_key(workflow, master_key_bytes):
    _run, secrets, home = workflow
    files = store_files(home)
    assert "store.db" in files and len(files["store.db"]) > 0
    for name, data in files.items():
        assert_absent(data, list(secrets.values()), name)
        for form in key_forms(master_key_bytes) + key_forms(b"N" * 32):
            assert form not in data, f"a master key form leaked into {name}"
    assert b"fn::secret" in files["store.db"] or any(b"ciphertext" in d for d in files.values())


def test_key_file_master_key_never_reaches_the_database(run_cli, cli_env):
    home = Path(cli_env["STRONGROOM_HOME"])
    run = Recorder(run_cli)
    keyfile = {"STRONGROOM_MASTER_KEY": None}
    run("init", env=keyfile)
    secret = canary()
    run("env", "init", E, "-f", "-", input=f"values:\n  a:\n    fn::secret: {secret}\n", env=keyfile)
    run("env", "set", E, "b", secret, "--secret", env=keyfile)
    run("env", "clone", E, "leak/copy", env=keyfile)
    old = [base64.b64decode(k["key"]) for k in json.loads((home / "key").read_text())["keys"]]
    run("key", "rotate", env=keyfile)
    new = [base64.b64decode(k["key"]) for k in json.loads((home / "key").read_text())["keys"]]
    assert old and new and old != new
    run.assert_quiet([secret])
    outputs = "".join(r.output for _a, r, _x in run.results)
    for name, data in store_files(home).items():
        assert_absent(data, [secret], name)
        for raw in old + new:
            for form in key_forms(raw):
                assert form not in data, f"a master key form leaked into {name}"
                assert form.decode("latin-1") not in outputs


def test_no_secret_in_logs(run_cli, caplog, master_key_bytes):
    caplog.set_level(logging.DEBUG)
    secret = canary()
    run = Recorder(run_cli)
    run("init")
    run("env", "init", E, "-f", "-", input=f"values:\n  a:\n    fn::secret: {secret}\n")
    run("env", "set", E, "b", secret, "--secret")
    run("env", "get", E, "--show-secrets", reveals=True)
    run("env", "diff", f"{E}@1", "--show-secrets", reveals=True)
    run("env", "clone", E, "leak/copy")
    run("key", "rotate", env={"STRONGROOM_NEW_MASTER_KEY": base64.b64encode(b"N" * 32).decode()})
    assert caplog.records, "nothing was captured: the check below would be vacuous"
    logged = caplog.text + "\n".join(f"{r.msg!r} {r.args!r}" for r in caplog.records)
    assert secret not in logged
    for form in key_forms(master_key_bytes):
        assert form.decode("latin-1") not in logged


# --------------------------------------------------------------------------- the service API in memory


@pytest.fixture
def service(tmp_path, master_key) -> Iterator[Service]:
    environ = {"STRONGROOM_HOME": str(tmp_path / "home"), "STRONGROOM_MASTER_KEY": master_key}
    AppContext(environ).open_store(create=True).close()
    app = AppContext(environ)
    svc = app.service()
    svc.initialise_keys()
    svc.create_environment(ENV)
    yield svc
    app.close()


def test_wal_and_database_hold_no_plaintext_while_the_connection_is_open(service, tmp_path, master_key_bytes):
    secrets = [canary() for _ in range(5)]
    for i, secret in enumerate(secrets):
        service.set_value(ENV, ("s", f"k{i}"), secret, secret=True)
    service.replace_definition(ENV, f"values:\n  t:\n    fn::secret: {secrets[0]}\n")
    files = store_files(tmp_path / "home")
    assert "store.db-wal" in files, "expected a WAL file while the store is open (journal_mode=WAL)"
    assert b"ciphertext" in files["store.db-wal"]
    for name, data in files.items():
        assert_absent(data, secrets, name)
        for form in key_forms(master_key_bytes):
            assert form not in data


def test_reprs_never_show_secrets_or_keys(service, master_key, master_key_bytes):
    secret = canary()
    record = service.set_value(ENV, ("s",), secret, secret=True)
    revealed = service.read(RevisionRef(ENV), show_secrets=True)
    assert revealed["s"].reveal() == secret
    keyring = service.keyring()
    master = keyring.primary
    objects = [
        service,
        service.store,
        record,
        service.store.get_revision(ENV),
        service.store.get_environment(ENV),
        revealed["s"],
        Secret(secret),
        revealed,
        master,
        keyring,
        EnvironmentKeyProvider(master_key),
        service.diff(RevisionRef(ENV, 1), RevisionRef(ENV), show_secrets=True),
        service.history(ENV),
    ]
    texts = [f"{obj!r}\n{obj!s}" for obj in objects]
    for text in texts:
        assert secret not in text
        for form in key_forms(master_key_bytes):
            assert form.decode("latin-1") not in text
    assert str(Secret(secret)) == repr(Secret(secret)) == "[secret]"
    assert f"{Secret(secret)}" == "[secret]" and "%s" % Secret(secret) == "[secret]"  # noqa: UP031


def test_master_key_and_keyring_cannot_be_pickled_or_shown(master_key_bytes):
    import pickle

    key = MasterKey(master_key_bytes)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    ring = Keyring([key])
    for text in (repr(key), str(key), repr(ring), str(ring)):
        for form in key_forms(master_key_bytes):
            assert form.decode("latin-1") not in text


def _raised(fn) -> StrongroomError:
    with pytest.raises(StrongroomError) as info:
        fn()
    return info.value


def test_exceptions_never_carry_secrets(service, tmp_path, master_key):
    secret = canary()
    service.set_value(ENV, ("s",), secret, secret=True)
    service.set_value(ENV, ("plain",), 1)
    token = service.store.get_revision(ENV).definition.split("ciphertext: ")[1].split()[0]

    errors: list[StrongroomError] = [
        _raised(lambda: service.set_value(ENV, ("s", "below"), 1)),
        _raised(lambda: service.read(RevisionRef(ENV), ("s", "below"), show_secrets=True)),
        _raised(lambda: service.set_value(ENV, ("plain", "x"), secret, secret=True)),
        _raised(lambda: service.set_value(ENV, ("token",), "ghp_" + secret)),
        _raised(lambda: service.set_value(ENV, ("s",), secret + "x" * 300_000, secret=True)),
        _raised(lambda: decrypt_secret(new_data_key(), ENV, token)),  # a wrong data key
        _raised(lambda: decrypt_secret(new_data_key(), EnvRef("other", "env"), token)),
        _raised(lambda: service.replace_definition(ENV, f"values:\n  s:\n    fn::secret: {secret}\n  bad: [\n")),
        _raised(lambda: service.replace_definition(ENV, f"values:\n  s:\n    fn::secret: {secret}\n    x: 1\n")),
    ]
    # Wrong master key.
    wrong_key = base64.b64encode(b"W" * 32).decode()
    other = AppContext({"STRONGROOM_HOME": str(tmp_path / "home"), "STRONGROOM_MASTER_KEY": wrong_key})
    try:
        errors.append(_raised(lambda: other.service().read(RevisionRef(ENV), show_secrets=True)))
    finally:
        other.close()
    # A conflict whose losing write carried the secret.
    base = service.store.get_environment(ENV).latest_revision
    service.set_value(ENV, ("moved",), 1)
    stale = f"values:\n  s:\n    fn::secret: {secret}\n"
    errors.append(_raised(lambda: service.replace_definition(ENV, stale, expected_latest=base)))

    kinds = {type(e) for e in errors}
    assert {PathError, DecryptionError, KeyUnavailableError, ConflictError} <= kinds
    for exc in errors:
        text = exception_text(exc)
        assert secret not in text, f"{type(exc).__name__} leaked: {text}"
        assert token not in text
        assert master_key not in text


@pytest.mark.parametrize(
    "template",
    [
        "values:\n  s:\n    fn::secret: {a}\n    fn::secret: {b}\n",
        "values:\n  s:\n    fn::secret: {a}\n  s:\n    fn::secret: {b}\n",
    ],
)
def test_duplicate_key_errors_do_not_quote_secrets(run_cli, template):
    a, b = canary(), canary()
    assert run_cli("init").exit_code == 0
    result = run_cli("env", "init", E, "-f", "-", input=template.format(a=a, b=b))
    assert result.exit_code == 1
    assert "duplicate key" in result.stderr
    assert_absent(result.stderr, [a, b], "stderr")


# --------------------------------------------------------------------------- temp files of `env edit`


def test_env_edit_leaves_no_temp_files(run_cli, tmp_path):
    secret = canary()
    seen = tmp_path / "seen.json"
    editor = write_script(
        tmp_path / "editor.py",
        f"""
        import json, os, stat, sys
        path = sys.argv[1]
        mode = stat.S_IMODE(os.stat(path).st_mode)
        dir_mode = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        json.dump({{"path": path, "mode": mode, "dir_mode": dir_mode}}, open({str(seen)!r}, "w"))
        open(path, "a", encoding="utf-8").write("  s:\\n    fn::secret: {secret}\\n")
        """,
    )
    assert run_cli("init").exit_code == 0
    assert run_cli("env", "init", E, "-f", "-", input="values:\n  a: 1\n").exit_code == 0
    before = edit_dirs()
    result = run_cli("env", "edit", E, env={"EDITOR": str(editor)})
    assert result.exit_code == 0, result.stderr
    info = json.loads(seen.read_text())
    assert Path(info["path"]).parent.name.startswith("strongroom-edit-")
    assert info["mode"] == 0o600 and info["dir_mode"] == 0o700
    assert not Path(info["path"]).exists() and not Path(info["path"]).parent.exists()
    assert edit_dirs() == before
    # The same when the editor fails, and when the edited text is invalid.
    failing = write_script(tmp_path / "failing.py", "import sys\nsys.exit(1)\n")
    assert run_cli("env", "edit", E, env={"EDITOR": str(failing)}).exit_code == 2
    broken = write_script(tmp_path / "broken.py", f"import sys\nopen(sys.argv[1], 'w').write('values: [{secret}')\n")
    result = run_cli("env", "edit", E, env={"EDITOR": str(broken)})
    assert result.exit_code == 1 and secret not in result.stderr
    assert edit_dirs() == before


def test_env_edit_cleans_up_editor_backup_files(run_cli, tmp_path):
    """Editors that keep backups (definition.yaml~) must not make the temp folder outlive the edit."""
    secret = canary()
    editor = write_script(
        tmp_path / "backup_editor.py",
        f"""
        import shutil, sys
        path = sys.argv[1]
        open(path, "w", encoding="utf-8").write("values:\\n  s:\\n    fn::secret: {secret}\\n")
        shutil.copy(path, path + "~")  # as editors that keep backups do
        open(path, "w", encoding="utf-8").write("values:\\n  s:\\n    fn::secret: {secret}-2\\n")
        """,
    )
    assert run_cli("init").exit_code == 0
    assert run_cli("env", "init", E).exit_code == 0
    before = edit_dirs()
    try:
        result = run_cli("env", "edit", E, env={"EDITOR": str(editor)})
    finally:
        left = edit_dirs() - before
        for name in left:  # never leave the canary in the shared temp dir, even when this test fails
            shutil.rmtree(Path(tempfile.gettempdir()) / name, ignore_errors=True)
    assert not left, "env edit left its temp folder (with the edited text) behind"
    assert result.exit_code == 0, result.stderr
    assert secret not in result.output
