"""The Kubernetes tier: sync an environment's ``kubernetesSecrets`` into Kubernetes Secrets.

``plan_kubernetes_sync`` reads the cluster and decides, per namespace and Secret, what to do;
``apply_kubernetes_sync`` does it (bounded concurrency, 409s re-read and re-planned);
``kubernetes_status`` reports drift; ``preview_up``/``preview_down`` manage preview namespaces.
For one stored environment, ``environment_status``, ``plan_environment`` and ``sync_environment``
open it, do the above on a :class:`Cluster` and audit it, returning data: the CLI
(``sync_from_cli``, ``status_from_cli``) and the web console print or render what they return.
Ownership: a Secret is Strongroom's when it has the ``app.kubernetes.io/managed-by=strongroom`` label;
nothing else is overwritten or deleted without ``--adopt``. See docs/kubernetes.md.
"""

from __future__ import annotations

__all__ = [
    "Cluster",
    "DriftEntry",
    "KubeClient",
    "KubePlan",
    "Outcome",
    "SecretChange",
    "SyncOptions",
    "SyncReport",
    "apply_kubernetes_sync",
    "environment_status",
    "kubernetes_status",
    "plan_environment",
    "plan_kubernetes_sync",
    "preview_down",
    "preview_namespace",
    "preview_up",
    "render_outcomes",
    "render_plan",
    "status_from_cli",
    "sync_environment",
    "sync_from_cli",
    "synced_secrets",
]

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from strongroom.errors import ConflictError, NotFoundError, PermissionDeniedError, StrongroomError
from strongroom.model import RevisionRef
from strongroom.tiers._kube_client import KubeClient
from strongroom.tiers._kube_projection import (
    ANNOTATION_ENVIRONMENT,
    ANNOTATION_HMAC,
    ANNOTATION_RESTARTED_AT,
    ANNOTATION_REVISION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SecretSpec,
    content_hmac,
    desired_manifest,
    live_data,
    live_hmac,
    match_namespaces,
    project_kubernetes_secrets,
)

if TYPE_CHECKING:
    from strongroom.service import Service

#: Worker threads for the per-target requests.
DEFAULT_CONCURRENCY = 16
#: From this many targets on, a progress bar is shown (when stderr is a terminal).
PROGRESS_THRESHOLD = 20
#: How many times one target is re-read and re-planned after a 409.
CONFLICT_RETRIES = 3
ANNOTATION_PREVIEW = "strongroom.io/preview"
OWNED = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


@dataclass(frozen=True)
class SyncOptions:
    plan_only: bool = False
    prune: bool = False
    adopt: bool = False
    restart: bool = False
    namespace_create: bool = False
    #: Limit the sync to these namespaces (``preview up``); ``None`` means every matched namespace.
    only_namespaces: frozenset[str] | None = None
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass
class SecretChange:
    """What happens to one Secret in one namespace. Holds no value in its ``repr``."""

    namespace: str
    name: str
    action: str  # create, update, recreate, delete, unchanged, refuse
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    reason: str = ""
    manifest: dict[str, Any] | None = field(default=None, repr=False)
    spec: SecretSpec | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class KubePlan:
    environment: str
    revision: int
    namespaces: list[str]
    create_namespaces: list[str]
    changes: list[SecretChange]

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


@dataclass(frozen=True)
class Outcome:
    """The result of one target: ``action`` is what was done (past tense) or ``failed``."""

    target: str
    action: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.action != "failed"


@dataclass(frozen=True)
class DriftEntry:
    target: str
    state: str  # in-sync, edited, deleted, missing, outdated, unowned, orphaned, error
    detail: str = ""


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Context:
    key: bytes
    environment: str
    revision: int
    adopt: bool


