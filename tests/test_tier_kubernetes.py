"""The Kubernetes tier, end to end over real HTTP against ``strongroom.testing.kube_api``.

Every test drives the CLI (``strongroom sync ... --to kubernetes``, ``preview``, ``export``) with a
kubeconfig written for the test server; the production client (lightkube) does the talking.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from strongroom.testing.kube_api import KubeAPIServer

ENV = "acme/Prod"
MANAGED = "app.kubernetes.io/managed-by"


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def definition(password: str, *, extra: str = "", namespaces: str = "[default]", immutable: bool = False) -> str:
    return f"""
values:
  db:
    user: app
    password:
      fn::secret: {password}
  kubernetesSecrets:
    db-env:
      namespaces: {namespaces}
      labels: {{team: core}}
      data:
        DB_USER: ${{db.user}}
        DB_PASSWORD: ${{db.password}}
      immutable: {"true" if immutable else "false"}
    ghcr-pull:
      namespaces: {namespaces}
      dockerconfigjson:
        registry: ghcr.io
        username: octocat
        password: ${{db.password}}
{extra}"""


@pytest.fixture(scope="module")
def server():
    with KubeAPIServer() as running:
        yield running


@pytest.fixture
def api(server):
    server.api.reset()
    yield server.api
    server.api.reset()


@pytest.fixture
def kubeconfig(server, tmp_path) -> str:
    return str(server.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
def sr(run_cli, cli_env, kubeconfig):
    """Run the CLI on an initialised store; ``sr.define(text)`` sets ENV's definition."""
    from strongroom.cli.context import AppContext
    from strongroom.model import EnvRef

    assert run_cli("init").exit_code == 0
    env = {k: v for k, v in cli_env.items() if v is not None}

    class Runner:
        kubeconfig_path = kubeconfig

        def __call__(self, *args: str, **kwargs):
            return run_cli(*args, **kwargs)

        def define(self, text: str) -> None:
            app = AppContext(env)
            try:
                service = app.service()
                ref = EnvRef.parse(ENV)
                if any(str(e.ref) == ENV for e in service.list_environments()):
                    service.replace_definition(ref, text)
                else:
                    service.create_environment(ref, text)
            finally:
                app.close()

        def service(self):
            return AppContext(env)

        def sync(self, *extra: str):
            return run_cli("sync", ENV, "--to", "kubernetes", "--kubeconfig", kubeconfig, *extra)

        def status(self):
            return run_cli("sync", "status", ENV, "--to", "kubernetes", "--kubeconfig", kubeconfig)

    return Runner()


def secret(api, name, namespace="default"):
    return api.get_object("secrets", name, namespace)


def test_first_sync_creates_owned_secrets(api, sr):
    password = canary()
    sr.define(definition(password))
    result = sr.sync()
    assert result.exit_code == 0, result.output
    assert password not in result.output
    assert api.secret_data("db-env", "default") == {"DB_USER": b"app", "DB_PASSWORD": password.encode()}
    live = secret(api, "db-env")
    assert live["metadata"]["labels"] == {"team": "core", MANAGED: "strongroom"}
    annotations = live["metadata"]["annotations"]
    assert annotations["strongroom.io/environment"] == ENV
    assert annotations["strongroom.io/revision"] == "1"
    assert annotations["strongroom.io/content-hmac"].startswith("hmac-sha256:")
    assert password not in json.dumps(annotations)
    # dockerconfigjson: {"auths": {registry: {username, password, auth=base64(user:pass)}}}
    pull = secret(api, "ghcr-pull")
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(api.secret_data("ghcr-pull", "default")[".dockerconfigjson"])
    auth = base64.b64encode(f"octocat:{password}".encode()).decode()
    assert config == {"auths": {"ghcr.io": {"username": "octocat", "password": password, "auth": auth}}}


def test_no_change_resync_makes_zero_writes(api, sr):
    sr.define(definition(canary()))
    assert sr.sync().exit_code == 0
    api.clear_requests()
    result = sr.sync()
    assert result.exit_code == 0, result.output
    assert api.write_requests == []
    assert api.count_requests("GET") == 2  # the namespaces, then default's Secrets


def test_value_change_updates_only_that_secret_and_keys(api, sr):
    sr.define(definition("old-password"))
    assert sr.sync().exit_code == 0
    new = canary()
    sr.define(definition(new))
    plan = sr.sync("--plan")
    assert plan.exit_code == 0, plan.output
    assert new not in plan.output and "old-password" not in plan.output
    assert "update" in plan.output and "~DB_PASSWORD" in plan.output and "~.dockerconfigjson" in plan.output
    assert api.secret_data("db-env", "default")["DB_PASSWORD"] == b"old-password"  # --plan changed nothing
    api.clear_requests()
    assert sr.sync().exit_code == 0
    assert api.secret_data("db-env", "default")["DB_PASSWORD"] == new.encode()
    assert [r.method for r in api.write_requests] == ["PUT", "PUT"]


