"""Tier pages: per environment, the Kubernetes and GitHub sync status (in sync / drifted / missing), plan and sync.

The server's own environment says where the tiers are: ``STRONGROOM_KUBECONFIG`` (or
``KUBECONFIG``) and ``STRONGROOM_KUBE_CONTEXT``, or the in-cluster service account
(``KUBERNETES_SERVICE_HOST``); ``GITHUB_TOKEN`` (or a ``token`` in the projection) and
``STRONGROOM_GITHUB_API_URL``. A tier without them is shown as "not configured".
"""

from __future__ import annotations

__all__ = ["TierStatus", "tier_action", "tiers_overview", "tiers_view"]

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.responses import Response

from strongroom.console.environments import env_ref
from strongroom.console.web import Ctx, FormError
from strongroom.errors import StrongroomError
from strongroom.model import EnvRef, RevisionRef

if TYPE_CHECKING:
    from strongroom.tiers._kube_client import KubeClient
    from strongroom.tiers._kube_projection import SecretSpec

TIERS = ("kubernetes", "github")
_SECTIONS = {"kubernetes": "kubernetesSecrets", "github": "githubSecrets"}
_MISSING_STATES = frozenset({"missing", "deleted"})


@dataclass
class TierStatus:
    """What one tier looks like for one environment. ``overall``: in sync, drifted, missing, not declared,
    not configured, needs the opener role, or error."""

    tier: str
    overall: str
    detail: str = ""
    targets: list[tuple[str, str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def kube_settings(environ: Mapping[str, str]) -> tuple[str | None, str | None] | None:
    """(kubeconfig, context) from the server's environment, or ``None`` when Kubernetes is not configured."""
    path = environ.get("STRONGROOM_KUBECONFIG") or (environ.get("KUBECONFIG") or "").split(":")[0] or None
    context = environ.get("STRONGROOM_KUBE_CONTEXT") or None
    if path is None and not environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    return path, context


def _overall(states: list[str]) -> str:
    drift = [s for s in states if s != "in-sync"]
    if not drift:
        return "in sync"
    if all(s in _MISSING_STATES for s in drift):
        return "missing"
    return "drifted"


def _kube_client(ctx: Ctx) -> KubeClient:
    from strongroom.tiers._kube_client import KubeClient

    settings = kube_settings(ctx.state.config.environ)
    assert settings is not None
    return KubeClient.connect(settings[0], settings[1])


def _kube_open(ctx: Ctx, ref: EnvRef) -> tuple[list[SecretSpec], int, bytes]:
    from strongroom.tiers._kube_projection import project_kubernetes_secrets

    rev = ctx.service.resolve(RevisionRef(ref))
    value, _ev = ctx.service.open(RevisionRef(ref, rev.number))
    return project_kubernetes_secrets(value), rev.number, ctx.service.audit_key()


def kubernetes_state(ctx: Ctx, ref: EnvRef) -> TierStatus:
    from strongroom.tiers import kubernetes as kube

    specs, revision, key = _kube_open(ctx, ref)
    client = _kube_client(ctx)
    try:
        entries = kube.kubernetes_status(
            client, specs, key=key, environment=str(ref), synced=kube.synced_secrets(ctx.service, str(ref))
        )
    finally:
        client.close()
    kube._audit(ctx.service, RevisionRef(ref), revision, "status", entries, all(e.state == "in-sync" for e in entries))
    targets = [(e.target, e.state, e.detail) for e in entries]
    return TierStatus("kubernetes", _overall([e.state for e in entries]), targets=targets)


def github_state(ctx: Ctx, ref: EnvRef) -> TierStatus:
    from strongroom.tiers.github import run_status

    lines: list[str] = []
    code = run_status(
        ctx.service, RevisionRef(ref), api_url=_github_url(ctx), environ=ctx.state.config.environ, echo=lines.append
    )
    kinds = [line.split(": ", 1)[1].split(" ", 1)[0] for line in lines if line.startswith("  ") and ": " in line]
    overall = "in sync" if code == 0 else _overall(kinds or ["drifted"])
    return TierStatus("github", overall, lines=lines)


def _github_url(ctx: Ctx) -> str | None:
    return ctx.state.config.environ.get("STRONGROOM_GITHUB_API_URL") or None


def _declared(ctx: Ctx, ref: EnvRef) -> dict[str, bool]:
    value, _ev = ctx.service.read_value(RevisionRef(ref))
    return {tier: value.get(section) is not None for tier, section in _SECTIONS.items()}


def _configured(ctx: Ctx, tier: str, ref: EnvRef) -> bool:
    environ = ctx.state.config.environ
    if tier == "kubernetes":
        return kube_settings(environ) is not None
    if environ.get("GITHUB_TOKEN"):
        return True
    value, _ev = ctx.service.read_value(RevisionRef(ref))
    section = value.get("githubSecrets")
    return section is not None and section.get("token") is not None


def _status(ctx: Ctx, ref: EnvRef, tier: str, declared: bool) -> TierStatus:
    if not declared:
        return TierStatus(tier, "not declared", f"{ref} has no {_SECTIONS[tier]}")
    if not _configured(ctx, tier, ref):
        hint = "STRONGROOM_KUBECONFIG or KUBECONFIG" if tier == "kubernetes" else "GITHUB_TOKEN"
        return TierStatus(tier, "not configured", f"the server has no credentials for {tier} (set {hint})")
    if not ctx.may("open", ref):
        return TierStatus(tier, "needs the opener role", "comparing needs the values, which only openers may read")
    try:
        return kubernetes_state(ctx, ref) if tier == "kubernetes" else github_state(ctx, ref)
    except StrongroomError as exc:
        return TierStatus(tier, "error", exc.message + (f" ({exc.hint})" if exc.hint else ""))


def tiers_view(ctx: Ctx, project: str, name: str, output: TierStatus | None = None) -> Response:
    """GET /environments/{project}/{name}/tiers."""
    ref = env_ref(project, name)
    declared = _declared(ctx, ref)
    statuses = [_status(ctx, ref, tier, declared[tier]) for tier in TIERS]
    return ctx.render("tiers.html", env=ref, statuses=statuses, output=output)


def tier_action(ctx: Ctx, project: str, name: str, tier: str, action: str) -> Response:
    """POST /environments/{project}/{name}/tiers/{tier}/{plan|sync}: editors only; shows the plan or the outcomes."""
    ref = env_ref(project, name)
    if tier not in TIERS or action not in ("plan", "sync"):
        raise FormError(f"unknown tier action {tier}/{action}")
    ctx.require("write", ref)
    if not _configured(ctx, tier, ref):
        raise FormError(f"{tier} is not configured on this server")
    lines: list[str] = []
    try:
        if tier == "kubernetes":
            lines = _kube_run(ctx, ref, plan_only=action == "plan")
        else:
            from strongroom.tiers.github import run_sync

            run_sync(
                ctx.service,
                RevisionRef(ref),
                api_url=_github_url(ctx),
                plan_only=action == "plan",
                environ=ctx.state.config.environ,
                echo=lines.append,
                progress=False,
            )
    except StrongroomError as exc:
        lines.append(f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    return tiers_view(ctx, project, name, TierStatus(tier, action, lines=lines))


def _kube_run(ctx: Ctx, ref: EnvRef, *, plan_only: bool) -> list[str]:
    from strongroom.tiers import kubernetes as kube

    specs, revision, key = _kube_open(ctx, ref)
    client = _kube_client(ctx)
    environment = str(ref)
    try:
        plan = kube.plan_kubernetes_sync(client, specs, key=key, environment=environment, revision=revision)
        if plan_only:
            refused = [c for c in plan.changes if c.action == "refuse"]
            changes = [kube.Outcome(c.target, c.action) for c in plan.changes]
            kube._audit(ctx.service, RevisionRef(ref), revision, "plan", changes, not refused)
            return kube.render_plan(plan)
        outcomes = kube.apply_kubernetes_sync(client, plan, key=key, clock=ctx.state.clock)
    finally:
        client.close()
    kube._remember(ctx.service, environment, outcomes)
    kube._audit(ctx.service, RevisionRef(ref), revision, "apply", outcomes, all(o.ok for o in outcomes))
    return kube.render_outcomes(outcomes)


def tiers_overview(ctx: Ctx) -> Response:
    """GET /tiers: the environments whose own definition declares a Kubernetes or GitHub projection."""
    rows = []
    for record in ctx.service.list_environments():
        text = ctx.service.store.get_revision(record.ref, record.latest_revision).definition
        found = [tier for tier, section in _SECTIONS.items() if section in text]
        if found:
            rows.append((record.ref, found))
    environ = ctx.state.config.environ
    configured = {"kubernetes": kube_settings(environ) is not None, "github": bool(environ.get("GITHUB_TOKEN"))}
    return ctx.render("tiers_overview.html", rows=rows, configured=configured)
