"""The Pulumi bridge: passphrase crypto against Pulumi's vectors and pulumi-crypto, and `strongroom pulumi`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi_crypto
import pytest
from ruamel.yaml import YAML

from strongroom._pulumi_crypto import PassphraseCrypter, derive_key
from strongroom.cli.context import AppContext
from strongroom.errors import DecryptionError, InvalidInputError, KeyUnavailableError
from strongroom.model import EnvRef, RevisionRef
from strongroom.pulumi import ConfigValue, pulumi_status, stack_config, sync_pulumi
from strongroom.service import Service

VECTORS = json.loads((Path(__file__).parent / "vectors" / "pulumi" / "passphrase.json").read_text())
PASSPHRASE = "correct horse battery staple"
CANARY = "canary-7f3a9c-never-print-me"
ENV = "acme/infra"
STACK = "dev"


# --------------------------------------------------------------------------- crypto


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_pulumi_published_vectors(vector: dict[str, Any]) -> None:
    state = vector["encryptionsalt"]
    if vector["verifies"]:
        crypter = PassphraseCrypter.from_state(vector["passphrase"], state)
        assert crypter.decrypt(state.split(":", 2)[2]) == vector["verification_plaintext"]
        assert derive_key(vector["passphrase"], bytes.fromhex(vector["salt_hex"])) == crypter._key
        # and what we encrypt under that state, Pulumi's state, decrypts with the independent package
        cipher = pulumi_crypto.PassphraseCipher(vector["passphrase"], salt_state=state)
        assert cipher.decrypt(crypter.encrypt("héllo, wörld")) == "héllo, wörld"
        assert crypter.decrypt(cipher.encrypt("from pulumi-crypto")) == "from pulumi-crypto"
    else:
        with pytest.raises(KeyUnavailableError) as err:
            PassphraseCrypter.from_state(vector["passphrase"], state)
        assert vector["passphrase"] not in str(err.value)


@pytest.mark.parametrize("vector", VECTORS["malformed"], ids=lambda v: v["name"])
def test_malformed_state_is_not_a_wrong_passphrase(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        PassphraseCrypter.from_state(vector["passphrase"], vector["encryptionsalt"])


def test_new_state_is_accepted_by_pulumi_crypto() -> None:
    crypter = PassphraseCrypter.create(PASSPHRASE)
    version, salt, verifier = crypter.state.split(":", 2)
    assert version == "v1" and len(__import__("base64").b64decode(salt)) == 8
    cipher = pulumi_crypto.PassphraseCipher(PASSPHRASE, salt_state=crypter.state)
    assert cipher.decrypt(verifier) == "pulumi"
    with pytest.raises(pulumi_crypto.PulumiCryptoBadPassphraseError):
        pulumi_crypto.PassphraseCipher("wrong", salt_state=crypter.state)


def test_tampered_ciphertext_is_one_opaque_error() -> None:
    crypter = PassphraseCrypter.create(PASSPHRASE, derive=lambda p, s: b"k" * 32)
    ct = crypter.encrypt("value")
    tampered = ct[:-4] + ("AAAA" if not ct.endswith("AAAA") else "BBBB")
    for bad in (tampered, "v2:abc:def", "v1:!!:??", "nonsense"):
        with pytest.raises(DecryptionError):
            crypter.decrypt(bad)
    assert "k" * 32 not in repr(crypter)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def service(cli_env: dict[str, str | None]) -> Iterator[Service]:
    environ = {k: v for k, v in cli_env.items() if v is not None}
    AppContext(environ).open_store(create=True).close()
    app = AppContext(environ)
    yield app.service()
    app.close()


Define = Callable[[dict[str, Any]], None]


@pytest.fixture
def define(service: Service) -> Define:
    def run(pulumi_config: dict[str, Any], name: str = ENV) -> None:
        text = json.dumps({"values": {"pulumiConfig": pulumi_config}})
        env = EnvRef.parse(name)
        try:
            service.resolve(RevisionRef(env))
        except Exception:
            service.create_environment(env, text)
        else:
            service.replace_definition(env, text)

    return run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "infra"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: acme\nruntime: nodejs\nbackend:\n  url: file://~\n")
    return folder


@pytest.fixture
def pulumi_env() -> dict[str, str | None]:
    return {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_CONFIG_PASSPHRASE_FILE": None, "PULUMI_BACKEND_URL": None}


@pytest.fixture(autouse=True)
def pulumi_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the group as cli/app.py's ``_LAZY`` does (a no-op once the line is there)."""
    from strongroom.cli import app

    monkeypatch.setitem(app._LAZY, "pulumi", ("strongroom.cli.pulumi", "pulumi"))


