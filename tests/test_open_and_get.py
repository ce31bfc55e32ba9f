"""``env get`` (evaluated, masked, with where each value is defined) and ``env open`` (plaintext),
their formats, who may open what, and how definition errors are reported."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import textwrap
import uuid

import pytest

from strongroom.access import Principal
from strongroom.cli.context import AppContext
from strongroom.errors import DefinitionError, PermissionDeniedError
from strongroom.model import EnvRef, RevisionRef
from strongroom.service import Service

MASK = "[secret]"


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def ok(result):
    """The command succeeded, and said nothing that looks like a failure."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.output
    assert not result.stderr.startswith("error:")
    return result


def failed(result, *fragments: str, code: int = 1):
    """A clean user error: exit ``code``, an ``error:`` line first on stderr naming what is wrong."""
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"
    assert result.stdout == ""
    return result.stderr


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of the first ``needle`` in ``text``."""
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


# --------------------------------------------------------------------------- fixtures

BASE_PW = canary()
TOP_SECRET = canary()
BASE = textwrap.dedent(
    f"""\
    values:
      db:
        host: db.internal
        port: 5432
        password:
          fn::secret: {BASE_PW}
      region: eu-west
    """
)
TOP = textwrap.dedent(
    f"""\
    imports:
      - proj/base
    values:
      db:
        user: app
        port: 6543
      apiKey:
        fn::secret: {TOP_SECRET}
      url: postgres://${{db.user}}:${{db.password}}@${{db.host}}:${{db.port}}/app
      hostref: ${{db.host}}
      environmentVariables:
        DB_HOST: ${{db.host}}
        DB_PORT: ${{db.port}}
        DB_PASSWORD: ${{db.password}}
        API_KEY: ${{apiKey}}
    """
)


@pytest.fixture
def run(run_cli):
    ok(run_cli("init"))
    ok(run_cli("env", "init", "proj/base", "-f", "-", input=BASE))
    ok(run_cli("env", "init", "proj/top", "-f", "-", input=TOP))
    return run_cli


# --------------------------------------------------------------------------- env get


def test_get_shows_evaluated_values_and_where_each_is_defined(run):
    out = ok(run("env", "get", "proj/top")).stdout
    assert BASE_PW not in out and TOP_SECRET not in out
    # Positions are in the stored definitions (secrets as {ciphertext: ...}), as `--definition` shows them.
    stored = {env: ok(run("env", "get", env, "--definition")).stdout for env in ("proj/base", "proj/top")}

    def where(env: str, needle: str, within: str | None = None) -> str:
        """Where ``needle`` is in ``env``'s stored text (the first one inside the first ``within``)."""
        text = stored[env]
        start = text.index(within) if within else 0
        line, column = position(text[start:], needle)
        first_line, first_column = position(text, within) if within else (1, 1)
        return f"{env}:{first_line + line - 1}:{column + (first_column - 1 if line == 1 else 0)}"

    lines = out.splitlines()

    def line_of(prefix: str) -> str:
        found = [ln for ln in lines if ln.lstrip().startswith(prefix)]
        assert len(found) == 1, (prefix, out)
        return found[0]

    # An imported value points at the import; an own value (and an override) at the importer.
    assert line_of("host:") == f"  host: db.internal  # {where('proj/base', 'db.internal')}"
    assert line_of("password:") == f"  password: {MASK}  # {where('proj/base', 'fn::secret')}"
    assert line_of("region:") == f"region: eu-west  # {where('proj/base', 'eu-west')}"
    assert line_of("user:") == f"  user: app  # {where('proj/top', 'app', 'user:')}"
    assert line_of("port:") == f"  port: 6543  # {where('proj/top', '6543')}"
    assert line_of("apiKey:") == f"apiKey: {MASK}  # {where('proj/top', 'fn::secret', 'apiKey:')}"
    # A reference is resolved, and is defined where the reference is written.
    assert line_of("hostref:") == f"hostref: db.internal  # {where('proj/top', '${db.host}', 'hostref:')}"
    assert line_of("url:") == f"url: {MASK}  # {where('proj/top', 'postgres://')}"  # computed from a secret
    assert line_of("DB_PORT:") == f"  DB_PORT: 6543  # {where('proj/top', '${db.port}', 'DB_PORT:')}"
    # The region line comes after the encrypted password, so base's stored text is not the typed text.
    assert where("proj/base", "eu-west") != "proj/base:{}:{}".format(*position(BASE, "eu-west"))


