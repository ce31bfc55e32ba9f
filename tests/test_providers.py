"""fn::open providers: the built-in `env` provider and plug-ins from the entry-point group."""

from __future__ import annotations

import importlib.metadata

import pytest

from strongroom.model import Secret
from strongroom.providers import ENTRY_POINT_GROUP, EnvironmentVariableProvider, ProviderError, ProviderRegistry


def test_env_provider_reads_the_environment_as_a_secret_by_default():
    provider = EnvironmentVariableProvider({"TOKEN": "CANARY-env-provider"})
    value = provider.open({"name": "TOKEN"}, {})
    assert isinstance(value, Secret) and value.reveal() == "CANARY-env-provider"
    assert provider.open({"name": "TOKEN", "secret": False}, {}) == "CANARY-env-provider"
    assert provider.open({"name": "UNSET", "default": "d", "secret": False}, {}) == "d"
    with pytest.raises(ProviderError, match="UNSET is not set"):
        provider.open({"name": "UNSET"}, {})
    assert "CANARY" not in repr(provider)


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name = name
        self._target = target

    def load(self) -> object:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_registry_loads_plugins_lazily_and_skips_broken_ones(monkeypatch, caplog):
    calls: list[str] = []

    class Echo:
        schema = None

        def open(self, inputs, context):
            return dict(inputs)

    def fake_entry_points(*, group: str):
        calls.append(group)
        return [
            FakeEntryPoint("echo", Echo),
            FakeEntryPoint("broken", ImportError("nope")),
            FakeEntryPoint("env", Echo),
        ]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    registry = ProviderRegistry({"A": "1"})
    assert calls == []  # nothing is looked up until a definition opens something
    assert sorted(registry) == ["echo", "env"]
    assert calls == [ENTRY_POINT_GROUP]
    assert isinstance(registry["env"], EnvironmentVariableProvider)  # a plug-in cannot replace a built-in
    assert "broken" in caplog.text
    assert not isinstance(ProviderRegistry({}, allow_environment=False).get("env"), EnvironmentVariableProvider)


def test_fn_open_env_in_a_definition(run_cli, cli_env):
    definition = (
        "values:\n  token:\n    fn::open::env: {name: SR_TEST_TOKEN}\n  environmentVariables:\n    TOKEN: ${token}\n"
    )
    assert run_cli("init").exit_code == 0
    assert run_cli("env", "init", "p/e", "-f", "-", input=definition).exit_code == 0
    masked = run_cli("env", "get", "p/e", env={"SR_TEST_TOKEN": "CANARY-from-env"})
    assert "token: [secret]" in masked.stdout and "CANARY-from-env" not in masked.stdout
    opened = run_cli("env", "open", "p/e", "--format", "dotenv", env={"SR_TEST_TOKEN": "CANARY-from-env"})
    assert opened.stdout == 'TOKEN="CANARY-from-env"\n'
    missing = run_cli("env", "open", "p/e", env={"SR_TEST_TOKEN": None})
    assert missing.exit_code == 1 and "SR_TEST_TOKEN is not set" in missing.stderr