@pytest.fixture
def sr(run_cli: Any, project: Path, pulumi_env: dict[str, str | None]) -> Callable[..., Any]:
    """``sr("sync", "--plan", env=...)``: run ``strongroom pulumi ...`` on ENV and STACK in the project."""

    def run(command: str, *args: str, env: dict[str, str | None] | None = None, stack: str = STACK) -> Any:
        return run_cli(
            "pulumi", command, ENV, "--stack", stack, "--cwd", str(project), *args, env={**pulumi_env, **(env or {})}
        )

    return run


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def secrets_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        if set(node) == {"secure"}:
            return [node["secure"]]
        return [s for v in node.values() for s in secrets_of(v)]
    if isinstance(node, list):
        return [s for v in node for s in secrets_of(v)]
    return []


def decrypt_all(path: Path, passphrase: str = PASSPHRASE) -> Any:
    """The stack file's config with every ``secure:`` leaf decrypted by pulumi-crypto (not our code)."""
    doc = load(path)
    cipher = pulumi_crypto.PassphraseCipher(passphrase, salt_state=doc["encryptionsalt"])

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"secure"}:
                return ("secret", cipher.decrypt(node["secure"]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(doc["config"])


BASIC = {
    "aws:region": "eu-west-1",
    "acme:replicas": 3,
    "acme:debug": False,
    "postgresql:password": {"fn::secret": CANARY},
    "token": {"fn::secret": "tok-123"},
    "acme:db": {"host": "db.internal", "port": 5432, "password": {"fn::secret": "nested-secret"}},
    "acme:hosts": ["a", {"fn::secret": "b-secret"}],
    "acme:wholeSecret": {"fn::fromJSON": {"fn::secret": '{"user": "u", "pass": "p"}'}},
}


# --------------------------------------------------------------------------- sync


def test_sync_writes_values_that_pulumi_crypto_decrypts(sr: Any, define: Define, project: Path) -> None:
    define(BASIC)
    result = sr("sync")
    assert result.exit_code == 0, result.output
    path = project / "Pulumi.dev.yaml"
    assert "created encryptionsalt" in result.output
    assert decrypt_all(path) == {
        "aws:region": "eu-west-1",
        "acme:replicas": 3,
        "acme:debug": False,
        "postgresql:password": ("secret", CANARY),
        "acme:token": ("secret", "tok-123"),
        "acme:db": {"host": "db.internal", "port": 5432, "password": ("secret", "nested-secret")},
        "acme:hosts": ["a", ("secret", "b-secret")],
        "acme:wholeSecret": {"user": ("secret", "u"), "pass": ("secret", "p")},
    }
    text = path.read_text()
    assert CANARY not in text and "nested-secret" not in text
    assert CANARY not in result.output
    tracking = json.loads((project / ".strongroom-pulumi.json").read_text())
    assert tracking["stacks"]["Pulumi.dev.yaml"]["keys"] == list(decrypt_all(path))
    # no temp files left behind
    assert sorted(p.name for p in project.iterdir()) == [".strongroom-pulumi.json", "Pulumi.dev.yaml", "Pulumi.yaml"]


def test_second_sync_changes_nothing_and_keeps_ciphertexts(sr: Any, define: Define, project: Path) -> None:
    define(BASIC)
    assert sr("sync").exit_code == 0
    path = project / "Pulumi.dev.yaml"
    before = path.read_bytes()
    result = sr("sync")
    assert result.exit_code == 0
    assert "up to date" in result.output
    assert path.read_bytes() == before


COMMENTED = """\
# Stack settings for dev -- keep this comment
encryptionsalt: {salt}
config:
  # region comment
  aws:region: us-east-1   # trailing comment
  other:handWritten: keep me
  acme:list:
    - one
    - two
  postgresql:password:
    secure: {old}
# footer comment
"""


def test_comments_order_and_unmanaged_keys_survive(sr: Any, define: Define, project: Path) -> None:
    crypter = PassphraseCrypter.create(PASSPHRASE)
    path = project / "Pulumi.dev.yaml"
    path.write_text(COMMENTED.format(salt=crypter.state, old=crypter.encrypt("old")))
    define({"aws:region": "eu-west-1", "postgresql:password": {"fn::secret": CANARY}, "acme:new": "n"})
    refused = sr("sync")
    assert refused.exit_code == 1
    assert "--adopt" in refused.output and "aws:region" in refused.output
    assert CANARY not in refused.output
    result = sr("sync", "--adopt")
    assert result.exit_code == 0, result.output
    text = path.read_text()
    for kept in (
        "# Stack settings for dev -- keep this comment",
        "# region comment",
        "# trailing comment",
        "# footer comment",
        "other:handWritten: keep me",
        "  acme:list:\n    - one\n    - two\n",
    ):
        assert kept in text, kept
    assert list(load(path)["config"]) == [
        "aws:region",
        "other:handWritten",
        "acme:list",
        "postgresql:password",
        "acme:new",
    ]
    assert text.startswith("# Stack settings for dev")
    assert decrypt_all(path)["postgresql:password"] == ("secret", CANARY)
    assert load(path)["encryptionsalt"] == crypter.state


def test_plan_lists_keys_without_values_and_writes_nothing(sr: Any, define: Define, project: Path) -> None:
    define(BASIC)
    assert sr("sync").exit_code == 0
    path = project / "Pulumi.dev.yaml"
    before = path.read_bytes()
    changed = dict(BASIC)
    changed["postgresql:password"] = {"fn::secret": CANARY + "-v2"}
    del changed["aws:region"]
    changed["acme:added"] = {"fn::secret": CANARY + "-added"}
    define(changed)
    result = sr("sync", "--plan", "--prune")
    assert result.exit_code == 0, result.output
    assert "~ postgresql:password (secret): changed" in result.output
    assert "+ acme:added (secret): added" in result.output
    assert "- aws:region: removed" in result.output
    assert "nothing written" in result.output
    assert CANARY not in result.output and "eu-west-1" not in result.output
    assert path.read_bytes() == before


def test_prune_removes_only_keys_strongroom_wrote(sr: Any, define: Define, project: Path) -> None:
    path = project / "Pulumi.dev.yaml"
    path.write_text("config:\n  mine:handWritten: yes-keep\n")
    define({"acme:a": "1", "acme:b": "2"})
    assert sr("sync").exit_code == 0
    define({"acme:a": "1"})
    kept = sr("sync")
    assert "= acme:b: no longer in the environment (--prune to remove)" in kept.output
    assert "acme:b" in load(path)["config"]
    pruned = sr("sync", "--prune")
    assert pruned.exit_code == 0, pruned.output
    config = load(path)["config"]
    assert config == {"mine:handWritten": "yes-keep", "acme:a": "1"}
    tracking = json.loads((project / ".strongroom-pulumi.json").read_text())
    assert tracking["stacks"]["Pulumi.dev.yaml"]["keys"] == ["acme:a"]


def test_wrong_passphrase_is_one_error_and_changes_nothing(sr: Any, define: Define, project: Path) -> None:
    define(BASIC)
    assert sr("sync").exit_code == 0
    path = project / "Pulumi.dev.yaml"
    tracking = project / ".strongroom-pulumi.json"
    before, before_tracking = path.read_bytes(), tracking.read_bytes()
    define({**BASIC, "acme:replicas": 4})
    result = sr("sync", env={"PULUMI_CONFIG_PASSPHRASE": "not-the-passphrase"})
    assert result.exit_code != 0
    assert "passphrase is wrong" in result.output
    assert result.output.count("error:") == 1
    assert "not-the-passphrase" not in result.output
    assert path.read_bytes() == before and tracking.read_bytes() == before_tracking


def test_passphrase_file_and_missing_passphrase(sr: Any, define: Define, project: Path, tmp_path: Path) -> None:
    define({"acme:s": {"fn::secret": "x"}})
    missing = sr("sync", env={"PULUMI_CONFIG_PASSPHRASE": None})
    assert missing.exit_code != 0 and "PULUMI_CONFIG_PASSPHRASE" in missing.output
    assert not (project / "Pulumi.dev.yaml").exists()
    phrase_file = tmp_path / "phrase"
    phrase_file.write_text(PASSPHRASE + "\n")
    result = sr("sync", env={"PULUMI_CONFIG_PASSPHRASE": None, "PULUMI_CONFIG_PASSPHRASE_FILE": str(phrase_file)})
    assert result.exit_code == 0, result.output
    assert decrypt_all(project / "Pulumi.dev.yaml") == {"acme:s": ("secret", "x")}


def test_yml_spelling_is_used_when_it_exists(sr: Any, define: Define, project: Path) -> None:
    (project / "Pulumi.dev.yml").write_text("config:\n  aws:region: us-east-1  # mine\n")
    define({"acme:s": {"fn::secret": "x"}})
    assert sr("sync").exit_code == 0
    assert not (project / "Pulumi.dev.yaml").exists()
    assert decrypt_all(project / "Pulumi.dev.yml") == {"aws:region": "us-east-1", "acme:s": ("secret", "x")}
    assert "# mine" in (project / "Pulumi.dev.yml").read_text()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("secretsprovider: awskms://alias/pulumi?region=eu-west-1\nencryptedkey: AQIDAA==\n", "AWS KMS"),
        ("secretsprovider: azurekeyvault://vault.vault.azure.net/keys/k\nencryptedkey: AQ==\n", "Azure Key Vault"),
        ("secretsprovider: gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k\nencryptedkey: AQ==\n", "Google"),
        ("secretsprovider: hashivault://pulumi\nencryptedkey: AQ==\n", "HashiCorp Vault"),
        ("config:\n  acme:x:\n    secure: AAABAJxzZWNyZXQ=\n", "Pulumi Cloud"),
    ],
)
def test_other_secrets_providers_are_refused_with_advice(
    sr: Any, define: Define, project: Path, header: str, expected: str
) -> None:
    (project / "Pulumi.yaml").write_text("name: acme\nruntime: nodejs\n")
    path = project / "Pulumi.dev.yaml"
    path.write_text(header)
    define({"acme:s": {"fn::secret": "x"}})
    result = sr("sync")
    assert result.exit_code != 0
    assert expected in result.output and "not supported yet" in result.output
    assert "stack_config" in result.output and "change-secrets-provider passphrase" in result.output
    assert path.read_text() == header


