"""examples/aphiria/pulumi: `strongroom pulumi sync` fills the production and preview-pr stacks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi_crypto
import pytest
from ruamel.yaml import YAML

from strongroom.cli.context import AppContext
from strongroom.model import EnvRef

EXAMPLE = Path(__file__).parent.parent / "examples" / "aphiria"
PASSPHRASE = "aphiria-example-passphrase"


@pytest.fixture(autouse=True)
def pulumi_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from strongroom.cli import app

    monkeypatch.setitem(app._LAZY, "pulumi", ("strongroom.cli.pulumi", "pulumi"))


@pytest.fixture
def loaded(cli_env: dict[str, str | None]) -> Iterator[None]:
    environ = {k: v for k, v in cli_env.items() if v is not None}
    AppContext(environ).open_store(create=True).close()
    app = AppContext(environ)
    service = app.service()
    for name in ("base", "Preview", "Production"):  # base first: the others import it
        text = (EXAMPLE / "environments" / f"{name}.yaml").read_text()
        service.create_environment(EnvRef.parse(f"aphiria.com/{name}"), text)
    app.close()
    yield


def decrypted(path: Path) -> dict[str, Any]:
    doc = YAML(typ="safe").load(path.read_text())
    cipher = pulumi_crypto.PassphraseCipher(PASSPHRASE, salt_state=doc["encryptionsalt"])
    return {
        k: cipher.decrypt(v["secure"]) if isinstance(v, dict) and set(v) == {"secure"} else v
        for k, v in doc["config"].items()
    }


@pytest.mark.parametrize(
    ("env", "stack", "hand_managed", "comment"),
    [
        ("aphiria.com/Production", "production", {"aphiria-com:nodeCount": "3"}, "# three nodes in production"),
        ("aphiria.com/Preview", "preview-pr", {"aphiria-com:nodeCount": "1"}, "# each PR gets <number>.pr.aphiria.com"),
    ],
)
def test_sync_fills_the_example_stacks(
    run_cli: Any, loaded: None, tmp_path: Path, env: str, stack: str, hand_managed: dict[str, str], comment: str
) -> None:
    project = tmp_path / "pulumi"
    shutil.copytree(EXAMPLE / "pulumi", project)
    environ = {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_BACKEND_URL": None}
    plan = run_cli("pulumi", "sync", env, "--stack", stack, "--cwd", str(project), "--plan", env=environ)
    assert plan.exit_code == 0, plan.output
    assert "EXAMPLE" not in plan.output
    result = run_cli("pulumi", "sync", env, "--stack", stack, "--cwd", str(project), env=environ)
    assert result.exit_code == 0, result.output
    path = project / f"Pulumi.{stack}.yml"
    assert not (project / f"Pulumi.{stack}.yaml").exists()
    config = decrypted(path)
    suffix = "PRODUCTION" if stack == "production" else "PREVIEW"
    assert config["digitalocean:token"] == f"dop_v1_EXAMPLE_{suffix}_CLUSTER_TOKEN"
    assert config["postgresql:password"] == f"EXAMPLE-{suffix.lower()}-postgres-password"
    assert config["postgresql:user"] == "aphiria"  # from base
    assert config["grafana:smtpPort"] == 587
    assert config["grafana:smtpHost"] == "smtp.gmail.com"  # a secret in base
    for key, value in hand_managed.items():
        assert config[key] == value
    text = path.read_text()
    assert comment in text and "EXAMPLE" not in text
    status = run_cli("pulumi", "status", env, "--stack", stack, "--cwd", str(project), env=environ)
    assert status.exit_code == 0, status.output