def test_plan_lists_creates_and_never_values(api, sr):
    password = canary()
    sr.define(definition(password))
    result = sr.sync("--plan")
    assert result.exit_code == 0, result.output
    assert "namespace default" in result.output
    assert "create" in result.output and "+DB_PASSWORD" in result.output
    assert password not in result.output
    assert api.write_requests == []


def test_unowned_secret_is_refused_then_adopted(api, sr):
    api.create_object("secrets", {"metadata": {"name": "db-env", "namespace": "default"}, "stringData": {"X": "mine"}})
    sr.define(definition(canary()))
    result = sr.sync()
    assert result.exit_code == 1
    assert "default/db-env" in result.output and "not managed by Strongroom" in result.output
    assert "--adopt" in result.output
    assert api.secret_data("db-env", "default") == {"X": b"mine"}
    assert api.secret_data("ghcr-pull", "default") is not None  # the other target still synced
    result = sr.sync("--adopt")
    assert result.exit_code == 0, result.output
    assert secret(api, "db-env")["metadata"]["labels"][MANAGED] == "strongroom"
    assert set(api.secret_data("db-env", "default")) == {"DB_USER", "DB_PASSWORD"}


def test_prune_deletes_only_owned_undeclared(api, sr):
    extra = "    extra-secret:\n      namespaces: [default]\n      data: {A: b}\n"
    sr.define(definition(canary(), extra=extra))
    assert sr.sync().exit_code == 0
    api.create_object("secrets", {"metadata": {"name": "foreign", "namespace": "default"}, "stringData": {"A": "b"}})
    sr.define(definition(canary()))
    plan = sr.sync("--plan", "--prune")
    assert "delete" in plan.output and "extra-secret" in plan.output
    assert sr.sync().exit_code == 0
    assert secret(api, "extra-secret") is not None  # without --prune nothing is deleted
    assert sr.sync("--prune").exit_code == 0
    assert secret(api, "extra-secret") is None
    assert secret(api, "foreign") is not None


def test_drift_status_and_repair(api, sr):
    sr.define(definition(canary()))
    assert sr.sync().exit_code == 0
    status = sr.status()
    assert status.exit_code == 0, status.output
    assert "2 in sync, 0 drifted" in status.output
    # edit one Secret behind Strongroom's back, delete the other
    edited = secret(api, "db-env")
    edited["data"]["DB_PASSWORD"] = base64.b64encode(b"tampered").decode()
    api.delete_object("secrets", "db-env", "default")
    api.create_object("secrets", edited, field_manager="kubectl")
    api.delete_object("secrets", "ghcr-pull", "default")
    status = sr.status()
    assert status.exit_code == 1
    assert "edited    default/db-env" in status.output
    assert "deleted   default/ghcr-pull" in status.output  # Strongroom wrote it, someone deleted it
    assert "tampered" not in status.output
    assert sr.sync().exit_code == 0
    assert sr.status().exit_code == 0
    assert api.secret_data("db-env", "default")["DB_PASSWORD"] != b"tampered"


def test_rbac_denial_in_one_namespace_is_a_partial_failure(api, sr):
    for ns in ("team-a", "team-b"):
        api.create_namespace(ns)
    sr.define(definition(canary(), namespaces='["team-*"]'))
    api.deny(verb="*", resource="secrets", namespace="team-b")
    result = sr.sync()
    assert result.exit_code == 1
    assert "team-b/db-env" in result.output and "forbidden" in result.output
    assert api.secret_data("db-env", "team-a") is not None
    api.clear_denials()
    result = sr.sync()
    assert result.exit_code == 0, result.output
    assert api.secret_data("db-env", "team-b") is not None


def test_conflict_409_is_reread_and_retried(api, sr):
    sr.define(definition("first"))
    assert sr.sync().exit_code == 0
    sr.define(definition(canary()))
    api.inject_failure("PUT", r"/secrets/db-env$", 409, times=1)
    result = sr.sync()
    assert result.exit_code == 0, result.output
    assert api.count_requests("GET", r"/secrets/db-env$") == 1  # the re-read
    assert api.count_requests("PUT", r"/secrets/db-env$") == 2