def test_pulumi_cloud_backend_without_salt_is_refused(sr: Any, define: Define, project: Path) -> None:
    define({"acme:s": {"fn::secret": "x"}})
    result = sr("sync", env={"PULUMI_BACKEND_URL": "https://api.pulumi.com"})
    assert result.exit_code != 0 and "Pulumi Cloud" in result.output


# --------------------------------------------------------------------------- status


def test_status_reports_drift_after_a_hand_edit(sr: Any, define: Define, project: Path) -> None:
    define(BASIC)
    assert sr("sync").exit_code == 0
    clean = sr("status")
    assert clean.exit_code == 0, clean.output
    assert "in sync" in clean.output
    path = project / "Pulumi.dev.yaml"
    doc = load(path)
    # someone ran `pulumi config set --secret postgresql:password other` and deleted acme:debug
    cipher = pulumi_crypto.PassphraseCipher(PASSPHRASE, salt_state=doc["encryptionsalt"])
    text = path.read_text()
    old = doc["config"]["postgresql:password"]["secure"]
    text = text.replace(old, cipher.encrypt("edited-by-hand")).replace("  acme:debug: false\n", "")
    path.write_text(text)
    drift = sr("status")
    assert drift.exit_code == 1
    assert "postgresql:password: changed" in drift.output
    assert "acme:debug: missing" in drift.output
    assert "edited-by-hand" not in drift.output and CANARY not in drift.output
    assert sr("sync").exit_code == 0
    assert sr("status").exit_code == 0