def _plan_target(ctx: _Context, spec: SecretSpec, namespace: str, live: Mapping[str, Any] | None) -> SecretChange:
    digest = content_hmac(ctx.key, spec, namespace)
    manifest = desired_manifest(spec, namespace, environment=ctx.environment, revision=ctx.revision, digest=digest)
    change = SecretChange(namespace, spec.name, "create", manifest=manifest, spec=spec)
    if live is None:
        change.added = tuple(sorted(spec.data))
        return change
    meta = live.get("metadata") or {}
    labels: dict[str, str] = dict(meta.get("labels") or {})
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    owned = labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
    owner_env = annotations.get(ANNOTATION_ENVIRONMENT)
    if not owned and not ctx.adopt:
        change.action = "refuse"
        change.reason = "exists and is not managed by Strongroom; pass --adopt to take it over"
        return change
    if owned and owner_env not in (None, ctx.environment) and not ctx.adopt:
        change.action = "refuse"
        change.reason = f"is managed by Strongroom for environment {owner_env}; pass --adopt to take it over"
        return change
    current = live_data(live)
    change.added = tuple(sorted(set(spec.data) - set(current)))
    change.removed = tuple(sorted(set(current) - set(spec.data)))
    change.changed = tuple(sorted(k for k in set(spec.data) & set(current) if spec.data[k] != current[k]))
    meta_changes = [f"label {k}" for k, v in spec.labels.items() if labels.get(k) != v]
    meta_changes += [f"annotation {k}" for k, v in spec.annotations.items() if annotations.get(k) != v]
    if not owned:
        meta_changes.append("ownership (adopted)")
    elif owner_env != ctx.environment:
        meta_changes.append(f"environment ({owner_env} -> {ctx.environment})")
    live_type = str(live.get("type") or "Opaque")
    if live_type != spec.type:
        meta_changes.append(f"type {live_type} -> {spec.type}")
    if bool(live.get("immutable")) != spec.immutable:
        meta_changes.append("immutable" if spec.immutable else "no longer immutable")
    change.metadata = tuple(meta_changes)
    in_sync = annotations.get(ANNOTATION_HMAC) == digest and live_hmac(ctx.key, live, spec) == digest
    if owned and owner_env == ctx.environment and in_sync:
        change.action = "unchanged"
        change.manifest = None
        return change
    data_differs = bool(change.added or change.removed or change.changed)
    if live_type != spec.type:
        change.action, change.reason = "recreate", "the type of a Secret cannot change: delete and recreate"
    elif live.get("immutable") and (data_differs or not spec.immutable):
        change.action, change.reason = "recreate", "the Secret is immutable: delete and recreate"
    else:
        change.action = "update"
        merged = manifest["metadata"]
        merged["labels"] = {**labels, **merged["labels"]}
        merged["annotations"] = {**annotations, **merged["annotations"]}
        merged["resourceVersion"] = meta.get("resourceVersion")
        if change.reason == "" and not data_differs and not change.metadata:
            change.reason = "edited in the cluster" if annotations.get(ANNOTATION_HMAC) == digest else ""
    return change


def _map(concurrency: int, func: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(func, items))


def _list_namespace_secrets(
    client: KubeClient, namespaces: Iterable[str], concurrency: int
) -> dict[str, list[dict[str, Any]] | StrongroomError]:
    def one(namespace: str) -> tuple[str, list[dict[str, Any]] | StrongroomError]:
        try:
            return namespace, client.list_secrets(namespace)
        except StrongroomError as exc:
            return namespace, exc

    return dict(_map(concurrency, one, sorted(set(namespaces))))


def _active_namespaces(client: KubeClient) -> list[str]:
    return [
        n["metadata"]["name"]
        for n in client.list_namespaces()
        if (n.get("status") or {}).get("phase", "Active") != "Terminating"
    ]