def test_get_with_show_secrets_resolves_references_through_the_import(run):
    out = json.loads(ok(run("env", "get", "proj/top", "--show-secrets", "--format", "json")).stdout)
    assert out["url"] == f"postgres://app:{BASE_PW}@db.internal:6543/app"
    assert out["db"] == {"host": "db.internal", "port": 6543, "password": BASE_PW, "user": "app"}
    assert out["environmentVariables"]["DB_PORT"] == 6543  # the value; the projection makes it text


def test_get_format_json_is_the_values_only_with_secrets_masked(run):
    result = ok(run("env", "get", "proj/top", "--format", "json"))
    assert json.loads(result.stdout) == {
        "db": {"host": "db.internal", "port": 6543, "password": MASK, "user": "app"},
        "region": "eu-west",
        "apiKey": MASK,
        "url": MASK,
        "hostref": "db.internal",
        "environmentVariables": {"DB_HOST": "db.internal", "DB_PORT": 6543, "DB_PASSWORD": MASK, "API_KEY": MASK},
    }


@pytest.mark.parametrize("fmt", ["json", "yaml", "dotenv", "shell", "string"])
def test_get_value_prints_only_the_value_with_secrets_masked(run, fmt):
    result = ok(run("env", "get", "proj/top", "--value", fmt))
    out = result.stdout
    assert BASE_PW not in out and TOP_SECRET not in out
    assert "#" not in out  # no "where defined" comments
    assert result.stderr == ""
    if fmt == "json":
        assert json.loads(out)["db"]["password"] == MASK
    elif fmt == "yaml":
        from ruamel.yaml import YAML

        data = YAML(typ="safe", pure=True).load(out)
        assert data["hostref"] == "db.internal" and data["db"]["port"] == 6543
    elif fmt == "dotenv":
        assert out == (f'DB_HOST="db.internal"\nDB_PORT="6543"\nDB_PASSWORD="{MASK}"\nAPI_KEY="{MASK}"\n')
    elif fmt == "shell":
        assert out.splitlines() == [
            "export DB_HOST='db.internal'",
            "export DB_PORT='6543'",
            f"export DB_PASSWORD='{MASK}'",
            f"export API_KEY='{MASK}'",
        ]
    else:
        assert json.loads(out)["apiKey"] == MASK  # a whole object prints as compact JSON
        assert out.count("\n") == 1


def test_get_value_of_a_path(run):
    assert ok(run("env", "get", "proj/top", "db.host", "--value", "string")).stdout == "db.internal\n"
    assert ok(run("env", "get", "proj/top", "db.port", "--value", "json")).stdout == "6543\n"
    assert ok(run("env", "get", "proj/top", "db.password", "--value", "string")).stdout == f"{MASK}\n"
    assert ok(run("env", "get", "proj/top", "url", "--value", "json")).stdout == f'"{MASK}"\n'
    shown = ok(run("env", "get", "proj/top", "url", "--value", "string", "--show-secrets")).stdout
    assert shown == f"postgres://app:{BASE_PW}@db.internal:6543/app\n"


def test_get_definition_is_ciphertext_unless_show_secrets(run):
    stored = ok(run("env", "get", "proj/top", "--definition")).stdout
    assert TOP_SECRET not in stored
    assert "ciphertext:" in stored and "fn::secret:" in stored
    assert "${db.password}" in stored  # the definition, not the evaluated values
    shown = ok(run("env", "get", "proj/top", "--definition", "--show-secrets")).stdout
    assert f"fn::secret: {TOP_SECRET}" in shown
    assert "ciphertext" not in shown
    assert BASE_PW not in shown  # the definition of proj/top only, not its import