def test_429_is_retried_after_retry_after(api, sr):
    sr.define(definition(canary()))
    api.inject_failure("POST", r"/secrets$", 429, times=1, retry_after=1)
    result = sr.sync()
    assert result.exit_code == 0, result.output
    assert api.secret_data("db-env", "default") is not None
    assert api.secret_data("ghcr-pull", "default") is not None


def test_persistent_503_fails_with_clear_message(api, sr):
    sr.define(definition(canary()))
    api.inject_failure("POST", r"/secrets/?$", 503, times=None)
    result = sr.sync()
    assert result.exit_code == 1
    assert "still failing after retries" in result.output


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("    Bad_Name:\n      namespaces: [default]\n      data: {A: b}\n", "Bad_Name"),
        ("    ok-name:\n      namespaces: [default]\n      data: {'bad key': b}\n", 'data["bad key"]'),
        ("    nons:\n      data: {A: b}\n", "nons.namespaces"),
    ],
)
def test_validation_errors_before_any_request(api, sr, body, fragment):
    sr.define(definition(canary(), extra=body))
    api.clear_requests()
    result = sr.sync()
    assert result.exit_code != 0
    assert fragment in result.output
    assert api.requests == []


def test_size_limit_names_the_secret():
    from strongroom.tiers._kube_projection import _one_secret

    problems: list[str] = []
    assert _one_secret("big", {"namespaces": ["default"], "data": {"A": "x" * (1024 * 1024)}}, problems) is None
    assert problems == ["kubernetesSecrets.big: the data totals 1048577 bytes; a Secret holds at most 1048576"]


def test_immutable_change_is_delete_and_recreate(api, sr):
    sr.define(definition("one", immutable=True))
    assert sr.sync().exit_code == 0
    assert secret(api, "db-env")["immutable"] is True
    sr.define(definition("two", immutable=True))
    plan = sr.sync("--plan")
    assert "recreate" in plan.output and "immutable: delete and recreate" in plan.output
    result = sr.sync()
    assert result.exit_code == 0, result.output
    assert api.secret_data("db-env", "default")["DB_PASSWORD"] == b"two"


def _deployment(name: str, pod_spec: dict) -> dict:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def test_restart_bumps_workloads_that_use_a_changed_secret(api, sr):
    container = {"name": "c", "image": "img"}
    api.create_object(
        "deployments",
        _deployment("uses-env", {"containers": [{**container, "envFrom": [{"secretRef": {"name": "db-env"}}]}]}),
    )
    api.create_object(
        "deployments",
        _deployment("uses-pull", {"containers": [container], "imagePullSecrets": [{"name": "ghcr-pull"}]}),
    )
    api.create_object("deployments", _deployment("unrelated", {"containers": [container]}))
    sts = _deployment(
        "uses-volume", {"containers": [container], "volumes": [{"name": "v", "secret": {"secretName": "db-env"}}]}
    )
    sts["spec"]["serviceName"] = "x"
    api.create_object("statefulsets", sts)
    sr.define(definition("one"))
    assert sr.sync().exit_code == 0
    sr.define(definition("one").replace("user: app", "user: other"))  # changes db-env only
    result = sr.sync("--restart")
    assert result.exit_code == 0, result.output

    def restarted(resource, name):
        template = api.get_object(resource, name, "default")["spec"]["template"]
        return "strongroom.io/restartedAt" in (template["metadata"].get("annotations") or {})

    assert restarted("deployments", "uses-env")
    assert restarted("statefulsets", "uses-volume")
    assert not restarted("deployments", "uses-pull")  # ghcr-pull did not change
    assert not restarted("deployments", "unrelated")


def _invoke(command, args, cli_env):
    env = {**cli_env}
    return CliRunner().invoke(command, args, env=env, catch_exceptions=False)


def test_preview_up_and_down_are_idempotent(api, sr, cli_env):
    from strongroom.cli.preview import preview

    sr.define(definition(canary(), namespaces='["preview-pr-*"]'))
    args = ["up", "42", "--env", ENV, "--kubeconfig", sr.kubeconfig_path]
    result = _invoke(preview, args, cli_env)
    assert result.exit_code == 0, result.output
    namespace = api.get_object("namespaces", "preview-pr-42")
    assert namespace["metadata"]["labels"][MANAGED] == "strongroom"
    assert api.secret_data("db-env", "preview-pr-42") is not None
    api.clear_requests()
    assert _invoke(preview, args, cli_env).exit_code == 0
    assert api.write_requests == []
    down = ["down", "42", "--kubeconfig", sr.kubeconfig_path]
    result = _invoke(preview, down, cli_env)
    assert result.exit_code == 0, result.output
    assert api.get_object("namespaces", "preview-pr-42") is None
    result = _invoke(preview, down, cli_env)
    assert result.exit_code == 0 and "does not exist" in result.output


