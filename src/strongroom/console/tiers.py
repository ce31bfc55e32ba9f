"""Tier pages: per environment, the Kubernetes and GitHub sync status (in sync / drifted / missing), plan and sync.

The server's own environment says where the tiers are: ``STRONGROOM_KUBECONFIG`` (or
``KUBECONFIG``) and ``STRONGROOM_KUBE_CONTEXT``, or the in-cluster service account
(``KUBERNETES_SERVICE_HOST``); ``GITHUB_TOKEN`` (or a ``token`` in the projection) and
``STRONGROOM_GITHUB_API_URL``. A tier without them is shown as "not configured".
The work is the tier modules' (``environment_status``, ``plan_environment``,
``sync_environment``, the same functions ``strongroom sync`` uses); this module renders it.
"""

from __future__ import annotations

__all__ = ["TierStatus", "tier_action", "tiers_overview", "tiers_view"]

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.responses import Response

from strongroom.console.environments import env_ref
from strongroom.console.web import Ctx, FormError
from strongroom.errors import StrongroomError
from strongroom.model import EnvRef, RevisionRef

if TYPE_CHECKING:
    from strongroom.tiers.kubernetes import Cluster

TIERS = ("kubernetes", "github")
_SECTIONS = {"kubernetes": "kubernetesSecrets", "github": "githubSecrets"}
_MISSING_STATES = frozenset({"missing", "deleted"})


@dataclass
class TierStatus:
    """What one tier looks like for one environment. ``overall``: in sync, drifted, missing, not declared,
    not configured, needs the opener role, or error. ``targets``: (target, state, detail) rows."""

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


def _cluster(ctx: Ctx) -> Cluster:
    from strongroom.tiers.kubernetes import Cluster

    settings = kube_settings(ctx.state.config.environ)
    assert settings is not None
    return Cluster(*settings)


def _github_url(ctx: Ctx) -> str | None:
    return ctx.state.config.environ.get("STRONGROOM_GITHUB_API_URL") or None


def kubernetes_state(ctx: Ctx, ref: EnvRef) -> TierStatus:
    from strongroom.tiers import kubernetes

    entries = kubernetes.environment_status(ctx.service, RevisionRef(ref), _cluster(ctx))
    targets = [(e.target, e.state, e.detail) for e in entries]
    return TierStatus("kubernetes", _overall([e.state for e in entries]), targets=targets)


def github_state(ctx: Ctx, ref: EnvRef) -> TierStatus:
    from strongroom.tiers import github

    status = github.environment_status(
        ctx.service, RevisionRef(ref), api_url=_github_url(ctx), environ=ctx.state.config.environ
    )
    if not status.drift:
        return TierStatus("github", "in sync", f"GitHub matches {status.env}@{status.revision}")
    targets = [(f"{d.scope} {d.name}", d.kind, d.detail) for d in status.drift]
    return TierStatus("github", _overall([d.kind for d in status.drift]), targets=targets)


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


def _run_kubernetes(ctx: Ctx, ref: EnvRef, action: str) -> list[str]:
    from strongroom.tiers import kubernetes

    if action == "plan":
        return kubernetes.render_plan(kubernetes.plan_environment(ctx.service, RevisionRef(ref), _cluster(ctx)))
    report = kubernetes.sync_environment(ctx.service, RevisionRef(ref), _cluster(ctx), clock=ctx.state.clock)
    return kubernetes.render_outcomes(report.outcomes)


def _run_github(ctx: Ctx, ref: EnvRef, action: str) -> list[str]:
    from strongroom.tiers import github

    api_url, environ = _github_url(ctx), ctx.state.config.environ
    if action == "plan":
        plan = github.plan_environment(ctx.service, RevisionRef(ref), api_url=api_url, environ=environ)
        return github.format_plan(plan)
    report = github.sync_environment(ctx.service, RevisionRef(ref), api_url=api_url, environ=environ)
    return github.format_outcomes(report)


def tier_action(ctx: Ctx, project: str, name: str, tier: str, action: str) -> Response:
    """POST /environments/{project}/{name}/tiers/{tier}/{plan|sync}: editors only; shows the plan or the outcomes."""
    ref = env_ref(project, name)
    if tier not in TIERS or action not in ("plan", "sync"):
        raise FormError(f"unknown tier action {tier}/{action}")
    ctx.require("write", ref)
    if not _configured(ctx, tier, ref):
        raise FormError(f"{tier} is not configured on this server")
    try:
        lines = _run_kubernetes(ctx, ref, action) if tier == "kubernetes" else _run_github(ctx, ref, action)
    except StrongroomError as exc:
        lines = [f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")]
    return tiers_view(ctx, project, name, TierStatus(tier, action, lines=lines))


# --------------------------------------------------------------------------- the overview


def _import_target(written: str) -> str:
    """The environment an import names (``proj/env``), as the service resolves it: a bare name is in
    the default project; a pinned revision or tag is ignored (its latest revision stands in)."""
    from strongroom.service import DEFAULT_PROJECT

    name = written.partition("@")[0]
    return name if "/" in name else f"{DEFAULT_PROJECT}/{name}"


def _outline(ctx: Ctx, ref: EnvRef, revision: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(imports, top-level value keys) of a revision from its compiled cache, compiling only a cache
    of another version."""
    from strongroom.language.compiler import cached_outline, compile_definition

    rev = ctx.service.store.get_revision(ref, revision)
    found = cached_outline(rev.compiled)
    if found is not None:
        return found
    compiled = compile_definition(rev.definition, str(ref))
    keys = () if compiled.values is None else tuple(compiled.values.entries)
    return tuple(i.name for i in compiled.imports), keys


def projection_sources(ctx: Ctx) -> list[tuple[EnvRef, dict[str, str | None]]]:
    """Each environment the caller may read that declares a tier's projection, itself (``None``) or
    through its imports (the nearest declaring environment, breadth first).

    One pass over the latest revisions' compiled caches: nothing is evaluated, no value is
    decrypted. Imports of environments the caller may not read are not followed.
    """
    records = ctx.service.list_environments()
    own: dict[str, set[str]] = {}
    imports: dict[str, list[str]] = {}
    for record in records:
        names, keys = _outline(ctx, record.ref, record.latest_revision)
        own[str(record.ref)] = {tier for tier, section in _SECTIONS.items() if section in keys}
        imports[str(record.ref)] = [_import_target(n) for n in names]
    rows: list[tuple[EnvRef, dict[str, str | None]]] = []
    for record in records:
        start = str(record.ref)
        found: dict[str, str | None] = dict.fromkeys(own[start])
        seen = {start}
        queue = deque(imports[start])
        while queue and len(found) < len(TIERS):
            other = queue.popleft()
            if other in seen or other not in own:
                continue
            seen.add(other)
            for tier in own[other]:
                found.setdefault(tier, other)
            queue.extend(imports[other])
        if found:
            rows.append((record.ref, {tier: found[tier] for tier in TIERS if tier in found}))
    return rows


def tiers_overview(ctx: Ctx) -> Response:
    """GET /tiers: the environments that declare a Kubernetes or GitHub projection, themselves or by import."""
    environ = ctx.state.config.environ
    configured = {"kubernetes": kube_settings(environ) is not None, "github": bool(environ.get("GITHUB_TOKEN"))}
    return ctx.render("tiers_overview.html", rows=projection_sources(ctx), configured=configured)