# --------------------------------------------------------------------------- env open


def test_open_json_has_plaintext(run):
    out = json.loads(ok(run("env", "open", "proj/top")).stdout)
    assert out["db"]["password"] == BASE_PW
    assert out["apiKey"] == TOP_SECRET
    assert out["url"] == f"postgres://app:{BASE_PW}@db.internal:6543/app"


def test_open_yaml_reads_back_as_the_json(run):
    from ruamel.yaml import YAML

    as_json = json.loads(ok(run("env", "open", "proj/top", "--format", "json")).stdout)
    as_yaml = YAML(typ="safe", pure=True).load(ok(run("env", "open", "proj/top", "--format", "yaml")).stdout)
    assert as_yaml == as_json


def test_open_string_of_a_path(run):
    assert ok(run("env", "open", "proj/top", "db.password", "--format", "string")).stdout == f"{BASE_PW}\n"
    assert ok(run("env", "open", "proj/top", "db.port", "--format", "string")).stdout == "6543\n"
    assert ok(run("env", "open", "proj/top", "db", "--format", "string")).stdout == (
        json.dumps({"host": "db.internal", "port": 6543, "password": BASE_PW, "user": "app"}, separators=(",", ":"))
        + "\n"
    )


def test_open_dotenv_or_shell_with_a_path_is_a_usage_error(run):
    failed(run("env", "open", "proj/top", "db", "--format", "dotenv"), "takes no PATH", code=2)


TRICKY = {
    "DQUOTE": 'say "hi"',
    "BACKSLASH": "C:\\path\\to\\n-not-a-newline\\",
    "DOLLAR": "cost $5 and $HOME and ${NOT_A_REF} and $(id)",
    "NEWLINES": "line one\nline two\r\nthree\tcol\n",
    "SQUOTE": "it's a 'quoted' word",
    "BACKTICK": "run `id` now",
    "SPACES": "  leading and trailing  ",
    "MIXED": "a\"b'c\\d$e`f\ng",
    "UNICODE": "ünïcødé ✓ \u00a0nbsp",
    "EMPTY": "",
}


def _yaml_string(value: str) -> str:
    """``value`` as a YAML double-quoted scalar in a definition (``$`` doubled: ``$$`` is a literal ``$``)."""
    return json.dumps(value.replace("$", "$$"), ensure_ascii=False)


@pytest.fixture
def tricky(run):
    secret_value = f"{canary()} \"q\" 's' $x `y` \\z\nnext"
    # fn::secret takes a literal: no interpolation, so no $$ there.
    sec = json.dumps(secret_value)
    lines = ["values:", "  sec:", f"    fn::secret: {sec}", "  environmentVariables:"]
    lines += [f"    {name}: {_yaml_string(value)}" for name, value in TRICKY.items()]
    lines.append("    SECRET_VALUE: ${sec}")
    ok(run("env", "init", "proj/tricky", "-f", "-", input="\n".join(lines) + "\n"))
    return {**TRICKY, "SECRET_VALUE": secret_value}


_DOTENV_LINE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_DOTENV_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def read_dotenv(text: str) -> dict[str, str]:
    """A strict reader of the dotenv Strongroom documents: ``K="v"`` lines, escapes \\\\ \\" \\n \\r \\t."""
    out: dict[str, str] = {}
    assert text.endswith("\n") or text == ""
    for line in text.split("\n")[:-1]:
        single = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)='([^'\\\n]*)'", line)
        if single:  # single-quoted: literal (used for values with a $, no quote, backslash or newline)
            out[single.group(1)] = single.group(2)
            continue
        match = _DOTENV_LINE.fullmatch(line)
        assert match, f"not a dotenv line: {line!r}"
        value, i, raw = [], 0, match.group(2)
        while i < len(raw):
            if raw[i] == "\\":
                assert raw[i + 1] in _DOTENV_ESCAPES, f"undocumented escape in {line!r}"
                value.append(_DOTENV_ESCAPES[raw[i + 1]])
                i += 2
            else:
                value.append(raw[i])
                i += 1
        out[match.group(1)] = "".join(value)
    return out


