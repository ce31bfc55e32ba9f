"""``strongroom doctor`` and the verifiers, against local servers: GitHub, a registry, DigitalOcean,
Kubernetes, PostgreSQL and SMTP. Canary values prove that no secret reaches the output."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from strongroom.rotation.doctor import DoctorSettings, _Context, check_store_token
from strongroom.rotation.verifiers import (
    HttpBearerVerifier,
    PostgresLoginVerifier,
    RegistryLoginVerifier,
    SmtpLoginVerifier,
)
from strongroom.testing._uvicorn import ThreadedServer
from strongroom.testing.github_api import GitHubAPIServer
from strongroom.testing.kube_api import KubeAPIServer

ENV = "acme/Prod"


def canary(prefix: str = "") -> str:
    return f"{prefix}CANARY{uuid.uuid4().hex}"


# --------------------------------------------------------------------------- local fakes


class FakeRegistry:
    """A Docker registry v2 with a token service: ``/v2/`` wants a Bearer token issued by ``/token``."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}
        self.tokens: set[str] = set()

    def _basic_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return self.users.get(user) == password

    async def v2(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.tokens:
            return JSONResponse({})
        realm = f"{request.base_url}token"
        return JSONResponse(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status_code=401,
            headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="fake-registry"'},
        )

    async def token(self, request: Request) -> Response:
        if request.query_params.get("service") != "fake-registry" or not self._basic_ok(request):
            return JSONResponse({"errors": [{"code": "DENIED"}]}, status_code=401)
        issued = uuid.uuid4().hex
        self.tokens.add(issued)
        return JSONResponse({"token": issued})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v2/", self.v2), Route("/token", self.token)])


class FakeBearerAPI:
    """DigitalOcean's ``/v2/account`` and ``/v2/domains`` and Strongroom's ``/api/v1/environments``."""

    def __init__(self) -> None:
        self.full: set[str] = set()  # may read the account and manage domains
        self.account_only: set[str] = set()

    def _token(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        return header[7:] if header.startswith("Bearer ") else ""

    async def account(self, request: Request) -> Response:
        token = self._token(request)
        if token in self.full or token in self.account_only:
            return JSONResponse({"account": {"status": "active"}})
        return JSONResponse({"id": "unauthorized"}, status_code=401)

    async def domains(self, request: Request) -> Response:
        token = self._token(request)
        if token in self.full:
            return JSONResponse({"domains": []})
        status = 403 if token in self.account_only else 401
        return JSONResponse({"id": "forbidden"}, status_code=status)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/account", self.account),
                Route("/v2/domains", self.domains),
                Route("/api/v1/environments", self.account),
            ]
        )


@pytest.fixture(scope="module")
def registry() -> Iterator[tuple[FakeRegistry, str]]:
    fake = FakeRegistry()
    server = ThreadedServer(fake.app(), name="fake registry")
    url = server.start()
    try:
        yield fake, url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bearer_api() -> Iterator[tuple[FakeBearerAPI, str]]:
    fake = FakeBearerAPI()
    server = ThreadedServer(fake.app(), name="fake bearer API")
    url = server.start()
    try:
        yield fake, url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubAPIServer]:
    with GitHubAPIServer() as server:
        server.api.add_repository("acme/app", id=101)
        yield server


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as server:
        yield server


# --------------------------------------------------------------------------- verifiers


def test_http_bearer_verifier(bearer_api):
    fake, url = bearer_api
    good, bad = canary(), canary()
    fake.full.add(good)
    ok = HttpBearerVerifier().verify(good, {"url": f"{url}/v2/account"})
    assert ok.ok and "200" in ok.detail
    refused = HttpBearerVerifier().verify(bad, {"url": f"{url}/v2/account"})
    assert not refused.ok and "401" in refused.detail
    assert good not in ok.detail and bad not in refused.detail


def test_registry_verifier_token_flow(registry):
    fake, url = registry
    password = canary()
    fake.users["octocat"] = password
    ok = RegistryLoginVerifier().verify(password, {"registry": url, "username": "octocat"})
    assert ok.ok, ok.detail
    assert "token login" in ok.detail
    wrong = canary()
    refused = RegistryLoginVerifier().verify(wrong, {"registry": url, "username": "octocat"})
    assert not refused.ok and "refused octocat (401)" in refused.detail
    assert password not in ok.detail + refused.detail and wrong not in refused.detail


def test_registry_verifier_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = RegistryLoginVerifier(timeout=2).verify("x", {"registry": f"http://127.0.0.1:{port}", "username": "u"})
    assert not result.ok and "could not be reached" in result.detail


