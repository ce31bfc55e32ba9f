"""The command line, end to end in-process (CliRunner), plus the real console script and ``python -m``."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "aphiria" / "environments"
PREVIEW = "aphiria.com/Preview"
PRODUCTION = "aphiria.com/Production"
E = "proj/env"


def without_sources(text: str) -> str:
    """`env get` output without its "# env:line:column" comments."""
    return re.sub(r"  # \S+:\d+:\d+$", "", text, flags=re.M)


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------- helpers


def ok(result):
    """The command succeeded, and said nothing that looks like a failure."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.output
    assert not result.stderr.startswith("error:")
    return result


def failed(result, *fragments: str, code: int = 1):
    """A clean user error: exit ``code``, one ``error:`` line on stderr naming what is wrong, no traceback."""
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert result.stdout == ""
    return lines[0]


def write_script(path: Path, body: str) -> Path:
    """An executable Python script (used as $EDITOR)."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o755)
    return path


def store_rows(home: Path) -> dict[str, list[tuple]]:
    """Everything the store holds, read straight from the SQLite file."""
    conn = sqlite3.connect(f"file:{home / 'store.db'}?mode=ro", uri=True)
    try:
        return {
            "environments": conn.execute(
                "SELECT project, name, created_at, latest_revision, data_key, key_id FROM environments ORDER BY id"
            ).fetchall(),
            "revisions": conn.execute(
                "SELECT env_id, number, created_at, author, definition, compiled FROM revisions ORDER BY env_id, number"
            ).fetchall(),
            "tags": conn.execute(
                "SELECT env_id, name, revision, updated_at FROM revision_tags ORDER BY env_id, name"
            ).fetchall(),
            "meta": conn.execute("SELECT key, value FROM store_meta ORDER BY key").fetchall(),
        }
    finally:
        conn.close()


def stored_definition(home: Path, env: str, number: int | None = None) -> str:
    project, name = env.split("/")
    conn = sqlite3.connect(f"file:{home / 'store.db'}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT r.definition FROM revisions r JOIN environments e ON r.env_id = e.id"
            " WHERE e.project = ? AND e.name = ? AND r.number = COALESCE(?, e.latest_revision)",
            (project, name, number),
        ).fetchone()
    finally:
        conn.close()
    assert row is not None
    return str(row[0])


def history_numbers(run, env: str) -> list[int]:
    out = ok(run("env", "history", env)).stdout
    return [int(m) for m in re.findall(r"^\s*(\d+)\s", out, flags=re.M)]


def shown(run, env: str, *extra: str):
    return json.loads(ok(run("env", "get", env, "--show-secrets", "--format", "json", *extra)).stdout)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def home(cli_env) -> Path:
    return Path(cli_env["STRONGROOM_HOME"])


@pytest.fixture
def run(run_cli):
    """``run_cli`` on an initialised store (``strongroom init`` with the test master key)."""
    result = ok(run_cli("init"))
    assert "Strongroom store ready" in result.stdout
    return run_cli


@pytest.fixture
def with_env(run):
    ok(run("env", "init", E))
    return run


@pytest.fixture
def keyfile_run(run_cli):
    """``run_cli`` on a store initialised with a key file (no STRONGROOM_MASTER_KEY)."""

    def run(*args, **kwargs):
        env = {"STRONGROOM_MASTER_KEY": None, **kwargs.pop("env", {})}
        return run_cli(*args, env=env, **kwargs)

    result = ok(run("init"))
    assert "Back up the key file" in result.stdout
    return run


# --------------------------------------------------------------------------- the runbook

RUNBOOK = [
    ("namespace:imagePullSecret:token", "ghp_YOUR_TOKEN", True),
    ("namespace:imagePullSecret:username", "your-github-username", False),
    ("gateway:digitaloceanDnsToken", "dop_v1_YOUR_TOKEN_HERE", True),
    None,  # env get ENV
    ("grafana:githubClientId", "YOUR_CLIENT_ID", True),
    ("grafana:githubClientSecret", "YOUR_CLIENT_SECRET", True),
    ("grafana:githubOrg", "aphiria", False),
    ("grafana:adminUser", "your-github-username", False),
    ("grafana:smtpHost", "smtp.gmail.com", True),
    ("grafana:smtpPort", "587", False),
    ("grafana:smtpUser", "alerts@example.com", True),
    ("grafana:smtpPassword", "YOUR_APP_PASSWORD", True),
    ("grafana:smtpFromAddress", "alerts@example.com", False),
    ("grafana:alertEmail", "admin@example.com", False),
    ("prometheus:authToken", "YOUR_GENERATED_TOKEN", True),
]


@pytest.mark.parametrize("quotes", ["stripped-by-shell", "kept"])
@pytest.mark.parametrize("env", [PREVIEW, PRODUCTION])
def test_runbook(run, env, quotes):
    example = EXAMPLES / f"{env.split('/')[1]}.yaml"
    ok(run("env", "init", "aphiria.com/base", "-f", str(EXAMPLES / "base.yaml")))
    assert "created (revision 1)" in ok(run("env", "init", env, "-f", str(example))).stdout
    revision = 1
    for step in RUNBOOK:
        if step is None:
            out = ok(run("env", "get", env)).stdout
            # the runbook's "shows gateway:digitaloceanDnsToken: [secret]", followed by where it is defined
            assert re.search(r"^  gateway:digitaloceanDnsToken: \[secret\]  # aphiria\.com/\w+:\d+:\d+$", out, re.M)
            assert "dop_v1_YOUR_TOKEN_HERE" not in out and "ghp_YOUR_TOKEN" not in out
            continue
        key, value, secret = step
        path = f'pulumiConfig."{key}"' if quotes == "kept" else f"pulumiConfig.{key}"
        result = ok(run("env", "set", env, path, value, *(["--secret"] if secret else [])))
        revision += 1
        assert f"(revision {revision})" in result.stderr
        if secret:
            assert value not in result.output
    values = shown(run, env)["pulumiConfig"]
    for step in RUNBOOK:
        if step is not None:
            key, value, _secret = step
            assert values[key] == (587 if key == "grafana:smtpPort" else value)
    assert type(values["grafana:smtpPort"]) is int
    # Values the runbook does not touch keep their example content.
    assert values["postgresql:user"] == "aphiria"
    assert values["postgresql:password"].startswith("EXAMPLE-")
    assert history_numbers(run, env) == list(range(revision, 0, -1))
    masked = ok(run("env", "get", env)).stdout
    for key in ("namespace:imagePullSecret:token", "grafana:smtpHost", "prometheus:authToken"):
        assert f"  {key}: [secret]\n" in without_sources(masked)
    assert "  grafana:smtpPort: 587\n" in without_sources(masked)
    assert "  grafana:githubOrg: aphiria\n" in without_sources(masked)


def test_runbook_credentials_without_secret_are_refused(run, home):
    ok(run("env", "init", "aphiria.com/base", "-f", str(EXAMPLES / "base.yaml")))
    ok(run("env", "init", PREVIEW, "-f", str(EXAMPLES / "Preview.yaml")))
    before = store_rows(home)
    for key, value in [
        ("namespace:imagePullSecret:token", "ghp_YOUR_TOKEN"),
        ("gateway:digitaloceanDnsToken", "dop_v1_YOUR_TOKEN_HERE"),
        ("prometheus:authToken", "ab12" * 16),
    ]:
        result = run("env", "set", PREVIEW, f"pulumiConfig.{key}", value)
        message = failed(result, "looks like a credential", "--secret")
        assert value not in message
    assert store_rows(home) == before
    ok(run("env", "set", PREVIEW, "pulumiConfig.prometheus:authToken", "ab12" * 16, "--plaintext"))
    assert shown(run, PREVIEW)["pulumiConfig"]["prometheus:authToken"] == "ab12" * 16


# --------------------------------------------------------------------------- every command of the README table


def test_version(run_cli):
    result = ok(run_cli("--version"))
    assert result.stdout.startswith("strongroom, version ")


def test_help_lists_the_commands(run_cli):
    out = ok(run_cli("env", "--help")).stdout
    for command in ("init", "ls", "get", "set", "rm", "edit", "history", "diff", "rollback", "tag", "clone"):
        assert re.search(rf"^\s+{command}\s", out, flags=re.M), command


def test_init_with_a_key_file(keyfile_run, home):
    key = home / "key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    document = json.loads(key.read_text())
    key_id = document["keys"][0]["id"]
    assert key_id in ok(keyfile_run("key", "show")).stdout
    original = key.read_bytes()
    again = ok(keyfile_run("init"))
    assert "already initialised" in again.stdout
    assert key.read_bytes() == original  # never overwritten


def test_init_with_the_master_key_variable(run_cli, home):
    result = ok(run_cli("init"))
    assert "environment variable STRONGROOM_MASTER_KEY" in result.stdout
    assert not (home / "key").exists()
    assert (home / "store.db").exists()


def test_env_init_empty_from_file_and_from_stdin(run, home):
    assert ok(run("env", "init", "p/empty")).stdout == "Environment p/empty created (revision 1).\n"
    assert shown(run, "p/empty") == {}
    (home.parent / "def.yaml").write_text("values:\n  a: 1\n")
    ok(run("env", "init", "p/file", "-f", str(home.parent / "def.yaml")))
    assert shown(run, "p/file") == {"a": 1}
    ok(run("env", "init", "p/stdin", "-f", "-", input="values:\n  b: [1, 2]\n"))
    assert shown(run, "p/stdin") == {"b": [1, 2]}
    before = store_rows(home)
    failed(run("env", "init", "p/file", "-f", "-", input="values:\n  c: 1\n"), "already exists")
    assert store_rows(home) == before


def test_env_ls(run):
    for name in ("b.org/two", "a.org/one", "b.org/one"):
        ok(run("env", "init", name))
    assert ok(run("env", "ls")).stdout == "a.org/one\nb.org/one\nb.org/two\n"
    assert ok(run("env", "ls", "--project", "b.org")).stdout == "b.org/one\nb.org/two\n"
    assert ok(run("env", "ls", "--project", "nobody")).stdout == ""
    ok(run("env", "set", "a.org/one", "x", "1"))
    long_ = ok(run("env", "ls", "-l")).stdout
    assert re.search(r"^a\.org/one\s+2\s+\d{4}-\d\d-\d\dT", long_, flags=re.M)
    assert re.search(r"^b\.org/two\s+1\s", long_, flags=re.M)


def test_env_ls_on_an_empty_store(run):
    assert ok(run("env", "ls")).stdout == ""


def test_env_get_path_revision_and_tag(with_env):
    run = with_env
    ok(run("env", "set", E, "a.b", "1"))  # 2
    ok(run("env", "set", E, "a.b", "2"))  # 3
    ok(run("env", "set", E, "list", "[alpha, beta]"))  # 4
    ok(run("env", "tag", E, "stable", "2"))
    assert ok(run("env", "get", E, "a.b")).stdout == "2\n"
    assert ok(run("env", "get", E, "a")).stdout == "b: 2  # proj/env:3:8\n"
    assert ok(run("env", "get", E, "list[1]")).stdout == "beta\n"
    assert without_sources(ok(run("env", "get", f"{E}@2")).stdout) == "a:\n  b: 1\n"
    assert ok(run("env", "get", f"{E}@stable", "a.b")).stdout == "1\n"
    assert ok(run("env", "get", f"{E}@latest", "a.b")).stdout == "2\n"
    assert json.loads(ok(run("env", "get", E, "--format", "json")).stdout) == {"a": {"b": 2}, "list": ["alpha", "beta"]}
    assert without_sources(ok(run("env", "get", E)).stdout) == "a:\n  b: 2\nlist:\n  - alpha\n  - beta\n"


def test_env_get_masks_secrets_unless_asked(with_env):
    run = with_env
    secret = canary()
    ok(run("env", "set", E, "s", secret, "--secret"))
    for args in ([], ["--format", "json"], ["s"], ["s", "--format", "json"]):
        out = ok(run("env", "get", E, *args)).stdout
        assert "[secret]" in out and secret not in out
    assert ok(run("env", "get", E, "s", "--show-secrets")).stdout == f"{secret}\n"
    assert shown(run, E) == {"s": secret}


def test_env_set_from_file_and_stdin(with_env, tmp_path):
    run = with_env
    value = "line one\nline two: with colon"
    (tmp_path / "value.txt").write_text(value + "\n")
    ok(run("env", "set", E, "file", "-f", str(tmp_path / "value.txt")))
    (tmp_path / "raw.txt").write_text("  spaced  ")
    ok(run("env", "set", E, "raw", "-f", str(tmp_path / "raw.txt")))
    ok(run("env", "set", E, "stdin", "-f", "-", input="587"))
    secret = canary()
    ok(run("env", "set", E, "s", "--secret", "-f", "-", input=secret + "\n"))
    values = shown(run, E)
    # -f values are strings as given, less one final newline (as $(...) would strip it).
    assert values == {"file": value, "raw": "  spaced  ", "stdin": "587", "s": secret}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("587", 587), ("true", True), ("1.5", 1.5), ("[1, 2]", [1, 2]), ("alerts@example.com", "alerts@example.com")],
)
def test_env_set_reads_values_as_yaml_scalars(with_env, text, expected):
    ok(with_env("env", "set", E, "v", text))
    value = shown(with_env, E)["v"]
    assert value == expected and type(value) is type(expected)


def test_env_set_usage_errors(with_env, home):
    run = with_env
    before = store_rows(home)
    failed(run("env", "set", E, "a", "1", "--secret", "--plaintext"), "--secret and --plaintext", code=2)
    failed(run("env", "set", E, "a"), "either VALUE or --file", code=2)
    failed(run("env", "set", E, "a", "1", "-f", "-", input="2"), "either VALUE or --file", code=2)
    assert store_rows(home) == before


def test_env_rm_path(with_env):
    run = with_env
    ok(run("env", "set", E, "a.b", "1"))
    ok(run("env", "set", E, "a.c", "2"))
    result = ok(run("env", "rm", E, "a.b"))
    assert "Removed a.b from proj/env (revision 4)" in result.stderr
    assert shown(run, E) == {"a": {"c": 2}}
    failed(run("env", "rm", E, "a.b"), "does not exist")


def test_env_rm_environment(with_env, home):
    run = with_env
    ok(run("env", "set", E, "a", "1"))
    ok(run("env", "tag", E, "t"))
    before = store_rows(home)
    failed(run("env", "rm", E), "without confirmation", "--yes", code=2)  # stdin is not a tty
    assert store_rows(home) == before
    assert "Environment proj/env deleted." in ok(run("env", "rm", E, "--yes")).stderr
    assert ok(run("env", "ls")).stdout == ""
    rows = store_rows(home)
    assert rows["environments"] == [] and rows["revisions"] == [] and rows["tags"] == []
    failed(run("env", "get", E), "does not exist")
    ok(run("env", "init", E))  # the name is free again, with a fresh history
    assert history_numbers(run, E) == [1]


def test_env_edit_from_file_keeps_comments_and_encrypts_secrets(with_env, home, tmp_path):
    run = with_env
    secret = canary()
    (tmp_path / "new.yaml").write_text(
        f"# head comment\nvalues:\n  # about a\n  a: 1  # trailing\n  s:\n    fn::secret: {secret}  # the secret\n"
    )
    assert "(revision 2)" in ok(run("env", "edit", E, "-f", str(tmp_path / "new.yaml"))).stderr
    stored = stored_definition(home, E)
    for comment in ("# head comment", "# about a", "# trailing", "# the secret"):
        assert comment in stored
    assert secret not in stored
    assert "ciphertext:" in stored
    assert shown(run, E) == {"a": 1, "s": secret}
    ok(run("env", "edit", E, "-f", "-", input="values:\n  b: 2\n"))
    assert shown(run, E) == {"b": 2}


def test_env_edit_with_editor(with_env, home, tmp_path):
    run = with_env
    secret = canary()
    ok(run("env", "set", E, "old", "1"))
    editor = write_script(
        tmp_path / "editor.py",
        f"""
        import sys
        path = sys.argv[1]
        text = open(path, encoding="utf-8").read()
        assert "old: 1" in text, text
        open(path, "w", encoding="utf-8").write(
            "# edited\\nvalues:\\n  old: 2\\n  s:\\n    fn::secret: {secret}\\n"
        )
        """,
    )
    result = ok(run("env", "edit", E, env={"EDITOR": str(editor)}))
    assert "(revision 3)" in result.stderr
    assert shown(run, E) == {"old": 2, "s": secret}
    stored = stored_definition(home, E)
    assert "# edited" in stored and secret not in stored


def test_env_edit_without_changes_writes_nothing(with_env, home, tmp_path):
    run = with_env
    ok(run("env", "set", E, "a", "1"))
    before = store_rows(home)
    editor = write_script(tmp_path / "noop.py", "import sys\n")
    assert "No changes." in ok(run("env", "edit", E, env={"EDITOR": str(editor)})).stderr
    assert store_rows(home) == before


def test_env_edit_without_an_editor(with_env, home):
    before = store_rows(home)
    failed(with_env("env", "edit", E), "no editor", "EDITOR", code=2)
    assert store_rows(home) == before


def test_env_edit_editor_failure_saves_nothing(with_env, home, tmp_path):
    run = with_env
    editor = write_script(
        tmp_path / "fail.py",
        """
        import sys
        open(sys.argv[1], "w").write("values:\\n  half: written\\n")
        sys.exit(3)
        """,
    )
    before = store_rows(home)
    failed(run("env", "edit", E, env={"EDITOR": str(editor)}), "status 3", "nothing was saved", code=2)
    assert store_rows(home) == before


def test_env_history(with_env):
    run = with_env
    ok(run("env", "set", E, "a", "1"))
    ok(run("env", "set", E, "a", "2"))
    ok(run("env", "tag", E, "stable", "2"))
    ok(run("env", "tag", E, "also", "2"))
    out = ok(run("env", "history", E)).stdout
    assert history_numbers(run, E) == [3, 2, 1]
    assert re.search(r"^\s*2\s+also, stable\s+tester\s+\d{4}-", out, flags=re.M), out
    assert re.search(r"^\s*3\s+tester\s", out, flags=re.M), out


def test_env_diff(with_env):
    run = with_env
    old, new = canary(), canary()
    ok(run("env", "set", E, "keep", "1"))  # 2
    ok(run("env", "set", E, "change", "a"))  # 3
    ok(run("env", "set", E, "s", old, "--secret"))  # 4
    ok(run("env", "set", E, "change", "b"))  # 5
    ok(run("env", "set", E, "s", new, "--secret"))  # 6
    ok(run("env", "set", E, "added", "[1]"))  # 7
    ok(run("env", "rm", E, "keep"))  # 8
    out = ok(run("env", "diff", f"{E}@4")).stdout
    lines = out.splitlines()
    assert lines[:3] == ["+ values.added[0]: 1", '~ values.change: "a" -> "b"', "- values.keep: 1"]
    assert len(lines) == 4 and lines[3].startswith("~ values.s: [secret]")
    assert old not in out and new not in out
    revealed = ok(run("env", "diff", f"{E}@4", f"{E}@6", "--show-secrets")).stdout
    assert f'~ values.s: "{old}" -> "{new}"' in revealed
    same = ok(run("env", "diff", f"{E}@8", E))
    assert same.stdout == "" and "No differences" in same.stderr


def test_env_diff_across_environments(with_env):
    run = with_env
    secret = canary()
    ok(run("env", "set", E, "s", secret, "--secret"))
    ok(run("env", "init", "proj/other"))
    ok(run("env", "set", "proj/other", "s", secret, "--secret"))
    ok(run("env", "set", "proj/other", "x", "1"))
    assert ok(run("env", "diff", E, "proj/other")).stdout == "+ values.x: 1\n"


def test_env_rollback(with_env, home):
    run = with_env
    ok(run("env", "set", E, "a", "1"))  # 2
    ok(run("env", "set", E, "a", "2"))  # 3
    ok(run("env", "tag", E, "good", "2"))
    result = ok(run("env", "rollback", f"{E}@2"))
    assert "new revision 4" in result.stderr
    assert shown(run, E) == {"a": 1}
    assert stored_definition(home, E, 4) == stored_definition(home, E, 2)
    ok(run("env", "set", E, "a", "3"))  # 5
    ok(run("env", "rollback", f"{E}@good"))  # 6
    assert shown(run, E) == {"a": 1}
    assert history_numbers(run, E) == [6, 5, 4, 3, 2, 1]
    before = store_rows(home)
    failed(run("env", "rollback", E), "name the revision", code=2)
    failed(run("env", "rollback", f"{E}@99"), "revision 99", "does not exist")
    assert store_rows(home) == before


def test_env_tag_list_set_delete(with_env):
    run = with_env
    ok(run("env", "set", E, "a", "1"))
    assert "Tagged proj/env@2 as stable." in ok(run("env", "tag", E, "stable")).stderr
    assert "Tagged proj/env@1 as first." in ok(run("env", "tag", E, "first", "1")).stderr
    listing = ok(run("env", "tag", E)).stdout
    assert re.search(r"^first\s+1\s+\d{4}-", listing, flags=re.M)
    assert re.search(r"^stable\s+2\s+\d{4}-", listing, flags=re.M)
    ok(run("env", "tag", E, "stable", "first"))  # a tag can name another tag's revision
    assert re.search(r"^stable\s+1\s", ok(run("env", "tag", E)).stdout, flags=re.M)
    assert "Tag first removed" in ok(run("env", "tag", E, "first", "--delete")).stderr
    listing = ok(run("env", "tag", E)).stdout
    assert "first" not in listing and "stable" in listing
    failed(run("env", "tag", E, "first", "--delete"), "has no tag 'first'")


def test_env_clone(with_env, home):
    run = with_env
    first, second = canary(), canary()
    ok(run("env", "set", E, "s", first, "--secret"))  # 2
    ok(run("env", "tag", E, "v1"))
    ok(run("env", "set", E, "s", second, "--secret"))  # 3
    result = ok(run("env", "clone", E, "proj/copy", "--preserve-history"))
    assert "(3 revisions)" in result.stderr
    assert history_numbers(run, "proj/copy") == [3, 2, 1]
    assert shown(run, "proj/copy") == {"s": second}
    assert shown(run, "proj/copy@v1") == {"s": first}
    assert stored_definition(home, "proj/copy") != stored_definition(home, E)  # re-encrypted
    assert "(1 revision)" in ok(run("env", "clone", E, "proj/flat")).stderr
    assert history_numbers(run, "proj/flat") == [1]
    assert shown(run, "proj/flat") == {"s": second}
    before = store_rows(home)
    failed(run("env", "clone", E, "proj/copy"), "already exists")
    assert store_rows(home) == before


def test_key_show_prints_the_id_not_the_key(keyfile_run, home):
    document = json.loads((home / "key").read_text())
    entry = document["keys"][0]
    out = ok(keyfile_run("key", "show")).stdout
    assert f"key id:   {entry['id']}" in out
    raw = base64.b64decode(entry["key"])
    for form in (entry["key"], raw.hex(), base64.urlsafe_b64encode(raw).decode()):
        assert form not in out


def test_key_show_with_the_master_key_variable(run, cli_env):
    out = ok(run("key", "show")).stdout
    assert "provider: environment variable STRONGROOM_MASTER_KEY" in out
    assert re.search(r"^key id:   [0-9a-f]{16}$", out, flags=re.M)
    assert cli_env["STRONGROOM_MASTER_KEY"] not in out


def test_key_generate(run_cli):
    first = ok(run_cli("key", "generate")).stdout.strip()
    second = ok(run_cli("key", "generate")).stdout.strip()
    assert len(base64.b64decode(first, validate=True)) == 32
    assert first != second


def test_key_rotate_with_a_key_file(keyfile_run, home):
    run = keyfile_run
    secret = canary()
    ok(run("env", "init", E))
    ok(run("env", "set", E, "s", secret, "--secret"))
    ok(run("env", "init", "proj/two", "-f", "-", input=f"values:\n  t:\n    fn::secret: {secret}-2\n"))
    old_file = (home / "key").read_bytes()
    old_id = json.loads(old_file)["keys"][0]["id"]
    before = store_rows(home)

    result = ok(run("key", "rotate"))
    assert "Re-wrapped 2 data key(s)" in result.stdout

    new_file = (home / "key").read_bytes()
    assert new_file != old_file
    ids = [k["id"] for k in json.loads(new_file)["keys"]]
    assert len(ids) == 1 and old_id not in ids
    assert stat.S_IMODE((home / "key").stat().st_mode) == 0o600
    shown_id = ok(run("key", "show")).stdout
    assert ids[0] in shown_id and old_id not in shown_id
    assert shown(run, E) == {"s": secret}
    assert shown(run, "proj/two") == {"t": f"{secret}-2"}
    after = store_rows(home)
    assert after["revisions"] == before["revisions"]  # no revision changes
    assert after["environments"] != before["environments"]  # data keys re-wrapped
    ok(run("env", "set", E, "s2", canary(), "--secret"))  # and writing still works


def test_key_rotate_with_the_master_key_variable(run, cli_env, home):
    secret = canary()
    ok(run("env", "init", E))
    ok(run("env", "set", E, "s", secret, "--secret"))
    failed(run("key", "rotate"), "STRONGROOM_NEW_MASTER_KEY", code=2)
    new_key = ok(run("key", "generate")).stdout.strip()
    ok(run("key", "rotate", env={"STRONGROOM_NEW_MASTER_KEY": new_key}))
    assert json.loads(
        ok(run("env", "get", E, "--show-secrets", "--format", "json", env={"STRONGROOM_MASTER_KEY": new_key})).stdout
    ) == {"s": secret}
    failed(run("env", "get", E, "--show-secrets"), "wrong master key")


# --------------------------------------------------------------------------- bad input: clean errors, nothing changed


@pytest.fixture
def populated(with_env, home):
    """An environment with a few revisions, a secret and a tag; returns ``run``."""
    run = with_env
    ok(run("env", "set", E, "a", "1"))
    ok(run("env", "set", E, "s", canary(), "--secret"))
    ok(run("env", "tag", E, "stable"))
    return run


@pytest.fixture
def unchanged(populated, home):
    """Asserts, after the test, that the store (rows, history and definition) is exactly as before."""
    before = store_rows(home)
    history_before = ok(populated("env", "history", E)).stdout
    definition_before = stored_definition(home, E)
    yield populated
    assert store_rows(home) == before
    assert ok(populated("env", "history", E)).stdout == history_before
    assert stored_definition(home, E) == definition_before


@pytest.mark.parametrize(
    ("yaml_text", "fragments"),
    [
        ("values: [", ("malformed YAML", ":1:")),
        ("values:\n  a: 1\n  a: 2\n", ("duplicate key", ":3:")),
        ("values: 3\n", ("`values` must be a mapping",)),
        ("- just\n- a list\n", ("must be a YAML mapping",)),
        ("values:\n  s:\n    fn::secret: 5\n", ("secret values must be string",)),
        ("values:\n  s:\n    fn::secret: x\n    other: 1\n", ("must be the only key",)),
        ("values:\n  a: \x00\n", ("NUL",)),
    ],
)
def test_bad_definitions(unchanged, tmp_path, yaml_text, fragments):
    run = unchanged
    (tmp_path / "bad.yaml").write_text(yaml_text, encoding="utf-8")
    failed(run("env", "edit", E, "-f", str(tmp_path / "bad.yaml")), *fragments)
    failed(run("env", "edit", E, "-f", "-", input=yaml_text), *fragments)
    failed(run("env", "init", "proj/new", "-f", str(tmp_path / "bad.yaml")), *fragments)


@pytest.mark.parametrize(
    "name", ["a", "a/b/c", "./x", "p/..", "p/.", "p/open", "p/yaml", "p/" + "x" * 101, "p/a b", "/x", "p/"]
)
def test_invalid_environment_names(unchanged, name):
    run = unchanged
    failed(run("env", "init", name), "invalid environment name")
    failed(run("env", "get", name), "invalid environment name")
    failed(run("env", "set", name, "a", "1"), "invalid environment name")
    failed(run("env", "clone", E, name), "invalid environment name")


def test_longest_valid_name_is_accepted(run):
    name = "p/" + "x" * 100
    ok(run("env", "init", name))
    assert ok(run("env", "ls")).stdout == f"{name}\n"


@pytest.mark.parametrize(("tag", "fragment"), [("1abc", "invalid tag name"), ("latest", "reserved")])
def test_invalid_tag_names(unchanged, tag, fragment):
    failed(unchanged("env", "tag", E, tag), fragment)
    failed(unchanged("env", "tag", E, tag, "--delete"), fragment)


def test_unknown_environment_revision_and_tag(unchanged):
    run = unchanged
    for args in (("env", "get", "nope/nope"), ("env", "set", "nope/nope", "a", "1"), ("env", "history", "nope/nope"),
                 ("env", "rm", "nope/nope", "--yes"), ("env", "edit", "nope/nope", "-f", "-"),
                 ("env", "clone", "nope/nope", "proj/x")):  # fmt: skip
        failed(run(*args, input=""), "nope/nope does not exist")
    failed(run("env", "get", f"{E}@99"), "revision 99", "does not exist")
    failed(run("env", "diff", f"{E}@99"), "revision 99", "does not exist")
    failed(run("env", "tag", E, "x", "99"), "revision 99", "does not exist")
    failed(run("env", "get", f"{E}@nosuchtag"), "no tag 'nosuchtag'")
    failed(run("env", "rollback", f"{E}@nosuchtag"), "no tag 'nosuchtag'")
    failed(run("env", "get", f"{E}@0"), "numbered from 1")
    failed(run("env", "get", E, "missing.path"), "does not exist")


def test_path_through_a_scalar(unchanged):
    run = unchanged
    failed(run("env", "set", E, "a.b", "1"), "through a scalar", "values.a")
    failed(run("env", "get", E, "a.b"), "through a scalar")
    failed(run("env", "set", E, "s.x", "1"), "through the secret")
    failed(run("env", "get", E, "s.x", "--show-secrets"), "through the secret")


@pytest.mark.parametrize("path", ["a..b", "a.", "a[", "a[x]", 'a."b', ""])
def test_malformed_paths(unchanged, path):
    failed(unchanged("env", "set", E, path, "1"), "invalid path")
    if path:  # `env get ENV ""` means the whole environment
        failed(unchanged("env", "get", E, path), "invalid path")


def test_superscript_index_is_a_clean_error(unchanged):
    failed(unchanged("env", "get", E, "a[²]"), "invalid path")


def test_value_over_256_kib(unchanged, tmp_path):
    (tmp_path / "big").write_text("x" * (256 * 1024 + 1))
    failed(unchanged("env", "set", E, "big", "-f", str(tmp_path / "big")), "256 KiB")
    failed(unchanged("env", "set", E, "big", "--secret", "-f", str(tmp_path / "big")), "256 KiB")


def test_definition_over_1_mib(unchanged, tmp_path):
    text = "values:\n  a: " + "x" * (1024 * 1024) + "\n"
    (tmp_path / "big.yaml").write_text(text)
    failed(unchanged("env", "edit", E, "-f", str(tmp_path / "big.yaml")), "1024 KiB")
    failed(unchanged("env", "init", "proj/big", "-f", str(tmp_path / "big.yaml")), "1024 KiB")


def test_invalid_utf8_in_a_file_and_on_stdin(unchanged, tmp_path):
    run = unchanged
    bad = b"values:\n  a: \xff\xfe\n"
    (tmp_path / "bad.yaml").write_bytes(bad)
    failed(run("env", "edit", E, "-f", str(tmp_path / "bad.yaml")), "not valid UTF-8", "offset 13")
    failed(run("env", "set", E, "a", "-f", str(tmp_path / "bad.yaml")), "not valid UTF-8")
    failed(run("env", "edit", E, "-f", "-", input=bad), "not valid UTF-8", "stdin")
    failed(run("env", "set", E, "a", "--secret", "-f", "-", input=bad), "not valid UTF-8", "stdin")
    failed(run("env", "init", "proj/x", "-f", "-", input=bad), "not valid UTF-8", "stdin")


def test_invalid_utf8_on_stdin_message(unchanged):
    line = failed(unchanged("env", "set", E, "a", "-f", "-", input=b"\xff"))
    assert "value from stdin is not valid UTF-8" in line


def test_unreadable_input_file(unchanged, tmp_path):
    failed(unchanged("env", "edit", E, "-f", str(tmp_path / "missing.yaml")), "cannot read", "missing.yaml")


def test_stale_revision_in_the_editor_is_a_conflict(populated, home, tmp_path):
    """The editor itself runs another `env set` before saving: the edit must not overwrite it."""
    run = populated
    editor = write_script(
        tmp_path / "racing_editor.py",
        f"""
        import subprocess, sys
        subprocess.run([{sys.executable!r}, "-m", "strongroom", "env", "set", {E!r}, "raced", "1"], check=True)
        open(sys.argv[1], "w", encoding="utf-8").write("values:\\n  edited: 1\\n")
        """,
    )
    before = history_numbers(run, E)
    failed(run("env", "edit", E, env={"EDITOR": str(editor)}), "changed meanwhile")
    assert history_numbers(run, E) == [before[0] + 1, *before]  # only the racing `env set`
    values = shown(run, E)
    assert values["raced"] == 1 and "edited" not in values


def test_wrong_master_key(run_cli, home):
    secret = canary()
    ok(run_cli("init"))
    ok(run_cli("env", "init", E))
    ok(run_cli("env", "set", E, "s", secret, "--secret"))
    before = store_rows(home)
    other = {"STRONGROOM_MASTER_KEY": base64.b64encode(b"another-master-key-of-32-bytes!!").decode()}
    for args in (
        ("env", "set", E, "t", "x", "--secret"),
        ("env", "get", E, "--show-secrets"),
        ("env", "init", "proj/new"),
        ("env", "edit", E, "-f", "-"),
        ("env", "clone", E, "proj/copy"),
        ("key", "rotate"),
    ):
        line = failed(run_cli(*args, env=other, input="values:\n  s:\n    fn::secret: new\n"), "wrong master key")
        assert secret not in line
    assert store_rows(home) == before


def test_invalid_master_key_variable(run):
    failed(run("env", "init", E, env={"STRONGROOM_MASTER_KEY": "not base64!"}), "STRONGROOM_MASTER_KEY is not valid")


def test_missing_key_file(keyfile_run, home):
    run = keyfile_run
    ok(run("env", "init", E))
    ok(run("env", "set", E, "s", canary(), "--secret"))
    (home / "key").unlink()
    before = store_rows(home)
    failed(run("env", "get", E, "--show-secrets"), "no master key", "strongroom init")
    failed(run("env", "set", E, "t", "x", "--secret"), "no master key", "strongroom init")
    failed(run("init"), "key", "missing")  # init refuses to make a new key for a bound store
    assert not (home / "key").exists()
    assert store_rows(home) == before


def test_using_the_store_before_init(run_cli, home):
    for args in (("env", "ls"), ("env", "init", E), ("env", "get", E), ("key", "show"), ("key", "rotate")):
        failed(run_cli(*args), "strongroom init")
    assert not (home / "store.db").exists()


# --------------------------------------------------------------------------- real processes


def _console_script() -> str:
    beside = Path(sys.executable).with_name("strongroom")
    if beside.exists():
        return str(beside)
    import shutil

    found = shutil.which("strongroom")
    assert found, "the strongroom console script is not installed"
    return found


@pytest.fixture
def process_env(cli_env) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in cli_env}
    env.update({k: v for k, v in cli_env.items() if v is not None})
    return env


def _run(argv: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_python_dash_m_version(process_env):
    import strongroom

    result = _run([sys.executable, "-m", "strongroom", "--version"], process_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"strongroom, version {strongroom.__version__}"


def test_console_script_end_to_end(process_env):
    exe = _console_script()
    version = _run([exe, "--version"], process_env)
    assert version.returncode == 0 and version.stdout.startswith("strongroom, version ")
    assert _run([exe, "init"], process_env).returncode == 0
    assert _run([exe, "env", "init", E], process_env).returncode == 0
    secret = canary()
    set_ = _run(
        [exe, "env", "set", E, 'pulumiConfig."postgresql:password"', "--secret", "-f", "-"], process_env, secret
    )
    assert set_.returncode == 0, set_.stderr
    got = _run([exe, "env", "get", E], process_env)
    assert got.stdout == "pulumiConfig:\n  postgresql:password: [secret]  # proj/env:4:7\n"
    revealed = _run([exe, "env", "get", E, "--show-secrets", "--format", "json"], process_env)
    assert json.loads(revealed.stdout) == {"pulumiConfig": {"postgresql:password": secret}}


def test_console_script_exit_codes(process_env):
    exe = _console_script()
    assert _run([exe, "init"], process_env).returncode == 0
    user_error = _run([exe, "env", "get", "nope/nope"], process_env)
    assert user_error.returncode == 1
    assert user_error.stderr.startswith("error: environment nope/nope does not exist")
    assert len(user_error.stderr.strip().splitlines()) == 1
    usage = _run([exe, "env", "get"], process_env)
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    no_confirm = _run([exe, "env", "rm", "nope/nope"], process_env)
    assert no_confirm.returncode in (1, 2) and no_confirm.stderr.startswith("error: ")
    for result in (user_error, usage, no_confirm):
        assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("env", "get", "proj/env@³"),
        ("env", "set", "proj/env", "x", '"\\ud800"'),
        ("audit", "ls", "--since", "999999999999d"),
        ("token", "create", "--name", "x", "--role", "reader", "--expires", "9999999999999d"),
    ],
)
def test_odd_input_is_a_clean_error_not_a_crash(run, args):
    ok(run("env", "init", "proj/env"))
    result = run(*args)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
