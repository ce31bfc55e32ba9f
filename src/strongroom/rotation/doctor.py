"""``strongroom doctor``: one check per row of the runbook's troubleshooting table.

Each check turns a symptom people meet in production (a sync that cannot write GitHub
secrets, pods in ImagePullBackOff, cert-manager failing DNS-01, ...) into a test of the
credential behind it, run now. A failing check carries the table's likely cause and fix;
a check whose inputs are absent is ``skipped`` with the reason. Values are opened through
the service (an audited decrypt) and never appear in a finding.
"""

from __future__ import annotations

__all__ = ["CHECKS", "DoctorSettings", "Finding", "Row", "record_run", "run_doctor"]

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from strongroom.errors import StrongroomError
from strongroom.model import EnvRef, RevisionRef
from strongroom.rotation.verifiers import HttpBearerVerifier, RegistryLoginVerifier

if TYPE_CHECKING:
    from strongroom.language import EvalValue
    from strongroom.service import Service

PASS = "pass"
FAIL = "fail"
SKIPPED = "skipped"

DIGITALOCEAN_API_URL = "https://api.digitalocean.com"
DNS_TOKEN_PATH = ("pulumiConfig", "gateway:digitaloceanDnsToken")
WORKFLOW_DISPATCH_SECRET = "WORKFLOW_DISPATCH_TOKEN"


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the troubleshooting table: the symptom people see, its likely cause, the fix."""

    check: str
    symptom: str
    cause: str
    fix: str


#: The troubleshooting table, in the order checks run.
CHECKS: tuple[Row, ...] = (
    Row(
        "github-secrets",
        "Authentication failed / sync to GitHub fails",
        "the GitHub token cannot write Actions secrets (GITHUB_TOKEN permissions issue)",
        "give the token the repo scope (classic) or secrets: write (fine-grained); set it as githubSecrets.token "
        "or GITHUB_TOKEN",
    ),
    Row(
        "image-pull-secret",
        "ImagePullBackOff / 401 Unauthorized (Kubernetes pods)",
        "the registry rejects the credentials of a dockerconfigjson Secret (invalid imagePullSecret token)",
        "generate a token with read:packages, update it with `strongroom env set`, then `strongroom sync --to "
        "kubernetes`",
    ),
    Row(
        "store-token",
        "Strongroom login failed (401)",
        "STRONGROOM_TOKEN is unknown, revoked or expired",
        "create a new one with `strongroom token create` and export STRONGROOM_TOKEN",
    ),
    Row(
        "workflow-dispatch",
        "workflow_dispatch trigger fails (403 error)",
        "WORKFLOW_DISPATCH_TOKEN is invalid or lacks the workflow scope",
        "rotate the token (classic PAT with repo and workflow scopes) and sync it to GitHub",
    ),
    Row(
        "dns-token",
        "DNS records not created / cert-manager DNS-01 challenge fails",
        "gateway:digitaloceanDnsToken is invalid or cannot manage domains",
        "generate a DigitalOcean token with domain read/write, update it with `strongroom env set`, then sync",
    ),
    Row(
        "kubernetes-drift",
        "pods see old or edited values",
        "a Kubernetes Secret differs from what the environment declares (edited, deleted, outdated or never synced)",
        "run `strongroom sync ENV --to kubernetes` (add --adopt for Secrets Strongroom does not own)",
    ),
    Row(
        "rotation-overdue",
        "a credential past its rotation date",
        "a catalogued secret is overdue for rotation",
        "rotate it (`strongroom rotate ENV PATH`, or the catalog's procedure), then sync",
    ),
)
_ROWS = {row.check: row for row in CHECKS}


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check: ``pass``, ``fail`` or ``skipped``, with a line that never holds a value."""

    check: str
    status: str
    detail: str

    @property
    def row(self) -> Row:
        return _ROWS[self.check]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "status": self.status, "detail": self.detail}
        if self.status == FAIL:
            out.update(symptom=self.row.symptom, cause=self.row.cause, fix=self.row.fix)
        return out