def plan_kubernetes_sync(
    client: KubeClient,
    specs: list[SecretSpec],
    *,
    key: bytes,
    environment: str,
    revision: int,
    options: SyncOptions = SyncOptions(),
) -> KubePlan:
    """Read the cluster (namespaces, then each target namespace's Secrets) and plan every target."""
    ctx = _Context(key, environment, revision, options.adopt)
    existing = set(_active_namespaces(client))
    targets: list[tuple[SecretSpec, str]] = []
    missing: set[str] = set()
    for spec in specs:
        for namespace in match_namespaces(spec.namespaces, existing):
            if options.only_namespaces is not None and namespace not in options.only_namespaces:
                continue
            targets.append((spec, namespace))
            if namespace not in existing:
                missing.add(namespace)
    create_namespaces = sorted(missing) if options.namespace_create else []
    listed = _list_namespace_secrets(client, {ns for _, ns in targets if ns in existing}, options.concurrency)
    changes: list[SecretChange] = []
    for spec, namespace in targets:
        if namespace in missing:
            if options.namespace_create:
                changes.append(_plan_target(ctx, spec, namespace, None))
            else:
                changes.append(
                    SecretChange(
                        namespace,
                        spec.name,
                        "refuse",
                        reason=f"namespace {namespace} does not exist; pass --namespace-create to create it",
                    )
                )
            continue
        secrets = listed[namespace]
        if isinstance(secrets, StrongroomError):
            changes.append(SecretChange(namespace, spec.name, "refuse", reason=str(secrets)))
            continue
        live = next((s for s in secrets if s["metadata"]["name"] == spec.name), None)
        changes.append(_plan_target(ctx, spec, namespace, live))
    if options.prune:
        changes.extend(_plan_prune(client, environment, targets, listed, options))
    changes.sort(key=lambda c: (c.namespace, c.name))
    return KubePlan(environment, revision, sorted({ns for _, ns in targets}), create_namespaces, changes)


def _owned_secrets(
    client: KubeClient, listed: Mapping[str, list[dict[str, Any]] | StrongroomError]
) -> list[dict[str, Any]]:
    """Every Secret Strongroom owns, cluster-wide (one list); without that right, those already listed."""
    try:
        return client.list_secrets(None, OWNED)
    except PermissionDeniedError:
        found: list[dict[str, Any]] = []
        for secrets in listed.values():
            if not isinstance(secrets, StrongroomError):
                found.extend(
                    s for s in secrets if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
                )
        return found


