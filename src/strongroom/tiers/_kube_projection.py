"""The ``kubernetesSecrets`` projection: read, validate, and turn into Secret manifests.

Pure functions over an :class:`~strongroom.language.Evaluation`; no network, no lightkube. Used by
the sync (``strongroom.tiers.kubernetes``) and by ``strongroom export --kubernetes``.
"""

from __future__ import annotations

__all__ = [
    "ANNOTATION_ENVIRONMENT",
    "ANNOTATION_HMAC",
    "ANNOTATION_RESTARTED_AT",
    "ANNOTATION_REVISION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "MAX_SECRET_BYTES",
    "SecretSpec",
    "content_hmac",
    "desired_manifest",
    "is_glob",
    "live_hmac",
    "match_namespaces",
    "project_kubernetes_secrets",
]

import base64
import fnmatch
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from strongroom.errors import InvalidInputError
from strongroom.language import Evaluation
from strongroom.language.values import EvalValue, plain

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "strongroom"
ANNOTATION_ENVIRONMENT = "strongroom.io/environment"
ANNOTATION_REVISION = "strongroom.io/revision"
ANNOTATION_HMAC = "strongroom.io/content-hmac"
ANNOTATION_RESTARTED_AT = "strongroom.io/restartedAt"
#: A Secret's data may total at most 1 MiB (Kubernetes "Secrets", Restrictions).
MAX_SECRET_BYTES = 1024 * 1024
SECTION = "kubernetesSecrets"
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAMESPACE_GLOB = re.compile(r"[-a-z0-9*?\[\]!]+")
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_FIELDS = frozenset({"namespaces", "type", "data", "dockerconfigjson", "labels", "annotations", "immutable"})
_HMAC_DOMAIN = b"strongroom:kubernetes-secret:v1\x00"


@dataclass(frozen=True)
class SecretSpec:
    """One declared Secret: plaintext ``data`` (never in ``repr``), where it goes and its metadata."""

    name: str
    namespaces: tuple[str, ...]
    type: str = "Opaque"
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    immutable: bool = False

    def __repr__(self) -> str:
        return (
            f"SecretSpec(name={self.name!r}, namespaces={self.namespaces!r}, type={self.type!r}, "
            f"keys={sorted(self.data)!r}, immutable={self.immutable!r})"
        )


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def match_namespaces(patterns: Iterable[str], existing: Iterable[str]) -> list[str]:
    """The namespaces ``patterns`` select: literal names as given, globs matched against ``existing``."""
    names = set(existing)
    out: set[str] = set()
    for pattern in patterns:
        if is_glob(pattern):
            out.update(n for n in names if fnmatch.fnmatchcase(n, pattern))
        else:
            out.add(pattern)
    return sorted(out)