@dataclass(frozen=True)
class DoctorSettings:
    """Where the checks go; the process environment; the clock. Transports are for tests."""

    github_api_url: str = "https://api.github.com"
    digitalocean_api_url: str = DIGITALOCEAN_API_URL
    kubeconfig: str | None = None
    kube_context: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    now: Callable[[], datetime] | None = None
    transport: httpx.BaseTransport | None = None
    timeout: float = 10.0


# --------------------------------------------------------------------------- reading the environment


def _child(node: EvalValue | None, key: str) -> EvalValue | None:
    if node is None or not isinstance(node.value, dict):
        return None
    found: EvalValue | None = node.value.get(key)
    return found


def _plain_text(node: EvalValue | None) -> str | None:
    if node is None or node.unknown or node.value is None or isinstance(node.value, dict | list):
        return None
    return node.value if isinstance(node.value, str) else str(node.value)


@dataclass
class _Context:
    service: Service
    env: EnvRef
    settings: DoctorSettings
    root: EvalValue | None


# --------------------------------------------------------------------------- the checks


def _github_token(ctx: _Context) -> tuple[Any, str | None]:
    from strongroom.tiers.github import parse_projection

    node = _child(ctx.root, "githubSecrets")
    if node is None:
        return None, None
    projection = parse_projection(node)
    token = projection.token or ctx.settings.environ.get("GITHUB_TOKEN") or None
    return projection, token


def check_github_secrets(ctx: _Context) -> Finding:
    from strongroom.tiers.github import check_secrets_permission, check_token

    name = "github-secrets"
    projection, token = _github_token(ctx)
    if projection is None:
        return Finding(name, SKIPPED, f"{ctx.env} declares no githubSecrets")
    if not projection.targets:
        return Finding(name, SKIPPED, "githubSecrets names no repository or organization")
    if token is None:
        return Finding(name, FAIL, "no GitHub token (githubSecrets.token or GITHUB_TOKEN)")
    api = ctx.settings.github_api_url
    auth = check_token(api, token, transport=ctx.settings.transport, timeout=ctx.settings.timeout)
    if not auth.ok:
        return Finding(name, FAIL, auth.message)
    failures: list[str] = []
    for target in projection.targets:
        result = check_secrets_permission(
            api, token, target.key, transport=ctx.settings.transport, timeout=ctx.settings.timeout
        )
        if not result.ok:
            failures.append(f"{target.key}: {result.message}")
    if failures:
        return Finding(name, FAIL, "; ".join(failures))
    return Finding(name, PASS, f"{auth.message}; can write secrets of {len(projection.targets)} target(s)")


def _pull_credentials(ctx: _Context) -> tuple[list[tuple[str, str, str, str]], str | None]:
    """``(secret, registry, username, password)`` of every dockerconfigjson Secret; or an error."""
    from strongroom.tiers._kube_projection import project_kubernetes_secrets

    if ctx.root is None or _child(ctx.root, "kubernetesSecrets") is None:
        return [], None
    try:
        specs = project_kubernetes_secrets(ctx.root)
    except StrongroomError as exc:
        return [], exc.message
    found = []
    for spec in specs:
        raw = spec.data.get(".dockerconfigjson")
        if raw is None:
            continue
        try:
            auths = json.loads(raw).get("auths", {})
        except (ValueError, AttributeError):
            continue
        for registry, entry in auths.items():
            user, password = entry.get("username"), entry.get("password")
            if (not user or not password) and entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            if user and password:
                found.append((spec.name, registry, user, password))
    return found, None


