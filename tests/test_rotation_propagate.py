"""``strongroom rotate`` re-syncs every Kubernetes Secret and GitHub secret that carries the rotated value,
over real HTTP against the local Kubernetes and GitHub API servers; failures and missing tiers are reported."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from strongroom.cli import app as cli_app
from strongroom.model import EnvRef, RevisionRef
from strongroom.testing.github_api import GitHubAPIServer
from strongroom.testing.kube_api import KubeAPIServer
from test_rotation_catalog import T0, Clock, clock, environ, make_service, service  # noqa: F401

BASE = EnvRef("acme", "base")
PROD = EnvRef("acme", "prod")
OLD = "CANARYOLD0a1b2c3d4e5f60718293a4b5c6d7e8f"
GH_TOKEN = "ghp_" + "t" * 36
BASE_DEFINITION = f"""values:
  app:
    token: {{fn::secret: {OLD}}}
  kubernetesSecrets:
    api-token:
      namespaces: [api, web]
      data:
        TOKEN: ${{app.token}}
rotation:
  app.token:
    schedule: annually
    rotator: {{random: {{bytes: 32, encoding: hex}}}}
"""
PROD_DEFINITION = """imports:
  - acme/base
values:
  githubSecrets:
    repositories:
      acme/api:
        secrets:
          API_TOKEN: ${app.token}
"""


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as running:
        yield running


@pytest.fixture(scope="module")
def gh() -> Iterator[GitHubAPIServer]:
    with GitHubAPIServer() as running:
        yield running


@pytest.fixture
def tiers(kube, gh, tmp_path):  # type: ignore[no-untyped-def]
    kube.api.reset()
    for ns in ("api", "web"):
        kube.api.create_namespace(ns)
    gh.api.reset()
    gh.api.add_repository("acme/api", id=101)
    gh.api.add_token(GH_TOKEN, scopes={"repo"})
    return kube, gh, str(kube.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
def envs(service):  # type: ignore[no-untyped-def]  # noqa: F811
    service.create_environment(BASE, BASE_DEFINITION)
    service.create_environment(PROD, PROD_DEFINITION)
    return service


def rotate(environ, *args: str, **extra: str) -> Result:  # type: ignore[no-untyped-def]  # noqa: F811
    env = {**environ, "COLUMNS": "200", "HOME": environ["STRONGROOM_HOME"], "KUBECONFIG": "", **extra}
    return CliRunner().invoke(cli_app.cli, ["rotate", *args], env=env, catch_exceptions=False)


def rotate_to_tiers(environ, kubeconfig: str, api_url: str, token: str) -> Result:  # type: ignore[no-untyped-def]  # noqa: F811
    """``strongroom rotate`` of base's token, re-syncing both tiers."""
    return rotate(
        environ,
        str(BASE),
        "app.token",
        "--yes",
        "--kubeconfig",
        kubeconfig,
        "--github-api-url",
        api_url,
        GITHUB_TOKEN=token,
    )


def current(svc) -> str:  # type: ignore[no-untyped-def]
    return str(svc.read(RevisionRef(BASE), ("app", "token"), show_secrets=True).reveal())


def test_rotate_pushes_the_new_value_to_every_tier(envs, environ, tiers) -> None:  # noqa: F811
    kube, gh, kubeconfig = tiers
    res = rotate_to_tiers(environ, kubeconfig, gh.url, GH_TOKEN)
    assert res.exit_code == 0, res.output
    new = current(envs)
    assert new != OLD
    # base's own Secret and prod's (it imports base's kubernetesSecrets): the same objects, new value
    for ns in ("api", "web"):
        assert (kube.api.secret_data("api-token", ns) or {})["TOKEN"] == new.encode()
    assert gh.api.plaintext("acme/api", "API_TOKEN") == new
    # acme/prod inherits base's kubernetesSecrets: the Secret is base's, re-synced once, from base
    assert "propagate: kubernetes from acme/base: ok; github from acme/prod: ok" in res.output
    assert new not in res.output and OLD not in res.output
    again = rotate_to_tiers(environ, kubeconfig, gh.url, GH_TOKEN)
    assert again.exit_code == 0, again.output
    newer = current(envs)
    assert newer != new
    assert (kube.api.secret_data("api-token", "web") or {})["TOKEN"] == newer.encode()
    assert gh.api.plaintext("acme/api", "API_TOKEN") == newer


def test_unreachable_tiers_are_reported_with_the_command_to_run(envs, environ, tiers) -> None:  # noqa: F811
    _kube, gh, _kubeconfig = tiers
    res = rotate(environ, str(BASE), "app.token", "--yes", "--no-github")
    assert res.exit_code == 0, res.output  # rotated; the tiers without credentials are left to a person
    assert "to re-sync: strongroom sync acme/base --to kubernetes" in res.output
    assert "to re-sync: strongroom sync acme/prod --to github" in res.output
    assert gh.requests == []  # --no-github: not a single call


def test_a_failed_resync_fails_the_command_but_keeps_the_rotation(envs, environ, tiers) -> None:  # noqa: F811
    _kube, gh, kubeconfig = tiers
    res = rotate_to_tiers(environ, kubeconfig, gh.url, "ghp_" + "x" * 36)  # a token the API does not know: 401
    assert res.exit_code == 1
    assert current(envs) != OLD  # the rotation stands
    assert "re-sync failed: github from acme/prod; run: strongroom sync acme/prod --to github" in res.output
    assert "token invalid or expired" in res.output


def test_no_propagate(envs, environ, tiers) -> None:  # noqa: F811
    kube, _gh, kubeconfig = tiers
    res = rotate(environ, str(BASE), "app.token", "--yes", "--kubeconfig", kubeconfig, "--no-propagate")
    assert res.exit_code == 0
    assert "propagate: pending (no targets configured)" in res.output
    assert kube.api.secret_data("api-token", "api") is None


def test_no_github_token_at_all_is_not_configured_rather_than_failed(envs, environ, tiers) -> None:  # noqa: F811
    kube, gh, kubeconfig = tiers
    res = rotate(environ, str(BASE), "app.token", "--yes", "--kubeconfig", kubeconfig, "--github-api-url", gh.url)
    assert res.exit_code == 0, res.output  # nothing failed: GitHub simply has no credentials here
    assert "github from acme/prod: not configured" in res.output
    assert "to re-sync: strongroom sync acme/prod --to github" in res.output
    assert gh.requests == []
    assert (kube.api.secret_data("api-token", "api") or {})["TOKEN"] == current(envs).encode()