def test_preview_down_keeps_a_namespace_strongroom_did_not_create(api, sr, cli_env):
    from strongroom.cli.preview import preview

    api.create_namespace("preview-pr-7")
    api.create_object(
        "secrets", {"metadata": {"name": "theirs", "namespace": "preview-pr-7"}, "stringData": {"A": "b"}}
    )
    sr.define(definition(canary(), namespaces='["preview-pr-*"]'))
    assert _invoke(preview, ["up", "7", "--env", ENV, "--kubeconfig", sr.kubeconfig_path], cli_env).exit_code == 0
    assert _invoke(preview, ["down", "7", "--kubeconfig", sr.kubeconfig_path], cli_env).exit_code == 0
    assert api.get_object("namespaces", "preview-pr-7") is not None
    assert secret(api, "theirs", "preview-pr-7") is not None
    assert secret(api, "db-env", "preview-pr-7") is None


def test_export_writes_manifests_and_warns(api, sr, cli_env, tmp_path):
    from strongroom.cli.export import export

    password = canary()
    sr.define(definition(password, namespaces='[default, "preview-pr-*"]'))
    out = tmp_path / "manifests"
    args = [ENV, "--kubernetes", "-o", str(out), "--namespace", "preview-pr-3"]
    result = CliRunner().invoke(export, args, env=cli_env)
    assert result.exit_code == 0, result.output
    assert "do not commit" in result.stderr and "do not commit" not in result.stdout
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert files == [
        "default/db-env.yaml",
        "default/ghcr-pull.yaml",
        "preview-pr-3/db-env.yaml",
        "preview-pr-3/ghcr-pull.yaml",
    ]
    import yaml

    manifest = yaml.safe_load((out / "default" / "db-env.yaml").read_text())
    assert base64.b64decode(manifest["data"]["DB_PASSWORD"]).decode() == password
    assert manifest["metadata"]["labels"][MANAGED] == "strongroom"
    assert api.requests == []  # export never talks to the cluster
    # --sealed: the manifest on stdin, the sealed manifest on stdout
    sealer = tmp_path / "seal.py"
    sealer.write_text("import sys\ndata = sys.stdin.read()\nprint('sealed:', len(data))\n")
    sealed_out = tmp_path / "sealed"
    result = CliRunner().invoke(
        export, [ENV, "--kubernetes", "-o", str(sealed_out), "--sealed", f"{sys.executable} {sealer}"], env=cli_env
    )
    assert result.exit_code == 0, result.output
    assert "do not commit" not in result.output
    assert (sealed_out / "default" / "db-env.sealed.yaml").read_text().startswith("sealed:")


def test_each_sync_is_an_audit_event_without_values(api, sr, cli_env):
    password = canary()
    sr.define(definition(password))
    assert sr.sync().exit_code == 0
    database = next(Path(cli_env["STRONGROOM_HOME"]).rglob("*.db"))
    dump = "\n".join(sqlite3.connect(database).iterdump())
    assert password not in dump
    app = sr.service()
    try:
        events = [r.event for r in app.service().audit_log(action="sync.kubernetes")]
    finally:
        app.close()
    assert len(events) == 1
    details = dict(events[0].details)
    assert events[0].outcome == "ok" and events[0].revision == 1 and events[0].environment == ENV
    assert details["mode"] == "apply" and details["namespaces"] == "default"
    assert "default/db-env=created" in details["secrets"]
    assert password not in repr(events)


def test_real_clients_read_what_the_sync_wrote(api, sr, kubeconfig):
    """The official client and lightkube, from the kubeconfig file, see the owned Secret."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from lightkube import Client, KubeConfig
    from lightkube.resources.core_v1 import Secret

    password = canary()
    sr.define(definition(password))
    assert sr.sync().exit_code == 0
    api_client = k8s_config.new_client_from_config(config_file=kubeconfig)
    found = k8s_client.CoreV1Api(api_client).list_namespaced_secret("default", label_selector=f"{MANAGED}=strongroom")
    assert sorted(s.metadata.name for s in found.items) == ["db-env", "ghcr-pull"]
    with Client(config=KubeConfig.from_file(kubeconfig)) as light:
        got = light.get(Secret, "db-env", namespace="default")
        assert base64.b64decode(got.data["DB_PASSWORD"]).decode() == password


def test_a_declared_secret_never_synced_is_missing_not_deleted(api, sr):
    sr.define(definition(canary()))
    status = sr.status()
    assert status.exit_code == 1
    assert "missing   default/db-env: declared but never synced" in status.output
    assert "deleted" not in status.output