def test_open_dotenv_escapes_round_trip(run, tricky):
    out = ok(run("env", "open", "proj/tricky", "--format", "dotenv")).stdout
    assert read_dotenv(out) == tricky
    assert len(out.splitlines()) == len(tricky)  # one line per variable: newlines are escaped


def test_open_shell_is_byte_exact_in_a_posix_shell(run, tricky, tmp_path):
    script = tmp_path / "vars.sh"
    # stdout_bytes: click's Result.stdout turns \r\n into \n.
    script.write_bytes(ok(run("env", "open", "proj/tricky", "--format", "shell")).stdout_bytes)
    for name, expected in tricky.items():
        done = subprocess.run(
            ["sh", "-c", f'eval "$(cat "$1")"; printf %s "${name}"', "sh", str(script)],
            capture_output=True,
            check=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"},
        )
        assert done.stdout == expected.encode("utf-8"), name
        assert done.stderr == b""


def test_get_value_dotenv_masks_the_secret_but_keeps_escapes(run, tricky):
    out = ok(run("env", "get", "proj/tricky", "--value", "dotenv")).stdout
    parsed = read_dotenv(out)
    assert parsed.pop("SECRET_VALUE") == MASK
    assert parsed == TRICKY
    assert tricky["SECRET_VALUE"].split()[0] not in out


# --------------------------------------------------------------------------- who may open what