def test_postgres_login_verifier(postgres_server_url):
    # The local server trusts 127.0.0.1, so any password logs in: a wrong role is what fails.
    password = canary()
    ok = PostgresLoginVerifier(timeout=5).verify(password, {"user": "postgres", "host": "127.0.0.1"})
    assert ok.ok, ok.detail
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    refused = PostgresLoginVerifier(timeout=5).verify(password, {"user": role, "host": "127.0.0.1"})
    assert not refused.ok and role in refused.detail
    assert password not in ok.detail + refused.detail


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, dict[str, str]]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    users: dict[str, str] = {}

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            return AuthResult(success=users.get(user) == password, handled=False)
        return AuthResult(success=False, handled=False)

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],  # smtplib tries each offered mechanism; one is enough here
    )
    controller.start()
    try:
        yield port, users
    finally:
        controller.stop()


def test_smtp_verifier(smtp_server):
    port, users = smtp_server
    password = canary()
    users["alerts@example.com"] = password
    spec = {"host": "127.0.0.1", "port": port, "user": "alerts@example.com"}
    ok = SmtpLoginVerifier(timeout=5).verify(password, spec)
    assert ok.ok, ok.detail
    wrong = canary()
    refused = SmtpLoginVerifier(timeout=5).verify(wrong, spec)
    assert not refused.ok and "rejected" in refused.detail
    no_user = SmtpLoginVerifier(timeout=5).verify("", {"host": "127.0.0.1", "port": port})
    assert no_user.ok and "EHLO" in no_user.detail
    assert password not in ok.detail + refused.detail and wrong not in refused.detail


# --------------------------------------------------------------------------- store token


@pytest.mark.parametrize("valid", [True, False])
def test_store_token_check(bearer_api, valid):
    fake, url = bearer_api
    token = canary("sr_")
    if valid:
        fake.full.add(token)
    settings = DoctorSettings(environ={"STRONGROOM_URL": url, "STRONGROOM_TOKEN": token})
    finding = check_store_token(_Context(None, None, settings, None))  # type: ignore[arg-type]
    assert finding.status == ("pass" if valid else "fail")
    assert token not in finding.detail


def test_store_token_skipped_without_url():
    finding = check_store_token(_Context(None, None, DoctorSettings(environ={}), None))  # type: ignore[arg-type]
    assert finding.status == "skipped" and "STRONGROOM_URL" in finding.detail


# --------------------------------------------------------------------------- the command


def definition(
    *, gh_token: str, wf_token: str, do_token: str, registry_url: str, pull_password: str, last_rotated: str | None
) -> str:
    rotated = f"\n    lastRotated: {last_rotated}" if last_rotated else ""
    return f"""
values:
  pulumiConfig:
    "gateway:digitaloceanDnsToken":
      fn::secret: {do_token}
  registry:
    password:
      fn::secret: {pull_password}
  kubernetesSecrets:
    ghcr-pull:
      namespaces: [default]
      dockerconfigjson:
        registry: {registry_url}
        username: octocat
        password: ${{registry.password}}
  githubSecrets:
    token:
      fn::secret: {gh_token}
    repositories:
      acme/app:
        secrets:
          WORKFLOW_DISPATCH_TOKEN:
            fn::secret: {wf_token}
rotation:
  pulumiConfig["gateway:digitaloceanDnsToken"]:
    name: DNS token
    schedule: annually{rotated}
"""


@pytest.fixture
def world(tmp_path, cli_env, run_cli, github, registry, bearer_api, kube):
    """An initialised store, the servers, and ``world.run(text, *extra)`` to define ENV and run doctor."""
    from strongroom.cli.context import AppContext
    from strongroom.cli.doctor import doctor
    from strongroom.model import EnvRef

    assert run_cli("init").exit_code == 0
    kube.api.reset()
    kubeconfig = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
    env = {k: v for k, v in cli_env.items() if v is not None}

    class World:
        def __init__(self) -> None:
            self.registry, self.registry_url = registry
            self.bearer, self.bearer_url = bearer_api
            self.github = github
            self.kubeconfig = kubeconfig
            self.kube = kube

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

        def sync(self) -> None:
            result = run_cli("sync", ENV, "--to", "kubernetes", "--kubeconfig", kubeconfig)
            assert result.exit_code == 0, result.output

        def doctor(self, *extra: str, kube: bool = True):
            args = [
                ENV,
                "--github-api-url",
                github.url,
                "--digitalocean-api-url",
                self.bearer_url,
                *(["--kubeconfig", kubeconfig] if kube else []),
                *extra,
            ]
            return CliRunner().invoke(doctor, args, env=cli_env, catch_exceptions=False)

        def audit(self) -> list:
            app = AppContext(env)
            try:
                return list(app.service().store.list_audit(action="doctor"))
            finally:
                app.close()

    return World()