def check_image_pull_secret(ctx: _Context) -> Finding:
    name = "image-pull-secret"
    creds, error = _pull_credentials(ctx)
    if error is not None:
        return Finding(name, FAIL, f"kubernetesSecrets cannot be read: {error}")
    if not creds:
        return Finding(name, SKIPPED, "no kubernetesSecrets entry has dockerconfigjson credentials")
    verifier = RegistryLoginVerifier(transport=ctx.settings.transport, timeout=ctx.settings.timeout)
    results = []
    ok = True
    for secret, registry, user, password in creds:
        result = verifier.verify(password, {"registry": registry, "username": user})
        ok = ok and result.ok
        results.append(f"{secret}: {result.detail}")
    return Finding(name, PASS if ok else FAIL, "; ".join(results))


def check_store_token(ctx: _Context) -> Finding:
    name = "store-token"
    environ = ctx.settings.environ
    url, token = environ.get("STRONGROOM_URL"), environ.get("STRONGROOM_TOKEN")
    if not url:
        return Finding(name, SKIPPED, "STRONGROOM_URL is not set (no server to log in to)")
    if not token:
        return Finding(name, FAIL, "STRONGROOM_URL is set but STRONGROOM_TOKEN is not")
    verifier = HttpBearerVerifier(transport=ctx.settings.transport, timeout=ctx.settings.timeout)
    result = verifier.verify(token, {"url": url.rstrip("/") + "/api/v1/environments?limit=1"})
    return Finding(name, PASS if result.ok else FAIL, result.detail)


def _workflow_token(ctx: _Context) -> str | None:
    projection, _ = _github_token(ctx)
    if projection is None:
        return None
    for secret in projection.secrets:
        if secret.name.upper() == WORKFLOW_DISPATCH_SECRET:
            value: str = secret.value
            return value
    return None


def check_workflow_dispatch(ctx: _Context) -> Finding:
    name = "workflow-dispatch"
    token = _workflow_token(ctx)
    if token is None:
        return Finding(name, SKIPPED, f"githubSecrets declares no {WORKFLOW_DISPATCH_SECRET}")
    url = ctx.settings.github_api_url.rstrip("/") + "/user"
    try:
        with httpx.Client(transport=ctx.settings.transport, timeout=ctx.settings.timeout) as client:
            response = client.get(
                url, headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
            )
    except httpx.HTTPError as exc:
        return Finding(name, FAIL, f"GitHub could not be asked: {type(exc).__name__}")
    if not response.is_success:
        return Finding(name, FAIL, f"GET /user answered {response.status_code}: the token does not authenticate")
    header = response.headers.get("x-oauth-scopes")
    if header is None:
        return Finding(name, FAIL, "GitHub reports no OAuth scopes (not a classic token); cannot confirm workflow")
    scopes = {s.strip() for s in header.split(",") if s.strip()}
    shown = ", ".join(sorted(scopes)) or "none"
    if "workflow" not in scopes:
        return Finding(name, FAIL, f"{WORKFLOW_DISPATCH_SECRET} has scopes {shown}; workflow is missing")
    return Finding(name, PASS, f"{WORKFLOW_DISPATCH_SECRET} has scopes {shown}")


def check_dns_token(ctx: _Context) -> Finding:
    name = "dns-token"
    node = ctx.root
    for key in DNS_TOKEN_PATH:
        node = _child(node, key)
    token = _plain_text(node)
    if token is None:
        return Finding(name, SKIPPED, 'pulumiConfig["gateway:digitaloceanDnsToken"] is not set')
    api = ctx.settings.digitalocean_api_url.rstrip("/")
    verifier = HttpBearerVerifier(transport=ctx.settings.transport, timeout=ctx.settings.timeout)
    account = verifier.verify(token, {"url": f"{api}/v2/account"})
    if not account.ok:
        return Finding(name, FAIL, f"the token does not authenticate: {account.detail}")
    domains = verifier.verify(token, {"url": f"{api}/v2/domains"})
    if not domains.ok:
        return Finding(name, FAIL, f"the token cannot list domains: {domains.detail}")
    return Finding(name, PASS, "the token authenticates and can list domains")