def _where(name: str, *rest: str) -> str:
    tail = "".join(
        f"[{json.dumps(part)}]" if not re.fullmatch(r"[A-Za-z_][\w-]*", part) else f".{part}" for part in rest
    )
    return (
        f"{SECTION}.{name}{tail}" if re.fullmatch(r"[A-Za-z_][\w.-]*", name) else f"{SECTION}[{json.dumps(name)}]{tail}"
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def _string_map(raw: Any, where: str, problems: list[str], what: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: {what} must be an object of strings")
        return {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        text = _text(value)
        if text is None:
            problems.append(f"{where}[{json.dumps(key)}]: must be a string (it is missing, unknown or an object)")
            continue
        out[str(key)] = text
    return out


def _check_metadata(labels: Mapping[str, str], annotations: Mapping[str, str], name: str, problems: list[str]) -> None:
    for key, value in labels.items():
        if not _qualified(key):
            problems.append(f"{_where(name, 'labels', key)}: not a valid label key")
        elif key == MANAGED_BY_LABEL:
            problems.append(f"{_where(name, 'labels', key)}: this label is set by Strongroom")
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            problems.append(f"{_where(name, 'labels', key)}: a label value must be at most 63 letters, digits, -, _, .")
    for key in annotations:
        if not _qualified(key):
            problems.append(f"{_where(name, 'annotations', key)}: not a valid annotation key")
        elif key.startswith("strongroom.io/"):
            problems.append(f"{_where(name, 'annotations', key)}: strongroom.io/ annotations are set by Strongroom")


def _qualified(key: str) -> bool:
    prefix, _, local = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(local) <= 63 and _QUALIFIED_NAME.fullmatch(local) is not None


def _dockerconfigjson(raw: Any, name: str, problems: list[str]) -> bytes | None:
    where = _where(name, "dockerconfigjson")
    fields = _string_map(raw, where, problems, "dockerconfigjson")
    missing = [k for k in ("registry", "username", "password") if not fields.get(k)]
    if missing:
        problems.append(f"{where}: needs {', '.join(missing)}")
        return None
    user, password, registry = fields["username"], fields["password"], fields["registry"]
    auth = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    document = {"auths": {registry: {"username": user, "password": password, "auth": auth}}}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _one_secret(name: str, raw: Any, problems: list[str]) -> SecretSpec | None:
    before = len(problems)
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        problems.append(
            f"{_where(name)}: {name!r} is not a valid Secret name (a DNS-1123 subdomain: lower-case letters, "
            "digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)"
        )
    if not isinstance(raw, dict):
        problems.append(f"{_where(name)}: must be an object with namespaces and data")
        return None
    for unknown in sorted(set(raw) - _FIELDS):
        problems.append(f"{_where(name, unknown)}: unknown field (expected one of {', '.join(sorted(_FIELDS))})")
    namespaces_raw = raw.get("namespaces")
    if isinstance(namespaces_raw, str):
        namespaces_raw = [namespaces_raw]
    namespaces: list[str] = []
    if not isinstance(namespaces_raw, list) or not namespaces_raw:
        problems.append(f"{_where(name, 'namespaces')}: give a list of namespace names or globs")
    else:
        for item in namespaces_raw:
            ok = isinstance(item, str) and (
                _NAMESPACE_GLOB.fullmatch(item) if is_glob(item) else len(item) <= 63 and _DNS1123_LABEL.fullmatch(item)
            )
            if not ok:
                problems.append(
                    f"{_where(name, 'namespaces')}: {item!r} is not a namespace name (DNS-1123 label) or glob"
                )
            else:
                namespaces.append(item)
    dockerconfig = raw.get("dockerconfigjson")
    secret_type = raw.get("type", DOCKERCONFIGJSON if dockerconfig is not None else "Opaque")
    if not isinstance(secret_type, str) or not secret_type:
        problems.append(f"{_where(name, 'type')}: must be a Secret type such as Opaque")
        secret_type = "Opaque"
    data = {k: v.encode() for k, v in _string_map(raw.get("data"), _where(name, "data"), problems, "data").items()}
    if dockerconfig is not None:
        if secret_type != DOCKERCONFIGJSON:
            problems.append(f"{_where(name, 'dockerconfigjson')}: only for type {DOCKERCONFIGJSON}")
        encoded = _dockerconfigjson(dockerconfig, name, problems)
        if encoded is not None:
            data[".dockerconfigjson"] = encoded
    elif secret_type == DOCKERCONFIGJSON and ".dockerconfigjson" not in data:
        problems.append(f"{_where(name)}: type {DOCKERCONFIGJSON} needs a dockerconfigjson entry")
    for key in data:
        if not _DATA_KEY.fullmatch(key) or key in (".", "..") or key.startswith(".."):
            problems.append(f"{_where(name, 'data', key)}: a key must match [-._a-zA-Z0-9]+ (and not be . or ..)")
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > MAX_SECRET_BYTES:
        problems.append(f"{_where(name)}: the data totals {size} bytes; a Secret holds at most {MAX_SECRET_BYTES}")
    labels = _string_map(raw.get("labels"), _where(name, "labels"), problems, "labels")
    annotations = _string_map(raw.get("annotations"), _where(name, "annotations"), problems, "annotations")
    _check_metadata(labels, annotations, name, problems)
    immutable = raw.get("immutable", False)
    if not isinstance(immutable, bool):
        problems.append(f"{_where(name, 'immutable')}: must be true or false")
        immutable = False
    if len(problems) > before:
        return None
    return SecretSpec(name, tuple(namespaces), secret_type, data, labels, annotations, immutable)


def project_kubernetes_secrets(ev: Evaluation | EvalValue) -> list[SecretSpec]:
    """``values.kubernetesSecrets`` as validated :class:`SecretSpec` s (plaintext inside).

    Every problem is found before anything is sent; they are raised together as one
    :class:`InvalidInputError` whose message names each offending entry (never a value).
    """
    root_value = ev.value if isinstance(ev, Evaluation) else ev
    root = root_value.get(SECTION) if isinstance(root_value, EvalValue) else None
    if root is None:
        return []
    raw = plain(root)
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{SECTION} must be an object of Secret names", hint="see docs/kubernetes.md")
    problems: list[str] = []
    specs = [spec for name, body in raw.items() if (spec := _one_secret(str(name), body, problems)) is not None]
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise InvalidInputError(f"invalid {SECTION}: {shown}", hint="see docs/kubernetes.md; nothing was sent")
    return specs


def _canonical(
    namespace: str,
    name: str,
    secret_type: str,
    immutable: bool,
    data: Mapping[str, bytes],
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> bytes:
    document = {
        "namespace": namespace,
        "name": name,
        "type": secret_type,
        "immutable": immutable,
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
        "labels": dict(labels),
        "annotations": dict(annotations),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def content_hmac(key: bytes, spec: SecretSpec, namespace: str) -> str:
    """The keyed HMAC of what Strongroom writes for ``spec`` in ``namespace`` (the ``content-hmac`` annotation)."""
    body = _canonical(namespace, spec.name, spec.type, spec.immutable, spec.data, spec.labels, spec.annotations)
    return "hmac-sha256:" + hmac.new(key, _HMAC_DOMAIN + body, hashlib.sha256).hexdigest()


def live_data(live: Mapping[str, Any]) -> dict[str, bytes]:
    """A live Secret's ``data``, decoded (undecodable entries become empty)."""
    out: dict[str, bytes] = {}
    for k, v in (live.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v or "", validate=True)
        except ValueError:
            out[k] = b""
    return out


def live_hmac(key: bytes, live: Mapping[str, Any], spec: SecretSpec) -> str:
    """The HMAC of a live Secret, over the same fields :func:`content_hmac` covers for ``spec``.

    Labels and annotations count only for the keys ``spec`` declares, so that other tools may add
    their own without it counting as drift.
    """
    meta = live.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k in spec.labels}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in spec.annotations}
    body = _canonical(
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str(live.get("type") or "Opaque"),
        bool(live.get("immutable")),
        live_data(live),
        labels,
        annotations,
    )
    return "hmac-sha256:" + hmac.new(key, _HMAC_DOMAIN + body, hashlib.sha256).hexdigest()


def desired_manifest(
    spec: SecretSpec, namespace: str, *, environment: str, revision: int, digest: str
) -> dict[str, Any]:
    """The Secret object Strongroom writes (``data`` base64-encoded, as the API expects)."""
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": spec.name,
            "namespace": namespace,
            "labels": {**spec.labels, MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": {
                **spec.annotations,
                ANNOTATION_ENVIRONMENT: environment,
                ANNOTATION_REVISION: str(revision),
                ANNOTATION_HMAC: digest,
            },
        },
        "type": spec.type,
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(spec.data.items())},
    }
    if spec.immutable:
        manifest["immutable"] = True
    return manifest