def _healthy(world) -> dict[str, str]:
    values = {
        "gh_token": canary("ghp_"),
        "wf_token": canary("ghp_"),
        "do_token": canary("dop_v1_"),
        "pull_password": canary("ghp_"),
    }
    world.github.api.add_token(values["gh_token"], scopes={"repo"})
    world.github.api.add_token(values["wf_token"], scopes={"repo", "workflow"})
    world.bearer.full.add(values["do_token"])
    world.registry.users["octocat"] = values["pull_password"]
    return values


def test_all_checks_pass(world):
    values = _healthy(world)
    world.define(definition(**values, registry_url=world.registry_url, last_rotated=None))
    world.sync()
    result = world.doctor("--format", "json")
    assert result.exit_code == 0, result.output
    by_check = {f["check"]: f for f in json.loads(result.output)}
    assert {c: f["status"] for c, f in by_check.items()} == {
        "github-secrets": "pass",
        "image-pull-secret": "pass",
        "store-token": "skipped",
        "workflow-dispatch": "pass",
        "dns-token": "pass",
        "kubernetes-drift": "pass",
        "rotation-overdue": "pass",
    }
    for value in values.values():
        assert value not in result.output
    events = world.audit()
    assert len(events) == 1
    event = events[0].event
    assert event.outcome == "ok" and dict(event.details)["dns-token"] == "pass"
    assert not any(v in json.dumps(event.details) for v in values.values())


def test_every_check_fails_with_cause_and_fix(world):
    values = {
        "gh_token": canary("ghp_"),
        "wf_token": canary("ghp_"),
        "do_token": canary("dop_v1_"),
        "pull_password": canary("ghp_"),
    }
    world.github.api.add_token(values["gh_token"], scopes={"read:packages"})  # cannot write secrets
    world.github.api.add_token(values["wf_token"], scopes={"repo"})  # no workflow scope
    world.bearer.account_only.add(values["do_token"])  # authenticates, cannot manage domains
    world.registry.users["octocat"] = canary()  # the stored password is not the registry's
    world.define(definition(**values, registry_url=world.registry_url, last_rotated="2000-01-01"))
    result = world.doctor()  # never synced to Kubernetes: drift
    assert result.exit_code == 1, result.output
    out = result.output
    for check in (
        "github-secrets",
        "image-pull-secret",
        "workflow-dispatch",
        "dns-token",
        "kubernetes-drift",
        "rotation-overdue",
    ):
        assert f"\n{check}: " in out, check
    assert "ImagePullBackOff / 401 Unauthorized" in out
    assert "workflow is missing" in out
    assert "likely cause:" in out and "fix:" in out
    assert "DNS token (due 2001-01-01)" in out
    assert "0 passed, 6 failed, 1 skipped" in out
    for value in values.values():
        assert value not in out
    assert world.audit()[0].event.outcome == "error"


def test_drift_after_a_cluster_edit(world):
    values = _healthy(world)
    world.define(definition(**values, registry_url=world.registry_url, last_rotated=None))
    world.sync()
    world.kube.api.delete_object("secrets", "ghcr-pull", "default")
    result = world.doctor("--format", "json")
    assert result.exit_code == 1
    (drift,) = [f for f in json.loads(result.output) if f["check"] == "kubernetes-drift"]
    assert drift["status"] == "fail" and "default/ghcr-pull deleted" in drift["detail"]
    assert drift["fix"].startswith("run `strongroom sync ENV --to kubernetes`")


def test_checks_without_inputs_are_skipped(world):
    world.define("values:\n  plain: 1\n")
    result = world.doctor(kube=False)
    assert result.exit_code == 0, result.output
    assert "0 passed, 0 failed, 7 skipped" in result.output
    assert "no --kubeconfig given" in result.output
    assert "declares no githubSecrets" in result.output


def test_unknown_environment_is_an_error(world):
    result = world.doctor()
    assert result.exit_code == 1
    assert "acme/Prod does not exist" in result.output


def test_doctor_is_reachable_from_the_strongroom_command(run_cli):
    assert run_cli("init").exit_code == 0
    assert run_cli("env", "init", "proj/env").exit_code == 0
    result = run_cli("doctor", "proj/env")
    assert result.exit_code == 0, result.stderr
    assert "skipped" in result.stdout
