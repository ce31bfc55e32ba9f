"""The remote CLI: with STRONGROOM_URL and STRONGROOM_TOKEN, commands give the same output,
errors and exit codes against a server as against the local store behind it."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from strongroom.cli.app import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "aphiria" / "environments"
PREVIEW = "aphiria.com/Preview"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from strongroom.server.app import create_app
    from strongroom.server.config import ServerConfig
    from strongroom.server.testing import StrongroomServer, make_token, new_store

    home = tmp_path_factory.mktemp("remote-home")
    key = base64.b64encode(os.urandom(32)).decode()
    store, load = new_store(home, key)
    tokens = {role: make_token(store, load, f"{role}-token", role) for role in ("reader", "opener", "editor", "admin")}
    tokens["scoped"] = make_token(store, load, "scoped", "admin", ("other/*",))
    app = create_app(ServerConfig.from_environ({"STRONGROOM_HOME": str(home)}), store=store, load_keyring=load)
    with StrongroomServer(app) as running:
        yield running.url, tokens, {"STRONGROOM_HOME": str(home), "STRONGROOM_MASTER_KEY": key}
    store.close()


def invoke(env: dict[str, str | None], *args: str, input: str | None = None):
    base: dict[str, str | None] = {
        "STRONGROOM_URL": None,
        "STRONGROOM_TOKEN": None,
        "STRONGROOM_STORE": None,
        "STRONGROOM_PASSPHRASE": None,
        "STRONGROOM_ACTOR": "tester",
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(cli, list(args), env={**base, **env}, input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def envs(server):
    url, tokens, local = server
    remote = {"STRONGROOM_URL": url, "STRONGROOM_TOKEN": tokens["admin"], "STRONGROOM_HOME": "/nonexistent"}
    assert invoke(remote, "env", "init", "aphiria.com/base", "-f", str(EXAMPLES / "base.yaml"))[0] == 0
    assert invoke(remote, "env", "init", PREVIEW, "-f", str(EXAMPLES / "Preview.yaml"))[0] == 0
    code, _out, err = invoke(remote, "env", "set", PREVIEW, "pulumiConfig.grafana:smtpPort", "588")
    assert code == 0, err
    assert invoke(remote, "env", "tag", PREVIEW, "stable")[0] == 0
    return remote, local, tokens, url


@pytest.mark.parametrize(
    "args",
    [
        ("env", "ls"),
        ("env", "ls", "--project", "aphiria.com"),
        ("env", "get", PREVIEW),
        ("env", "get", PREVIEW, "--format", "json"),
        ("env", "get", PREVIEW, "pulumiConfig.grafana:smtpPort"),
        ("env", "get", f"{PREVIEW}@stable", "--value", "dotenv"),
        ("env", "get", PREVIEW, "--show-secrets", "--format", "json"),
        ("env", "get", PREVIEW, "--definition"),
        ("env", "open", PREVIEW),
        ("env", "open", PREVIEW, "--format", "shell"),
        ("env", "open", PREVIEW, 'pulumiConfig["postgresql:user"]', "--format", "string"),
        ("env", "history", PREVIEW),
        ("env", "tag", PREVIEW),
        ("env", "diff", f"{PREVIEW}@1"),
        ("env", "diff", f"{PREVIEW}@1", f"{PREVIEW}@2", "--show-secrets"),
        ("run", PREVIEW, "--", "sh", "-c", "echo $DB_USER $DB_PASSWORD"),
        ("run", PREVIEW, "--", "echo", "${pulumiConfig.grafana:smtpPort}"),
        # errors: the same message and exit code
        ("env", "get", "nope/nope"),
        ("env", "get", f"{PREVIEW}@99"),
        ("env", "get", PREVIEW, "no.such.path"),
        ("env", "set", PREVIEW, "x.y", "ghp_abcdefabcdefabcdefab"),
        ("env", "set", PREVIEW, "pulumiConfig.grafana:smtpPort.inner", "1"),
        ("env", "tag", PREVIEW, "latest"),
        ("env", "rollback", f"{PREVIEW}@77"),
    ],
    ids=lambda a: " ".join(a)[:60],
)
def test_same_output_remote_and_local(envs, args):
    remote, local, _tokens, _url = envs
    assert invoke(remote, *args) == invoke(local, *args)


def test_writes_through_the_server_are_seen_locally(envs):
    remote, local, _tokens, _url = envs
    assert invoke(remote, "env", "set", PREVIEW, "extra.note", "from-remote")[0] == 0
    assert invoke(local, "env", "get", PREVIEW, "extra.note")[1] == "from-remote\n"
    definition = "imports:\n  - aphiria.com/base\nvalues:\n  only: here\n"
    assert invoke(remote, "env", "init", "remote/created", "-f", "-", input=definition)[0] == 0
    assert invoke(remote, "env", "clone", "remote/created", "remote/copy", "--preserve-history")[0] == 0
    assert invoke(local, "env", "get", "remote/copy", "only")[1] == "here\n"
    assert invoke(remote, "env", "rm", "remote/copy", "--yes")[0] == 0
    assert invoke(local, "env", "get", "remote/copy")[0] == 1
    code, _out, err = invoke(remote, "env", "edit", "remote/created", "-f", "-", input="values: [")
    assert code == 1 and "malformed YAML" in err
    assert invoke(remote, "env", "history", "remote/created") == invoke(local, "env", "history", "remote/created")


def test_roles_apply_to_the_remote_cli(envs):
    _remote, _local, tokens, url = envs

    def as_(role: str, *args: str):
        return invoke({"STRONGROOM_URL": url, "STRONGROOM_TOKEN": tokens[role], "STRONGROOM_HOME": "/x"}, *args)

    assert as_("reader", "env", "get", PREVIEW)[0] == 0
    code, out, err = as_("reader", "env", "open", PREVIEW)
    assert code == 1 and "may not open" in err and out == ""
    code, _out, err = as_("opener", "env", "set", PREVIEW, "a", "1")
    assert code == 1 and "may not write" in err
    # outside its scope: the same answer whether or not the environment exists
    missing = as_("scoped", "env", "get", "aphiria.com/does-not-exist")
    present = as_("scoped", "env", "get", PREVIEW)
    assert missing[0] == present[0] == 1
    assert missing[2].replace("aphiria.com/does-not-exist", "X") == present[2].replace(PREVIEW, "X")


def test_bad_or_missing_token(envs):
    _remote, _local, _tokens, url = envs
    code, _out, err = invoke(
        {"STRONGROOM_URL": url, "STRONGROOM_TOKEN": "sr_" + "a" * 16 + "_" + "b" * 43}, "env", "ls"
    )
    assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    code, _out, err = invoke({"STRONGROOM_URL": url, "STRONGROOM_TOKEN": None}, "env", "ls")
    assert code == 2 and "STRONGROOM_TOKEN" in err
    code, _out, err = invoke({"STRONGROOM_URL": "http://127.0.0.1:9", "STRONGROOM_TOKEN": "x"}, "env", "ls")
    assert code == 1 and "cannot reach the Strongroom server" in err