def _plan_prune(
    client: KubeClient,
    environment: str,
    targets: list[tuple[SecretSpec, str]],
    listed: Mapping[str, list[dict[str, Any]] | StrongroomError],
    options: SyncOptions,
) -> list[SecretChange]:
    declared = {(ns, spec.name) for spec, ns in targets}
    out = []
    for secret in _owned_secrets(client, listed):
        meta = secret["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if (meta.get("annotations") or {}).get(ANNOTATION_ENVIRONMENT) != environment:
            continue
        if (namespace, name) in declared:
            continue
        if options.only_namespaces is not None and namespace not in options.only_namespaces:
            continue
        keys = tuple(sorted((secret.get("data") or {}).keys()))
        out.append(SecretChange(namespace, name, "delete", removed=keys, reason="no longer declared (--prune)"))
    return out


# --------------------------------------------------------------------------- applying


def _apply_change(client: KubeClient, ctx: _Context, change: SecretChange) -> Outcome:
    target = change.target
    try:
        for _attempt in range(CONFLICT_RETRIES + 1):
            try:
                return _apply_once(client, change)
            except ConflictError:
                if change.spec is None:
                    raise
                live = client.get_secret(change.namespace, change.name)
                change = _plan_target(ctx, change.spec, change.namespace, live)
        return Outcome(target, "failed", "kept conflicting with concurrent changes; run the sync again")
    except StrongroomError as exc:
        return Outcome(target, "failed", str(exc))


def _apply_once(client: KubeClient, change: SecretChange) -> Outcome:
    target = change.target
    if change.action == "refuse":
        return Outcome(target, "failed", change.reason)
    if change.action == "unchanged":
        return Outcome(target, "unchanged")
    if change.action == "delete":
        with contextlib.suppress(NotFoundError):
            client.delete_secret(change.namespace, change.name)
        return Outcome(target, "deleted")
    assert change.manifest is not None
    if change.action == "create":
        client.create_secret(change.manifest)
        return Outcome(target, "created")
    if change.action == "recreate":
        with contextlib.suppress(NotFoundError):
            client.delete_secret(change.namespace, change.name)
        client.create_secret(change.manifest)
        return Outcome(target, "recreated", change.reason)
    client.replace_secret(change.manifest)
    return Outcome(target, "updated")


def apply_kubernetes_sync(
    client: KubeClient,
    plan: KubePlan,
    *,
    key: bytes,
    options: SyncOptions = SyncOptions(),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Carry out ``plan``; every target gets an :class:`Outcome` (a failure does not stop the others)."""
    ctx = _Context(key, plan.environment, plan.revision, options.adopt)
    outcomes: list[Outcome] = []
    failed_namespaces: dict[str, str] = {}
    for namespace in plan.create_namespaces:
        try:
            client.create_namespace(namespace, OWNED, {ANNOTATION_ENVIRONMENT: plan.environment})
            outcomes.append(Outcome(f"namespace/{namespace}", "created"))
        except ConflictError:
            outcomes.append(Outcome(f"namespace/{namespace}", "unchanged", "already exists"))
        except StrongroomError as exc:
            failed_namespaces[namespace] = str(exc)
            outcomes.append(Outcome(f"namespace/{namespace}", "failed", str(exc)))

    def run(change: SecretChange) -> Outcome:
        if change.namespace in failed_namespaces:
            outcome = Outcome(change.target, "failed", f"namespace {change.namespace} could not be created")
        else:
            outcome = _apply_change(client, ctx, change)
        if on_done is not None:
            on_done(outcome)
        return outcome

    results: list[Outcome] = _map(options.concurrency, run, plan.changes)
    outcomes.extend(results)
    if options.restart:
        changed: dict[str, set[str]] = {}
        for change, outcome in zip(plan.changes, results, strict=True):
            if outcome.action in ("created", "updated", "recreated"):
                changed.setdefault(change.namespace, set()).add(change.name)
        outcomes.extend(restart_workloads(client, changed, clock().strftime("%Y-%m-%dT%H:%M:%SZ"), options.concurrency))
    return outcomes


# --------------------------------------------------------------------------- restarts


def secret_references(workload: Mapping[str, Any]) -> set[str]:
    """The Secret names a Deployment's or StatefulSet's pod template uses (env, envFrom, volumes, pull secrets)."""
    pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    names: set[str] = set()
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        for env in container.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            if ref:
                names.add(ref)
        for source in container.get("envFrom") or []:
            ref = (source.get("secretRef") or {}).get("name")
            if ref:
                names.add(ref)
    for volume in pod.get("volumes") or []:
        ref = (volume.get("secret") or {}).get("secretName")
        if ref:
            names.add(ref)
        for source in (volume.get("projected") or {}).get("sources") or []:
            ref = (source.get("secret") or {}).get("name")
            if ref:
                names.add(ref)
    for pull in pod.get("imagePullSecrets") or []:
        if pull.get("name"):
            names.add(pull["name"])
    return names


def restart_workloads(
    client: KubeClient, changed: Mapping[str, set[str]], stamp: str, concurrency: int = DEFAULT_CONCURRENCY
) -> list[Outcome]:
    """Bump ``strongroom.io/restartedAt`` on the workloads that reference a changed Secret."""

    def one(namespace: str) -> list[Outcome]:
        out: list[Outcome] = []
        try:
            workloads = client.list_workloads(namespace)
        except StrongroomError as exc:
            return [Outcome(f"{namespace}/workloads", "failed", str(exc))]
        for kind, workload in workloads:
            name = workload["metadata"]["name"]
            uses = secret_references(workload) & changed[namespace]
            if not uses:
                continue
            target = f"{namespace}/{kind.lower()}/{name}"
            try:
                client.annotate_pod_template(kind, namespace, name, {ANNOTATION_RESTARTED_AT: stamp})
                out.append(Outcome(target, "restarted", f"uses {', '.join(sorted(uses))}"))
            except StrongroomError as exc:
                out.append(Outcome(target, "failed", str(exc)))
        return out

    return [o for group in _map(concurrency, one, sorted(changed)) for o in group]


# --------------------------------------------------------------------------- drift


def kubernetes_status(
    client: KubeClient,
    specs: list[SecretSpec],
    *,
    key: bytes,
    environment: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    synced: frozenset[str] = frozenset(),
) -> list[DriftEntry]:
    """Every declared target's state, and owned Secrets of ``environment`` no longer declared.

    ``synced`` holds the ``namespace/name`` targets Strongroom has written: an absent one of
    those was ``deleted``; an absent one never written is ``missing``.
    """
    ctx = _Context(key, environment, 0, adopt=False)
    existing = set(_active_namespaces(client))
    targets = [(spec, ns) for spec in specs for ns in match_namespaces(spec.namespaces, existing)]
    listed = _list_namespace_secrets(client, {ns for _, ns in targets if ns in existing}, concurrency)
    entries: list[DriftEntry] = []
    for spec, namespace in targets:
        target = f"{namespace}/{spec.name}"
        if namespace not in existing:
            entries.append(DriftEntry(target, "missing", f"namespace {namespace} does not exist"))
            continue
        secrets = listed[namespace]
        if isinstance(secrets, StrongroomError):
            entries.append(DriftEntry(target, "error", str(secrets)))
            continue
        live = next((s for s in secrets if s["metadata"]["name"] == spec.name), None)
        if live is None and target in synced:
            entries.append(DriftEntry(target, "deleted", "deleted from the cluster after Strongroom wrote it"))
            continue
        entries.append(_drift(ctx, spec, namespace, live))
    declared = {(ns, spec.name) for spec, ns in targets}
    for secret in _owned_secrets(client, listed):
        meta = secret["metadata"]
        if (meta.get("annotations") or {}).get(ANNOTATION_ENVIRONMENT) == environment and (
            meta["namespace"],
            meta["name"],
        ) not in declared:
            entries.append(
                DriftEntry(
                    f"{meta['namespace']}/{meta['name']}", "orphaned", "no longer declared (sync --prune deletes it)"
                )
            )
    return sorted(entries, key=lambda e: e.target)


def _drift(ctx: _Context, spec: SecretSpec, namespace: str, live: Mapping[str, Any] | None) -> DriftEntry:
    target = f"{namespace}/{spec.name}"
    if live is None:
        return DriftEntry(target, "missing", "declared but never synced")
    meta = live.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        return DriftEntry(target, "unowned", "exists but is not managed by Strongroom")
    recorded = annotations.get(ANNOTATION_HMAC)
    if live_hmac(ctx.key, live, spec) != recorded:
        return DriftEntry(target, "edited", "changed in the cluster since Strongroom wrote it")
    if recorded != content_hmac(ctx.key, spec, namespace):
        revision = annotations.get(ANNOTATION_REVISION, "?")
        return DriftEntry(target, "outdated", f"written from revision {revision}; the environment has changed since")
    return DriftEntry(target, "in-sync")


# --------------------------------------------------------------------------- preview namespaces


def preview_namespace(pr: int) -> str:
    return f"preview-pr-{pr}"


def preview_up(
    client: KubeClient,
    specs: list[SecretSpec],
    pr: int,
    *,
    key: bytes,
    environment: str,
    revision: int,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> tuple[KubePlan, list[Outcome]]:
    """Create ``preview-pr-N`` (labelled as Strongroom's) if missing and sync into it every Secret that selects it."""
    namespace = preview_namespace(pr)
    outcomes: list[Outcome] = []
    if client.get_namespace(namespace) is None:
        try:
            client.create_namespace(
                namespace, {**OWNED, ANNOTATION_PREVIEW: str(pr)}, {ANNOTATION_ENVIRONMENT: environment}
            )
            outcomes.append(Outcome(f"namespace/{namespace}", "created"))
        except ConflictError:
            outcomes.append(Outcome(f"namespace/{namespace}", "unchanged", "already exists"))
    else:
        outcomes.append(Outcome(f"namespace/{namespace}", "unchanged", "already exists"))
    options = SyncOptions(only_namespaces=frozenset({namespace}), concurrency=concurrency)
    plan = plan_kubernetes_sync(client, specs, key=key, environment=environment, revision=revision, options=options)
    outcomes.extend(apply_kubernetes_sync(client, plan, key=key, options=options))
    return plan, outcomes


def preview_down(client: KubeClient, pr: int) -> list[Outcome]:
    """Delete the Secrets Strongroom owns in ``preview-pr-N``, and the namespace if Strongroom created it."""
    namespace = preview_namespace(pr)
    found = client.get_namespace(namespace)
    if found is None or (found.get("status") or {}).get("phase") == "Terminating":
        return [Outcome(f"namespace/{namespace}", "unchanged", "does not exist")]
    outcomes: list[Outcome] = []
    for secret in client.list_secrets(namespace, OWNED):
        target = f"{namespace}/{secret['metadata']['name']}"
        try:
            client.delete_secret(namespace, secret["metadata"]["name"])
            outcomes.append(Outcome(target, "deleted"))
        except NotFoundError:
            outcomes.append(Outcome(target, "unchanged", "already gone"))
        except StrongroomError as exc:
            outcomes.append(Outcome(target, "failed", str(exc)))
    if (found["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
        try:
            client.delete_namespace(namespace)
            outcomes.append(Outcome(f"namespace/{namespace}", "deleted"))
        except NotFoundError:
            outcomes.append(Outcome(f"namespace/{namespace}", "unchanged", "already gone"))
        except StrongroomError as exc:
            outcomes.append(Outcome(f"namespace/{namespace}", "failed", str(exc)))
    else:
        outcomes.append(Outcome(f"namespace/{namespace}", "unchanged", "not created by Strongroom: kept"))
    return outcomes


# --------------------------------------------------------------------------- rendering


_SYMBOL = {"create": "+", "update": "~", "recreate": "-/+", "delete": "-", "unchanged": "=", "refuse": "!"}


def render_plan(plan: KubePlan) -> list[str]:
    """The plan as lines of text: per namespace, each Secret's action and changed keys. Never values."""
    lines = [f"Plan: {plan.environment}@{plan.revision} -> kubernetes"]
    for namespace in plan.create_namespaces:
        lines.append(f"  + namespace {namespace} (--namespace-create)")
    current = None
    for change in plan.changes:
        if change.namespace != current:
            current = change.namespace
            lines.append(f"namespace {current}")
        keys = [f"+{k}" for k in change.added] + [f"~{k}" for k in change.changed] + [f"-{k}" for k in change.removed]
        parts = [f"  {_SYMBOL[change.action]:>3} {change.action:<9} {change.name}"]
        if keys and change.action != "unchanged":
            parts.append(f"keys: {' '.join(keys)}")
        if change.metadata and change.action != "unchanged":
            parts.append(f"metadata: {', '.join(change.metadata)}")
        if change.reason:
            parts.append(f"({change.reason})")
        lines.append("  ".join(parts))
    counts = ", ".join(f"{plan.count(a)} to {a}" for a in ("create", "update", "recreate", "delete") if plan.count(a))
    unchanged = plan.count("unchanged")
    refused = plan.count("refuse")
    summary = counts or "nothing to change"
    summary += f"; {unchanged} unchanged" if unchanged else ""
    summary += f"; {refused} refused" if refused else ""
    lines.append(f"Summary: {summary}")
    return lines


def render_outcomes(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for outcome in outcomes:
        if outcome.action == "unchanged" and not outcome.message:
            continue
        mark = "error" if not outcome.ok else outcome.action
        lines.append(f"{mark:<10} {outcome.target}" + (f": {outcome.message}" if outcome.message else ""))
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.action] = counts.get(outcome.action, 0) + 1
    lines.append("Result: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
    return lines


# --------------------------------------------------------------------------- one environment


@dataclass(frozen=True)
class Cluster:
    """How to reach the Kubernetes API: a kubeconfig file and context. Without a file: the
    in-cluster service account, else ``KUBECONFIG``, else ``~/.kube/config``."""

    kubeconfig: str | None = None
    context: str | None = None

    @contextlib.contextmanager
    def connect(self) -> Iterator[KubeClient]:
        """A client, closed on leaving the block."""
        client = KubeClient.connect(self.kubeconfig, self.context)
        try:
            yield client
        finally:
            client.close()


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync_environment` did: the plan it carried out and one :class:`Outcome` per target."""

    plan: KubePlan
    outcomes: list[Outcome]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def _open(service: Service, ref: RevisionRef) -> tuple[list[SecretSpec], int, bytes]:
    rev = service.resolve(ref)
    value, _ev = service.open(RevisionRef(ref.env, rev.number))
    return project_kubernetes_secrets(value), rev.number, service.audit_key()


def _audit(
    service: Service,
    ref: RevisionRef,
    revision: int | None,
    mode: str,
    outcomes: Iterable[Outcome | DriftEntry],
    ok: bool,
) -> None:
    entries = list(outcomes)
    targets = sorted(f"{e.target}={e.action if isinstance(e, Outcome) else e.state}" for e in entries)
    namespaces = sorted({e.target.split("/", 1)[0] for e in entries if not e.target.startswith("namespace/")})
    event = service.event(
        "sync.kubernetes",
        env=ref.env,
        revision=revision,
        outcome="ok" if ok else "error",
        details=[("mode", mode), ("namespaces", ",".join(namespaces)), ("secrets", ";".join(targets))],
    )
    service.record(event)


_WRITTEN = frozenset({"created", "updated", "recreated", "unchanged"})


def _state_key(environment: str) -> str:
    return f"kubernetes:{environment}"


def synced_secrets(service: Service, environment: str) -> frozenset[str]:
    """The ``namespace/name`` Secrets Strongroom has written for ``environment`` (kept in the store)."""
    raw = service.store.get_meta(_state_key(environment))
    return frozenset(json.loads(raw)) if raw else frozenset()


def _remember(service: Service, environment: str, outcomes: list[Outcome]) -> None:
    targets = set(synced_secrets(service, environment))
    for outcome in outcomes:
        if outcome.target.startswith("namespace/") or "/" not in outcome.target:
            continue
        if outcome.action in _WRITTEN:
            targets.add(outcome.target)
        elif outcome.action == "deleted":
            targets.discard(outcome.target)
    service.store.set_meta(_state_key(environment), json.dumps(sorted(targets)))


def environment_status(service: Service, ref: RevisionRef, cluster: Cluster) -> list[DriftEntry]:
    """Open ``ref`` and compare it with the cluster (:func:`kubernetes_status`); audited as a ``status``."""
    specs, revision, key = _open(service, ref)
    environment = str(ref.env)
    with cluster.connect() as client:
        entries = kubernetes_status(
            client, specs, key=key, environment=environment, synced=synced_secrets(service, environment)
        )
    _audit(service, ref, revision, "status", entries, all(e.state == "in-sync" for e in entries))
    return entries


def plan_environment(
    service: Service, ref: RevisionRef, cluster: Cluster, options: SyncOptions = SyncOptions()
) -> KubePlan:
    """Open ``ref`` and plan its sync without changing anything; audited as a ``plan``."""
    specs, revision, key = _open(service, ref)
    environment = str(ref.env)
    with cluster.connect() as client:
        plan = plan_kubernetes_sync(client, specs, key=key, environment=environment, revision=revision, options=options)
    refused = plan.count("refuse") > 0
    _audit(service, ref, revision, "plan", [Outcome(c.target, c.action) for c in plan.changes], not refused)
    return plan


def sync_environment(
    service: Service,
    ref: RevisionRef,
    cluster: Cluster,
    options: SyncOptions = SyncOptions(),
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_planned: Callable[[KubePlan], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> SyncReport:
    """Open ``ref``, plan and apply its sync (``options.plan_only`` is not read: see
    :func:`plan_environment`), remember what was written and audit it as an ``apply``.

    ``on_planned`` sees the plan before anything is written; ``on_done`` each target's outcome.
    """
    specs, revision, key = _open(service, ref)
    environment = str(ref.env)
    with cluster.connect() as client:
        plan = plan_kubernetes_sync(client, specs, key=key, environment=environment, revision=revision, options=options)
        if on_planned is not None:
            on_planned(plan)
        outcomes = apply_kubernetes_sync(client, plan, key=key, options=options, clock=clock, on_done=on_done)
    report = SyncReport(plan, outcomes)
    _remember(service, environment, outcomes)
    _audit(service, ref, revision, "apply", outcomes, report.ok)
    return report


# --------------------------------------------------------------------------- CLI entry points


def _cluster(options: Mapping[str, Any]) -> Cluster:
    return Cluster(options.get("kubeconfig"), options.get("kube_context"))


def _echo(lines: Iterable[str], *, err: bool = False) -> None:
    import click

    for line in lines:
        click.echo(line, err=err)


class _ProgressBar:
    """A Rich progress bar on stderr, shown once the plan is known, when stderr is a terminal and
    there are many targets."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def start(self, plan: KubePlan) -> None:
        if len(plan.changes) < PROGRESS_THRESHOLD or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task("syncing Secrets", total=len(plan.changes))
        self._bar.start()

    def advance(self, _outcome: Outcome) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def sync_from_cli(service: Service, ref: RevisionRef, options: Mapping[str, Any]) -> int:
    """``strongroom sync ENV --to kubernetes``: plan, print, apply (unless ``--plan``); the exit code."""
    opts = SyncOptions(
        plan_only=bool(options.get("plan_only")),
        prune=bool(options.get("prune")),
        adopt=bool(options.get("adopt")),
        restart=bool(options.get("restart")),
        namespace_create=bool(options.get("namespace_create")),
    )
    if opts.plan_only:
        plan = plan_environment(service, ref, _cluster(options), opts)
        _echo(render_plan(plan))
        return 1 if plan.count("refuse") else 0
    bar = _ProgressBar()
    try:
        report = sync_environment(service, ref, _cluster(options), opts, on_planned=bar.start, on_done=bar.advance)
    finally:
        bar.stop()
    _echo(render_outcomes(report.outcomes))
    if not report.plan.changes:
        _echo([f"note: {ref.env} declares no kubernetesSecrets for any existing namespace"], err=True)
    return 0 if report.ok else 1


def status_from_cli(service: Service, ref: RevisionRef, options: Mapping[str, Any]) -> int:
    """``strongroom sync status ENV --to kubernetes``: print drift; exit 1 when there is any."""
    entries = environment_status(service, ref, _cluster(options))
    drift = [e for e in entries if e.state != "in-sync"]
    for entry in entries:
        _echo([f"{entry.state:<9} {entry.target}" + (f": {entry.detail}" if entry.detail else "")])
    _echo([f"{len(entries) - len(drift)} in sync, {len(drift)} drifted"])
    return 1 if drift else 0


def preview_up_from_cli(service: Service, pr: int, ref: RevisionRef, options: Mapping[str, Any]) -> int:
    specs, revision, key = _open(service, ref)
    matching = [s for s in specs if match_namespaces(s.namespaces, [preview_namespace(pr)])]
    if not matching:
        _echo([f"note: no Secret of {ref.env} selects namespace {preview_namespace(pr)}"], err=True)
    with _cluster(options).connect() as client:
        _plan, outcomes = preview_up(client, specs, pr, key=key, environment=str(ref.env), revision=revision)
    ok = all(o.ok for o in outcomes)
    _echo(render_outcomes(outcomes))
    _audit(service, ref, revision, f"preview-up {pr}", outcomes, ok)
    return 0 if ok else 1


def preview_down_from_cli(service: Service, pr: int, options: Mapping[str, Any]) -> int:
    with _cluster(options).connect() as client:
        outcomes = preview_down(client, pr)
    ok = all(o.ok for o in outcomes)
    _echo(render_outcomes(outcomes))
    event = service.event(
        "sync.kubernetes",
        outcome="ok" if ok else "error",
        details=[
            ("mode", f"preview-down {pr}"),
            ("namespaces", preview_namespace(pr)),
            ("secrets", ";".join(sorted(f"{o.target}={o.action}" for o in outcomes))),
        ],
    )
    service.record(event)
    return 0 if ok else 1