# --------------------------------------------------------------------------- API and audit


def test_pbkdf2_runs_once_per_run_and_audit_has_no_values(service: Service, define: Define, project: Path) -> None:
    define(BASIC)
    calls: list[bytes] = []

    def counting(passphrase: str, salt: bytes) -> bytes:
        calls.append(salt)
        return derive_key(passphrase, salt)

    environ = {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
    sync_pulumi(service, RevisionRef.parse(ENV), STACK, cwd=project, environ=environ, derive=counting)
    assert len(calls) == 1
    calls.clear()
    define({**BASIC, "acme:more": {"fn::secret": "m"}})
    result = sync_pulumi(service, RevisionRef.parse(ENV), STACK, cwd=project, environ=environ, derive=counting)
    assert len(calls) == 1
    assert [c.key for c in result.changes if c.kind == "added"] == ["acme:more"]
    status = pulumi_status(service, RevisionRef.parse(ENV), STACK, cwd=project, environ=environ, derive=counting)
    assert not status.drifted
    events = [r.event for r in service.store.list_audit(after_seq=0, limit=1000) if r.event.action == "sync.pulumi"]
    assert len(events) == 2
    dumped = repr(events)
    assert CANARY not in dumped and "nested-secret" not in dumped
    assert ("key:acme:more", "added") in events[-1].details


def test_stack_config_for_the_automation_api(service: Service, define: Define) -> None:
    define(BASIC)
    config = stack_config(ENV, service=service)
    assert config["aws:region"] == ConfigValue("eu-west-1", False)
    assert config["acme:replicas"] == ConfigValue("3", False)
    assert config["acme:debug"] == ConfigValue("false", False)
    assert config["postgresql:password"] == ConfigValue(CANARY, True)
    assert config["token"] == ConfigValue("tok-123", True)
    assert json.loads(config["acme:db"].value) == {"host": "db.internal", "port": 5432, "password": "nested-secret"}
    assert config["acme:db"].secret
    assert CANARY not in repr(config)


def test_no_passphrase_in_environ_writes_nothing(service: Service, define: Define, project: Path) -> None:
    define({"acme:s": {"fn::secret": "x"}})
    with pytest.raises(KeyUnavailableError):
        sync_pulumi(service, RevisionRef.parse(ENV), STACK, cwd=project, environ={})
    assert sorted(p.name for p in project.iterdir()) == ["Pulumi.yaml"]
