"""Compromise response: mark a secret compromised, find its blast radius and who opened it, record the incident.

The blast radius is found in memory: each affected environment (the secret's own and every
environment that imports it) is evaluated with secrets revealed, and the plaintext of each
``kubernetesSecrets`` and ``githubSecrets`` entry is compared with the secret's plaintext.
Only names, scopes and namespaces leave this module; never a value. See ``docs/rotation.md``.
"""

from __future__ import annotations

__all__ = [
    "INCIDENT_INDEX_KEY",
    "INCIDENT_PREFIX",
    "AuditTrailEntry",
    "BlastRadius",
    "GitHubCarrier",
    "KubernetesCarrier",
    "audit_trail",
    "blast_radius",
    "list_incidents",
    "mark_compromised",
    "new_incident_id",
    "save_incident",
]

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from strongroom.errors import NotFoundError, PathError, StrongroomError
from strongroom.language.paths import Path, format_path, parse_path
from strongroom.model import EnvRef, RevisionRef, Secret

if TYPE_CHECKING:
    from strongroom.language import Evaluation
    from strongroom.service import Service

INCIDENT_PREFIX = "incident:"
INCIDENT_INDEX_KEY = "incident:index"
#: Audit actions that put a secret's plaintext in someone's hands.
REVEALING_ACTIONS = ("open", "decrypt")