@pytest.fixture
def store_and_admin(tmp_path):
    environ = {
        "STRONGROOM_HOME": str(tmp_path / "svc"),
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    app = AppContext(environ)
    store = app.open_store(create=True)

    def load_keyring(s):
        return app.key_provider(s).load()

    admin = Service(store, load_keyring=load_keyring, actor="admin")
    admin.initialise_keys()

    def as_principal(principal: Principal) -> Service:
        return Service(store, load_keyring=load_keyring, actor=principal.name, principal=principal)

    yield admin, as_principal
    store.close()


A, B = EnvRef("proj", "a"), EnvRef("proj", "b")


@pytest.fixture
def access(store_and_admin):
    admin, as_principal = store_and_admin
    b_secret, b_plain = canary(), canary()
    admin.create_environment(B, f"values:\n  bsecret:\n    fn::secret: {b_secret}\n  bplain: {b_plain}\n")
    admin.create_environment(A, "imports:\n  - proj/b\nvalues:\n  own: 1\n  fromb: ${bplain}\n  sec: ${bsecret}\n")
    return admin, as_principal, (b_secret, b_plain)


def denied_records(admin: Service) -> list[tuple[str, str | None, str]]:
    return [
        (r.event.action, r.event.environment, r.event.actor) for r in admin.audit_log() if r.event.outcome == "denied"
    ]


def test_a_reader_cannot_open_and_cannot_read_outside_its_scope(access):
    admin, as_principal, (b_secret, b_plain) = access
    reader = as_principal(Principal("r", "reader", ("proj/a",)))
    with pytest.raises(PermissionDeniedError) as opened:
        reader.open(RevisionRef(A))
    assert "may not open" in str(opened.value)
    with pytest.raises(PermissionDeniedError) as read:
        reader.read(RevisionRef(B))
    assert "may not read" in str(read.value)
    with pytest.raises(PermissionDeniedError):
        reader.read_value(RevisionRef(A), show_secrets=True)
    with pytest.raises(PermissionDeniedError):
        reader.definition_text(RevisionRef(A), show_secrets=True)
    for exc in (opened.value, read.value):
        assert b_secret not in str(exc) and b_plain not in str(exc)
    assert denied_records(admin) == [
        ("denied.open", "proj/a", "r"),
        ("denied.read", "proj/b", "r"),
        ("denied.open", "proj/a", "r"),
        ("denied.open", "proj/a", "r"),
    ]


def test_an_unscoped_reader_may_read_masked_but_never_open(access):
    _admin, as_principal, _secrets = access
    reader = as_principal(Principal("r", "reader"))
    value = reader.read(RevisionRef(A))
    assert value["own"] == 1
    assert not value["sec"].revealed
    with pytest.raises(PermissionDeniedError):
        reader.open(RevisionRef(B))


def test_an_opener_of_a_cannot_open_it_through_an_import_it_may_not_open(access):
    admin, as_principal, (b_secret, b_plain) = access
    opener = as_principal(Principal("ci", "opener", ("proj/a",)))
    with pytest.raises(DefinitionError) as caught:
        opener.open(RevisionRef(A))
    text = str(caught.value) + "".join(str(d) for d in caught.value.diagnostics)
    assert "proj/b" in text and "not found or not accessible" in text
    assert b_secret not in text and b_plain not in text
    with pytest.raises(PermissionDeniedError):
        opener.open(RevisionRef(B))
    # With scope on both, the same opener opens A.
    both = as_principal(Principal("ci2", "opener", ("proj/*",)))
    value, _ev = both.open(RevisionRef(A))
    assert value.get("fromb").value == b_plain
    assert value.get("sec").value == b_secret
    opens = [(r.event.actor, r.event.outcome) for r in admin.audit_log(action="open")]
    assert opens == [("ci", "error"), ("ci2", "ok")]


def test_an_import_refused_for_lack_of_scope_is_audited_as_denied(access):
    admin, as_principal, _ = access
    opener = as_principal(Principal("ci", "opener", ("proj/a",)))
    with pytest.raises(DefinitionError):
        opener.open(RevisionRef(A))
    assert ("proj/b", "ci") in [(env, actor) for _action, env, actor in denied_records(admin)]


# --------------------------------------------------------------------------- errors


@pytest.fixture
def broken(run):
    """proj/user references base values that a later edit of proj/lib removed."""
    secret = canary()
    ok(run("env", "init", "proj/lib", "-f", "-", input="values:\n  x: 1\n  y: 2\n  z: kept\n"))
    user = f"imports:\n  - proj/lib\nvalues:\n  a: ${{x}}\n  b: ${{z}}\n  s:\n    fn::secret: {secret}\n  c: ${{y}}\n"
    ok(run("env", "init", "proj/user", "-f", "-", input=user))
    ok(run("env", "edit", "proj/lib", "-f", "-", input="values:\n  z: kept\n"))
    return secret


def test_open_of_a_definition_with_a_missing_property_lists_the_diagnostics(run, broken):
    result = run("env", "open", "proj/user")
    stderr = failed(result, 'unknown property "x"', 'unknown property "y"', "proj/user:4:")
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("error: proj/user cannot be opened: proj/user:4:")
    assert lines[1:] == [
        '  error: proj/user:4:8 (values.a): unknown property "x"; the top level has no such key; '
        "check the spelling, or define it",
        '  error: proj/user:9:8 (values.c): unknown property "y"; the top level has no such key; '
        "check the spelling, or define it",
    ]
    assert broken not in stderr


def test_get_of_a_broken_definition_prints_values_and_the_errors(run, broken):
    result = run("env", "get", "proj/user")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert 'a: "[unknown]"  # proj/user:4:6' in result.stdout
    assert "b: kept  # proj/user:5:6" in result.stdout
    assert f"s: {MASK}  # proj/user:7:5" in result.stdout
    assert broken not in result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        'error: proj/user:4:8 (values.a): unknown property "x"; the top level has no such key; '
        "check the spelling, or define it",
        'error: proj/user:9:8 (values.c): unknown property "y"; the top level has no such key; '
        "check the spelling, or define it",
    ]


def test_the_failed_open_is_audited_as_an_error(run, broken):
    run("env", "open", "proj/user")
    records = json.loads(ok(run("audit", "ls", "--action", "open", "--env", "proj/user", "--format", "json")).stdout)
    assert [(r["outcome"], r["details"]) for r in records] == [("error", {})]