def check_kubernetes_drift(ctx: _Context) -> Finding:
    name = "kubernetes-drift"
    if ctx.settings.kubeconfig is None:
        return Finding(name, SKIPPED, "no --kubeconfig given")
    if ctx.root is None or _child(ctx.root, "kubernetesSecrets") is None:
        return Finding(name, SKIPPED, f"{ctx.env} declares no kubernetesSecrets")
    if not hasattr(ctx.service, "audit_key"):
        return Finding(name, SKIPPED, "needs a local store (STRONGROOM_URL is set)")
    from strongroom.tiers._kube_client import KubeClient
    from strongroom.tiers._kube_projection import project_kubernetes_secrets
    from strongroom.tiers.kubernetes import kubernetes_status, synced_secrets

    try:
        specs = project_kubernetes_secrets(ctx.root)
        client = KubeClient.connect(ctx.settings.kubeconfig, ctx.settings.kube_context)
        try:
            entries = kubernetes_status(
                client,
                specs,
                key=ctx.service.audit_key(),
                environment=str(ctx.env),
                synced=synced_secrets(ctx.service, str(ctx.env)),
            )
        finally:
            client.close()
    except StrongroomError as exc:
        return Finding(name, FAIL, f"drift could not be read: {exc.message}")
    drift = [e for e in entries if e.state != "in-sync"]
    if drift:
        shown = "; ".join(f"{e.target} {e.state}" for e in drift[:10]) + ("; ..." if len(drift) > 10 else "")
        return Finding(name, FAIL, f"{len(drift)} of {len(entries)} drifted: {shown}")
    return Finding(name, PASS, f"{len(entries)} Secret(s) in sync")


def check_rotation_overdue(ctx: _Context) -> Finding:
    from strongroom.rotation.catalog import OVERDUE, read_catalog, rotation_status

    name = "rotation-overdue"
    if not hasattr(ctx.service, "audit_key"):
        return Finding(name, SKIPPED, "needs a local store (STRONGROOM_URL is set)")
    items = read_catalog(ctx.service, ctx.env)
    if not items:
        return Finding(name, SKIPPED, f"{ctx.env} has no rotation catalog")
    now = ctx.settings.now() if ctx.settings.now is not None else _utc_now()
    overdue = [s for s in rotation_status(items, now, timedelta(0)) if s.state == OVERDUE]
    if overdue:
        shown = "; ".join(
            f"{s.item.entry.name} (due {s.item.next_due.date().isoformat() if s.item.next_due else '-'})"
            for s in overdue
        )
        return Finding(name, FAIL, f"{len(overdue)} overdue: {shown}")
    return Finding(name, PASS, f"none of {len(items)} catalogued secret(s) is overdue")


def _utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


_RUNNERS: dict[str, Callable[[_Context], Finding]] = {
    "github-secrets": check_github_secrets,
    "image-pull-secret": check_image_pull_secret,
    "store-token": check_store_token,
    "workflow-dispatch": check_workflow_dispatch,
    "dns-token": check_dns_token,
    "kubernetes-drift": check_kubernetes_drift,
    "rotation-overdue": check_rotation_overdue,
}


def run_doctor(service: Service, env: EnvRef, settings: DoctorSettings) -> list[Finding]:
    """Run every check on ``env``, in table order. A check that raises is a ``fail``, never a crash."""
    root, _ev = service.open(RevisionRef(env))
    ctx = _Context(service, env, settings, root)
    findings = []
    for row in CHECKS:
        try:
            finding = _RUNNERS[row.check](ctx)
        except StrongroomError as exc:
            finding = Finding(row.check, FAIL, exc.message)
        findings.append(finding)
    return findings


def record_run(service: Service, env: EnvRef, findings: list[Finding]) -> None:
    """One audit event ``doctor`` per run: each check's status, never a value or a detail."""
    if not hasattr(service, "record"):  # a remote store audits on its side
        return
    failed = any(f.status == FAIL for f in findings)
    details = [(f.check, f.status) for f in findings]
    service.record(service.event("doctor", env=env, outcome="error" if failed else "ok", details=details))