@dataclass(frozen=True, slots=True)
class KubernetesCarrier:
    """A declared Kubernetes Secret whose data holds the value (``keys``: which data keys)."""

    environment: str
    namespaces: tuple[str, ...]
    name: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GitHubCarrier:
    """A declared GitHub secret holding the value: ``scope`` is ``owner/repo``, ``owner/repo:env`` or ``org:login``."""

    environment: str
    scope: str
    name: str


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """Everywhere a secret's value reaches. Names only; never a value."""

    environment: str
    path: str
    importers: tuple[str, ...]
    kubernetes: tuple[KubernetesCarrier, ...]
    github: tuple[GitHubCarrier, ...]
    used_by: tuple[str, ...]
    problems: tuple[str, ...] = field(default=())

    def environments(self) -> tuple[str, ...]:
        """The secret's environment and every environment that imports it."""
        return (self.environment, *self.importers)

    def to_json(self) -> dict[str, Any]:
        return {
            "importers": list(self.importers),
            "kubernetes": [
                {"environment": k.environment, "namespaces": list(k.namespaces), "name": k.name, "keys": list(k.keys)}
                for k in self.kubernetes
            ],
            "github": [{"environment": g.environment, "scope": g.scope, "name": g.name} for g in self.github],
            "usedBy": list(self.used_by),
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class AuditTrailEntry:
    """One audited open or decrypt that revealed the secret."""

    at: str
    actor: str
    action: str
    environment: str
    client: str


def _canonical(path_text: str) -> tuple[Path, str]:
    path = parse_path(path_text)
    return path, format_path(path)


def current_plaintext(service: Service, env: EnvRef, path: Path) -> str | None:
    """The secret's plaintext now (audited by the service as a decrypt), or ``None`` if there is none."""
    try:
        value = service.read(RevisionRef(env), path, show_secrets=True)
    except (PathError, NotFoundError):
        return None
    if isinstance(value, Secret):
        return value.reveal()
    return value if isinstance(value, str) else None


def mark_compromised(service: Service, env: EnvRef, path_text: str, incident_id: str) -> str:
    """Record audit ``incident.compromised`` (path and incident id; no value); returns the actor."""
    _path, canonical = _canonical(path_text)
    event = service.event(
        "incident.compromised", env=env, outcome="ok", details=[("path", canonical), ("incident", incident_id)]
    )
    service.record(event)
    return event.actor


def _carries(data: bytes, needle: bytes) -> bool:
    return data == needle or (len(needle) >= 8 and needle in data)


def _kubernetes_carriers(environment: str, ev: Evaluation, plaintext: str) -> list[KubernetesCarrier]:
    from strongroom.tiers._kube_projection import project_kubernetes_secrets

    needle = plaintext.encode("utf-8", "surrogatepass")
    found = []
    for spec in project_kubernetes_secrets(ev):
        keys = tuple(sorted(k for k, v in spec.data.items() if _carries(v, needle)))
        if keys:
            found.append(KubernetesCarrier(environment, spec.namespaces, spec.name, keys))
    return found


def _github_carriers(environment: str, ev: Evaluation, plaintext: str) -> list[GitHubCarrier]:
    from strongroom.language.values import EvalValue
    from strongroom.tiers.github import PROJECTION, parse_projection

    root = ev.value
    node = root.get(PROJECTION) if isinstance(root, EvalValue) else None
    if node is None:
        return []
    projection = parse_projection(node)
    return [
        GitHubCarrier(environment, s.target.key, s.name)
        for s in projection.secrets
        if s.value == plaintext or (len(plaintext) >= 8 and plaintext in s.value)
    ]


def blast_radius(service: Service, env: EnvRef, path_text: str, plaintext: str | None) -> BlastRadius:
    """Importing environments, Kubernetes and GitHub entries carrying ``plaintext``, and the catalog's ``usedBy``.

    Each affected environment is evaluated (revealed) in memory; an environment that will not
    evaluate is listed in ``problems`` (by name and error, never a value) and the scan goes on.
    """
    from strongroom.rotation.catalog import importers, read_catalog

    _path, canonical = _canonical(path_text)
    importing = importers(service).get(str(env), ())
    kube: list[KubernetesCarrier] = []
    github: list[GitHubCarrier] = []
    problems: list[str] = []
    if plaintext:
        for name in (str(env), *importing):
            try:
                _rev, ev = service.evaluate(RevisionRef(EnvRef.parse(name)), reveal=True)
                kube.extend(_kubernetes_carriers(name, ev, plaintext))
                github.extend(_github_carriers(name, ev, plaintext))
            except StrongroomError as exc:
                problems.append(f"{name}: {type(exc).__name__}: {exc.message}".replace(plaintext, "[secret]"))
    used_by: list[str] = []
    for item in read_catalog(service, env):
        if item.entry.path == canonical:
            used_by.extend(u for u in item.entry.used_by if u not in used_by)
    return BlastRadius(
        str(env), canonical, tuple(importing), tuple(kube), tuple(github), tuple(used_by), tuple(problems)
    )


def _reveals(details: Mapping[str, str], canonical: str) -> bool:
    """Whether an open/decrypt event's details show that it revealed the value at ``canonical``."""
    hmac_key = f"hmac:{format_path(parse_path(canonical), 'values')}"
    if hmac_key in details:
        return True
    if any(k.startswith("hmac:") for k in details):
        return False  # value HMACs are listed, and not this one
    shown = details.get("path")
    if shown is None:
        return True  # the whole environment, recorded without HMACs: assume it was revealed
    return canonical.startswith(shown.removeprefix("values").lstrip("."))


def audit_trail(service: Service, environments: tuple[str, ...], path_text: str, since: str) -> list[AuditTrailEntry]:
    """Who opened or decrypted the secret (in its environment or an importing one) since ``since``, oldest first."""
    _path, canonical = _canonical(path_text)
    found = []
    for name in environments:
        for rec in service.audit_log(environment=name, since=since):
            ev = rec.event
            if ev.action in REVEALING_ACTIONS and _reveals(dict(ev.details), canonical):
                found.append((rec.seq, AuditTrailEntry(ev.at, ev.actor, ev.action, name, ev.client or "")))
    return [entry for _seq, entry in sorted(found, key=lambda pair: pair[0])]


def new_incident_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def save_incident(service: Service, record: Mapping[str, Any]) -> None:
    """Write ``incident:<id>`` then add the id to ``incident:index`` (store meta cannot be listed)."""
    incident_id = str(record["id"])
    service.store.set_meta(f"{INCIDENT_PREFIX}{incident_id}", json.dumps(dict(record), sort_keys=True))
    index = _index(service)
    if incident_id not in index:
        index.append(incident_id)
        service.store.set_meta(INCIDENT_INDEX_KEY, json.dumps(index))


def _index(service: Service) -> list[str]:
    raw = service.store.get_meta(INCIDENT_INDEX_KEY)
    found = json.loads(raw) if raw else []
    return [str(i) for i in found] if isinstance(found, list) else []


def list_incidents(service: Service) -> list[dict[str, Any]]:
    """Every recorded incident, in the order they were written."""
    out = []
    for incident_id in _index(service):
        raw = service.store.get_meta(f"{INCIDENT_PREFIX}{incident_id}")
        if raw:
            record = json.loads(raw)
            if isinstance(record, dict):
                out.append(record)
    return out
