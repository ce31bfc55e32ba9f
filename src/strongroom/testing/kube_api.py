"""A fake Kubernetes API server, served over real HTTP, for testing code that talks to Kubernetes.

Strongroom syncs environments into Kubernetes Secrets. Its tests cannot run a cluster, so they run
this instead: :class:`FakeKubernetesAPI` holds the state (namespaces, Secrets, Deployments,
StatefulSets) and answers requests with the documented core/v1 and apps/v1 semantics, and
:class:`KubeAPIServer` serves it on ``127.0.0.1`` under uvicorn in a background thread. Code under test
talks to it exactly as to a cluster: through the official ``kubernetes`` client, ``lightkube``, or plain
HTTP, using the kubeconfig that :meth:`KubeAPIServer.write_kubeconfig` writes::

    with KubeAPIServer() as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        sync_environment(kubeconfig=kubeconfig, namespace="default")     # the code under test
        assert server.api.secret_data("app-env", "default") == {"DATABASE_URL": b"postgres://..."}
        server.requests.clear()
        sync_environment(kubeconfig=kubeconfig, namespace="default")
        assert server.write_requests == []                                # a no-change re-sync writes nothing

What it reproduces, and the document each behaviour follows, is listed in
``docs/testing/kubernetes-api.md``. In short (``api-concepts`` is
https://kubernetes.io/docs/reference/using-api/api-concepts/, ``api-conventions`` is
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md):

* paths and verbs: api-concepts "Standard API terminology"; api-conventions "Verbs on Resources";
* errors as ``Status`` objects with the conventional codes and reasons: api-conventions
  "HTTP Status codes" and "Response Status Kind";
* ``resourceVersion`` (one global counter) and 409 on a stale one: api-conventions "Concurrency
  Control and Consistency"; api-concepts "Resource versions" and "Updates to existing resources";
* ``limit`` / ``continue``: api-concepts "Retrieving large results sets in chunks";
* the four PATCH types and server-side apply: api-concepts "Updates to existing resources" and
  https://kubernetes.io/docs/reference/using-api/server-side-apply/;
* namespace deletion: api-concepts "Resource deletion" and
  https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/.

Watches are not served (405 ``MethodNotAllowed``); nor are resources other than the four above.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_NAMESPACES",
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "APIResponse",
    "DenyRule",
    "FailureInjection",
    "FakeKubernetesAPI",
    "KubeAPIError",
    "KubeAPIServer",
    "RecordedRequest",
    "create_app",
]

import asyncio
import base64
import binascii
import copy
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

from strongroom.testing import _kube_errors as errors
from strongroom.testing._kube_errors import FieldError, KubeAPIError
from strongroom.testing._kube_fields import (
    ApplyConflict,
    ManagedEntry,
    apply_config,
    encode_managed_fields,
    record_update,
)
from strongroom.testing._kube_patch import (
    PatchError,
    PatchFormatError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from strongroom.testing._kube_selectors import FieldSelector, LabelSelector, SelectorError
from strongroom.testing._kube_validation import (
    is_dns1123_label,
    is_dns1123_subdomain,
    validate_metadata,
    validate_secret,
    validate_secret_update,
    validate_workload,
    validate_workload_update,
)

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

#: The bearer token a new :class:`FakeKubernetesAPI` accepts (and ``write_kubeconfig`` writes).
DEFAULT_TOKEN = "test-token"
#: The user that token authenticates as; it appears in ``Forbidden`` messages.
DEFAULT_USER = "system:serviceaccount:default:strongroom"
#: The namespaces a new cluster has.
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: Namespaces the NamespaceLifecycle admission plugin refuses to delete.
_PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
#: The API server's limit on a request body (3 MiB).
_MAX_REQUEST_BYTES = 3 * 1024 * 1024
#: The first ``resourceVersion`` handed out (any opaque value would do).
_FIRST_RESOURCE_VERSION = 1000
#: How long a ``continue`` token stays valid (etcd's default compaction interval).
_CONTINUE_TTL_SECONDS = 300.0
_MAX_CONTINUATIONS = 1000
#: Paths served without authentication, as the default ``system:public-info-viewer`` role allows.
_PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
_PROBE_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_BODY_TYPES = ("application/json", "application/yaml")
_GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_STRIP_MANAGED_FIELDS: list[dict[str, Any]] = [{}]

_OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)

_METADATA_ORDER = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)

_VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "strongroom-fake-kube-api",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


# --------------------------------------------------------------------------- resource types


@dataclass(frozen=True)
class _ResourceType:
    """One served resource type (api-concepts, "Standard API terminology")."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...]
    top_level_fields: frozenset[str]
    field_selectors: tuple[str, ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def verbs(self) -> list[str]:
        verbs = ["create", "delete", "get", "list", "patch", "update"]
        if self.namespaced:
            verbs.insert(1, "deletecollection")
        return verbs

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        return entry

    def unsupported_field_selector(self, name: str) -> str:
        if self.group:
            only = ", ".join(f'"{f}"' for f in self.field_selectors)
            return f'"{name}" is not a known field selector: only {only}'
        return f"field label not supported: {name}"


_WORKLOAD_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_NAMESPACES = _ResourceType(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    False,
    ("ns",),
    _WORKLOAD_FIELDS,
    ("metadata.name", "status.phase"),
)
_SECRETS = _ResourceType(
    "",
    "v1",
    "secrets",
    "secret",
    "Secret",
    True,
    (),
    frozenset({"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"}),
    ("metadata.name", "metadata.namespace", "type"),
)
_DEPLOYMENTS = _ResourceType(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    True,
    ("deploy",),
    _WORKLOAD_FIELDS,
    ("metadata.name", "metadata.namespace"),
)
_STATEFULSETS = _ResourceType(
    "apps",
    "v1",
    "statefulsets",
    "statefulset",
    "StatefulSet",
    True,
    ("sts",),
    _WORKLOAD_FIELDS,
    ("metadata.name", "metadata.namespace"),
)
_TYPES_BY_GROUP: dict[str, dict[str, _ResourceType]] = {
    "": {t.plural: t for t in (_NAMESPACES, _SECRETS)},
    "apps": {t.plural: t for t in (_DEPLOYMENTS, _STATEFULSETS)},
}
_TYPES_BY_PLURAL: dict[str, _ResourceType] = {t.plural: t for group in _TYPES_BY_GROUP.values() for t in group.values()}


def _resource_type(resource: str) -> _ResourceType:
    try:
        return _TYPES_BY_PLURAL[resource]
    except KeyError:
        raise ValueError(f"unknown resource {resource!r}; expected one of {sorted(_TYPES_BY_PLURAL)}") from None


# --------------------------------------------------------------------------- public records


class RecordedRequest(NamedTuple):
    """One request the server received: method, path and the raw (still percent-encoded) query string."""

    method: str
    path: str
    query: str


class APIResponse(NamedTuple):
    """What :meth:`FakeKubernetesAPI.handle` answers: status code, headers and body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class DenyRule:
    """An RBAC denial: requests matching every non-``None`` field get 403 ``Forbidden``.

    ``verb`` is a Kubernetes verb (``get``, ``list``, ``create``, ``update``, ``patch``, ``delete``,
    ``deletecollection``) or ``"*"``; ``resource`` a plural resource name or ``"*"``. ``namespace`` is
    the request's namespace (for a request on one namespace object, that namespace's name); ``None``
    matches any, including cluster-scoped requests. Server-side apply is authorized as ``patch``, and
    also as ``create`` when it creates the object (server-side-apply docs, "Access control and
    permissions").
    """

    verb: str = "*"
    resource: str = "*"
    namespace: str | None = None
    name: str | None = None
    user: str | None = None

    def matches(self, *, user: str, verb: str, resource: str, namespace: str | None, name: str | None) -> bool:
        """Whether this rule denies the request."""
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and (self.namespace is None or self.namespace == namespace)
            and (self.name is None or self.name == name)
            and (self.user is None or self.user == user)
        )


@dataclass
class FailureInjection:
    """A failure the server answers with, instead of serving, for matching requests.

    ``method`` is an HTTP method or ``"*"``; ``path_regex`` is searched (``re.search``) in the request
    path. ``times`` is how many requests to fail (``None``: all of them). ``hits`` counts the
    requests failed so far.
    """

    method: str
    path_regex: re.Pattern[str]
    status: int
    times: int | None = 1
    retry_after: float | None = None
    message: str | None = None
    hits: int = 0

    @property
    def remaining(self) -> int | None:
        """How many more requests will fail (``None``: unlimited)."""
        return None if self.times is None else max(0, self.times - self.hits)

    def matches(self, method: str, path: str) -> bool:
        """Whether the next request with ``method`` and ``path`` should fail."""
        if self.remaining == 0:
            return False
        return self.method in ("*", method.upper()) and self.path_regex.search(path) is not None


# --------------------------------------------------------------------------- internal records


@dataclass
class _Stored:
    """A stored object: its body (without ``managedFields``) and its field managers."""

    body: dict[str, Any]
    managed: list[ManagedEntry] = field(default_factory=list)


@dataclass
class _Call:
    """The parts of a request the handlers need."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    user: str
    warnings: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def dry_run(self) -> bool:
        return self.params.get("dryRun") == "All"

    def manager(self) -> str:
        """The field manager for an Update: ``fieldManager``, else the User-Agent's product name.

        Server-side-apply docs, "Managers": for non-apply updates the default "is computed from the
        user-agent" (the API server takes the part before the first ``/``: ``python-httpx``,
        ``OpenAPI-Generator`` for the official client, ``kubectl``).
        """
        explicit = self.params.get("fieldManager")
        if explicit:
            return explicit
        agent = self.headers.get("user-agent", "").split("/", 1)[0]
        agent = "".join(char for char in agent if char.isprintable())[:128]
        return agent or "unknown"


@dataclass
class _Continuation:
    resource_version: str
    items: list[dict[str, Any]]
    created: float


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(rtype: _ResourceType, namespace: str | None, name: str) -> tuple[str, str, str]:
    return (rtype.plural, namespace or "", name)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _load_yaml(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


def _bool_param(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


# --------------------------------------------------------------------------- the fake API


class FakeKubernetesAPI:
    """The state and semantics of a small Kubernetes API server; serve it with :class:`KubeAPIServer`.

    Holds namespaces, Secrets, Deployments and StatefulSets, a global ``resourceVersion`` counter, the
    accepted bearer tokens, an RBAC deny list, injected failures and a log of the requests received.
    Each instance owns its state; every method is thread-safe (the server runs in another thread).

    ``namespace_deletion_delay`` is how long (seconds) a deleted namespace stays in phase
    ``Terminating`` before it disappears; its contents are deleted at once. With the default ``0`` the
    DELETE response still shows ``Terminating`` and the namespace is gone from the next request on.
    ``token=None`` turns authentication off.
    """

    def __init__(
        self,
        *,
        token: str | None = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        latency: float = 0.0,
        namespace_deletion_delay: float = 0.0,
    ) -> None:
        self._lock = threading.RLock()
        self._settings = (token, user, tuple(namespaces), latency, namespace_deletion_delay)
        self._objects: dict[tuple[str, str, str], _Stored] = {}
        self._resource_version = _FIRST_RESOURCE_VERSION
        self._tokens: dict[str, str] = {token: user} if token is not None else {}
        self._denials: list[DenyRule] = []
        self._failures: list[FailureInjection] = []
        self._continuations: OrderedDict[str, _Continuation] = OrderedDict()
        self._terminating: dict[str, float] = {}
        #: Every request received over HTTP, in order (``server.requests`` is the same list).
        self.requests: list[RecordedRequest] = []
        #: Seconds of delay added to every HTTP request.
        self.latency = latency
        #: Seconds a deleted namespace stays ``Terminating``.
        self.namespace_deletion_delay = namespace_deletion_delay
        for name in self._settings[2]:
            self.create_namespace(name)

    def reset(self) -> None:
        """Back to a new cluster: the constructor's namespaces, token and settings, nothing else.

        Objects, extra tokens, denials, injected failures, ``continue`` tokens and recorded requests
        are forgotten. The ``resourceVersion`` counter is not rewound: it only ever increases.
        """
        token, user, namespaces, latency, delay = self._settings
        with self._lock:
            self._objects.clear()
            self._tokens = {token: user} if token is not None else {}
            self._denials.clear()
            self._failures.clear()
            self._continuations.clear()
            self._terminating.clear()
            self.requests.clear()
            self.latency = latency
            self.namespace_deletion_delay = delay
            for name in namespaces:
                self.create_namespace(name)

    # ------------------------------------------------------------------ configuration

    def add_token(self, token: str, user: str) -> None:
        """Also accept ``Authorization: Bearer <token>``, authenticating as ``user``."""
        with self._lock:
            self._tokens[token] = user

    def deny(
        self,
        verb: str = "*",
        resource: str = "*",
        namespace: str | None = None,
        *,
        name: str | None = None,
        user: str | None = None,
    ) -> DenyRule:
        """Make matching requests fail with 403 ``Forbidden`` (see :class:`DenyRule`)."""
        rule = DenyRule(verb=verb, resource=resource, namespace=namespace, name=name, user=user)
        with self._lock:
            self._denials.append(rule)
        return rule

    def allow(self, rule: DenyRule) -> None:
        """Remove one denial added by :meth:`deny`."""
        with self._lock:
            self._denials.remove(rule)

    def clear_denials(self) -> None:
        """Remove every denial."""
        with self._lock:
            self._denials.clear()

    def inject_failure(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int | None = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> FailureInjection:
        """Answer the next ``times`` matching requests with ``status`` (after authentication).

        For testing client retry logic: api-conventions "HTTP Status codes" tells clients to honour
        ``Retry-After`` on 429 and to back off exponentially on 500 and 503.

        The body is a ``Status`` with the conventional reason (429 ``TooManyRequests``, 500
        ``InternalError``, 503 ``ServiceUnavailable``, 504 ``Timeout`` ...). With ``retry_after``
        the response carries a ``Retry-After`` header (whole seconds, rounded up) and
        ``details.retryAfterSeconds``. Nothing is changed by a failed request.
        """
        injection = FailureInjection(
            method=method.upper(),
            path_regex=re.compile(path_regex),
            status=status,
            times=times,
            retry_after=retry_after,
            message=message,
        )
        with self._lock:
            self._failures.append(injection)
        return injection

    def clear_failures(self) -> None:
        """Remove every injected failure."""
        with self._lock:
            self._failures.clear()

    def expire_continue_tokens(self) -> None:
        """Make every outstanding ``continue`` token expired (the next use gets 410 ``Expired``)."""
        with self._lock:
            self._continuations.clear()

    # ------------------------------------------------------------------ observation

    @property
    def resource_version(self) -> str:
        """The current value of the global ``resourceVersion`` counter."""
        with self._lock:
            return str(self._resource_version)

    @property
    def write_requests(self) -> list[RecordedRequest]:
        """The recorded POST, PUT, PATCH and DELETE requests."""
        with self._lock:
            return [request for request in self.requests if request.method in _WRITE_METHODS]

    def count_requests(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many recorded requests have ``method`` (any if ``None``) and a path ``path_regex`` matches."""
        pattern = re.compile(path_regex) if path_regex is not None else None
        with self._lock:
            return sum(
                1
                for request in self.requests
                if (method is None or request.method == method.upper())
                and (pattern is None or pattern.search(request.path) is not None)
            )

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ direct access (no HTTP, no RBAC)

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create namespace ``name`` directly and return it."""
        body: dict[str, Any] = {"metadata": {"name": name}}
        if labels:
            body["metadata"]["labels"] = dict(labels)
        return self.create_object("namespaces", body)

    def create_object(
        self,
        resource: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        field_manager: str = "strongroom-test-fixture",
    ) -> dict[str, Any]:
        """Create an object directly (validated as over HTTP; raises :class:`KubeAPIError`).

        ``resource`` is ``namespaces``, ``secrets``, ``deployments`` or ``statefulsets``; ``namespace``
        defaults to the body's ``metadata.namespace``.
        """
        rtype = _resource_type(resource)
        namespace = (namespace or (body.get("metadata") or {}).get("namespace")) if rtype.namespaced else None
        if rtype.namespaced and not namespace:
            raise ValueError(f"{resource} are namespaced: give a namespace")
        call = _Call("POST", "", {"fieldManager": field_manager}, {}, b"", DEFAULT_USER)
        with self._lock:
            self._purge_namespaces()
            rendered = self._create(rtype, namespace, copy.deepcopy(dict(body)), call)
        return rendered

    def get_object(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as a GET would return it, or ``None``."""
        rtype = _resource_type(resource)
        with self._lock:
            self._purge_namespaces()
            stored = self._objects.get(_key(rtype, namespace if rtype.namespaced else None, name))
            return None if stored is None else self._render(rtype, stored)

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of ``resource`` (in ``namespace``, if given), as a GET would return each."""
        rtype = _resource_type(resource)
        with self._lock:
            self._purge_namespaces()
            return [
                self._render(rtype, stored)
                for key, stored in sorted(self._objects.items())
                if key[0] == rtype.plural and (namespace is None or key[1] == namespace)
            ]

    def delete_object(self, resource: str, name: str, namespace: str | None = None) -> None:
        """Delete an object directly (a namespace goes through ``Terminating`` as over HTTP)."""
        rtype = _resource_type(resource)
        call = _Call("DELETE", "", {}, {}, b"", DEFAULT_USER)
        with self._lock:
            self._purge_namespaces()
            self._delete(rtype, namespace if rtype.namespaced else None, name, call)

    def secret_data(self, name: str, namespace: str) -> dict[str, bytes] | None:
        """The decoded ``data`` of Secret ``namespace/name``, or ``None`` if there is no such Secret."""
        secret = self.get_object("secrets", name, namespace)
        if secret is None:
            return None
        return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}

    # ------------------------------------------------------------------ HTTP entry point

    def handle(
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> APIResponse:
        """Serve one request (transport-independent; :func:`create_app` calls this) and record it.

        Health probes (``/healthz``, ``/livez``, ``/readyz``) are served but not recorded.
        """
        method = method.upper()
        lowered = {key.lower(): value for key, value in (headers or {}).items()}
        with self._lock:
            if path not in _PROBE_PATHS:
                self.requests.append(RecordedRequest(method, path, query))
            try:
                return self._serve(method, path, query, lowered, body)
            except KubeAPIError as error:
                response_headers = {"Content-Type": "application/json", **error.headers}
                return APIResponse(error.code, response_headers, _json_bytes(error.status()))

    def _serve(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> APIResponse:
        self._purge_namespaces()
        if path in _PROBE_PATHS:
            return APIResponse(200, {"Content-Type": "text/plain; charset=utf-8"}, b"ok")
        user = DEFAULT_USER if path in _PUBLIC_PATHS else self._authenticate(headers)
        self._check_injected_failures(method, path)
        if len(body) > _MAX_REQUEST_BYTES:
            raise errors.request_too_large(_MAX_REQUEST_BYTES)
        params = dict(parse_qsl(query, keep_blank_values=True))
        call = _Call(method, path, params, headers, body, user)
        status, payload = self._route(call)
        response_headers = {"Content-Type": "application/json"}
        if call.warnings:
            response_headers["Warning"] = ", ".join(f'299 - "{warning}"' for warning in call.warnings)
        return APIResponse(status, response_headers, _json_bytes(payload))

    def _authenticate(self, headers: Mapping[str, str]) -> str:
        """The user of the request's bearer token; 401 ``Unauthorized`` when it is missing or unknown.

        Follows "Putting a Bearer Token in a Request"
        (https://kubernetes.io/docs/reference/access-authn-authz/authentication/) and the 401 entry of
        api-conventions "HTTP Status codes".
        """
        if not self._tokens:
            return DEFAULT_USER
        scheme, _, token = headers.get("authorization", "").partition(" ")
        user = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise errors.unauthorized()
        return user

    def _check_injected_failures(self, method: str, path: str) -> None:
        for injection in self._failures:
            if injection.matches(method, path):
                injection.hits += 1
                raise errors.injected(injection.status, injection.message, injection.retry_after)

    def _authorize(self, user: str, verb: str, rtype: _ResourceType, namespace: str | None, name: str | None) -> None:
        """403 with the RBAC authorizer's message when a :class:`DenyRule` matches.

        The request attributes (verb, resource, API group, namespace, name) are those of "Review Your
        Request Attributes" in https://kubernetes.io/docs/reference/access-authn-authz/authorization/;
        as there, a create or list request has no name, so its message reads ``secrets is forbidden``.
        403 ``Forbidden`` is api-conventions "HTTP Status codes".
        """
        for rule in self._denials:
            if rule.matches(user=user, verb=verb, resource=rtype.plural, namespace=namespace, name=name):
                scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
                why = f'User "{user}" cannot {verb} resource "{rtype.plural}" in API group "{rtype.group}" {scope}'
                raise errors.forbidden(rtype.plural, rtype.group, name or "", why)

    # ------------------------------------------------------------------ routing

    def _route(self, call: _Call) -> tuple[int, Any]:
        parts = [part for part in call.path.split("/") if part]
        discovery = self._discovery(parts)
        if discovery is not None:
            if call.method != "GET":
                raise errors.method_not_allowed()
            return 200, discovery
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:3] == ["apis", "apps", "v1"]:
            group, rest = "apps", parts[3:]
        else:
            raise errors.route_not_found()
        types = _TYPES_BY_GROUP[group]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in types or len(rest) > 2:
            raise errors.route_not_found()
        rtype = types[rest[0]]
        name = rest[1] if len(rest) == 2 else None
        if namespace is not None and not rtype.namespaced:
            raise errors.route_not_found()
        if rtype.namespaced and namespace is None and name is not None:
            raise errors.route_not_found()
        return self._dispatch(call, rtype, namespace, name)

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        """Discovery documents (api-concepts, "Standard API terminology"; ``/api``, ``/apis`` ...)."""
        if parts == ["version"]:
            return dict(_VERSION_INFO)
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }
        apps_group = {
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
        }
        if parts == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [apps_group]}
        if parts == ["apis", "apps"]:
            return {"kind": "APIGroup", "apiVersion": "v1", **apps_group}
        for prefix, group, group_version in ((["api", "v1"], "", "v1"), (["apis", "apps", "v1"], "apps", "apps/v1")):
            if parts == prefix:
                return {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": group_version,
                    "resources": [rtype.discovery() for rtype in _TYPES_BY_GROUP[group].values()],
                }
        return None

    def _dispatch(self, call: _Call, rtype: _ResourceType, namespace: str | None, name: str | None) -> tuple[int, Any]:
        """Map the HTTP method to a verb (api-conventions, "Verbs on Resources") and serve it.

        ``watch`` (api-concepts, "Efficient detection of changes") is not served: 405.
        """
        method = call.method
        if name is None:
            if method == "GET":
                verb = "watch" if _bool_param(call.params.get("watch")) else "list"
            elif method == "POST" and (namespace is not None or not rtype.namespaced):
                verb = "create"
            elif method == "DELETE" and namespace is not None:
                verb = "deletecollection"
            else:
                raise errors.method_not_allowed()
        else:
            verbs = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
            if method not in verbs:
                raise errors.method_not_allowed()
            verb = verbs[method]
            if verb == "get" and _bool_param(call.params.get("watch")):
                verb = "watch"
        if verb == "watch":
            raise errors.method_not_allowed(
                "watch is not supported by this fake API server (strongroom.testing.kube_api): list and poll instead"
            )
        scope_namespace = name if rtype is _NAMESPACES else namespace
        self._authorize(call.user, verb, rtype, scope_namespace, name)

        if verb == "list":
            return 200, self._list(rtype, namespace, call)
        if verb == "create":
            return 201, self._create(rtype, namespace, self._parse_object_body(call), call)
        if verb == "deletecollection":
            return 200, self._delete_collection(rtype, namespace, call)
        assert name is not None
        if verb == "get":
            return 200, self._render(rtype, self._existing(rtype, namespace, name))
        if verb == "update":
            return 200, self._update(rtype, namespace, name, self._parse_object_body(call), call)
        if verb == "patch":
            return self._patch(rtype, namespace, name, call)
        return 200, self._delete(rtype, namespace, name, call)

    # ------------------------------------------------------------------ bodies

    def _parse_object_body(self, call: _Call) -> dict[str, Any]:
        """A POST/PUT body: JSON or YAML (api-conventions, "Serialization Format"); 415 otherwise."""
        content_type = call.content_type or "application/json"
        if content_type not in _BODY_TYPES:
            raise errors.unsupported_media_type(_BODY_TYPES)
        return self._decode_document(call.body, yaml=content_type == "application/yaml")

    @staticmethod
    def _decode_document(body: bytes, *, yaml: bool) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
            try:
                document = json.loads(text)
            except ValueError:
                if not yaml:
                    raise
                document = _load_yaml(text)
        except Exception as exc:
            raise errors.bad_request(f"error decoding request body: {exc}") from None
        if not isinstance(document, dict):
            raise errors.bad_request("error decoding request body: the body must be a JSON object")
        return document

    def _decode_object(self, rtype: _ResourceType, raw: dict[str, Any], call: _Call) -> dict[str, Any]:
        """Check a sent object's shape as the API server's decoder does (400 ``BadRequest``).

        Unknown fields are dropped with a ``Warning`` header, or refused with
        ``fieldValidation=Strict`` (api-concepts, "Field validation"). For a Secret, ``data`` must be
        base64 and ``stringData`` is merged into ``data`` and never stored.
        """
        body = copy.deepcopy(raw)

        def fail(reason: str) -> KubeAPIError:
            return errors.bad_request(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: {reason}'
            )

        for field_name, expected in (("apiVersion", rtype.api_version), ("kind", rtype.kind)):
            value = body.get(field_name)
            if value not in (None, "", expected):
                raise errors.bad_request(
                    f"the {field_name} in the request body ({value}) does not match the expected {field_name} "
                    f"({expected}) of {rtype.plural}"
                )
        metadata = body.get("metadata")
        if metadata is None:
            metadata = body["metadata"] = {}
        if not isinstance(metadata, dict):
            raise fail("metadata must be an object")
        mode = call.params.get("fieldValidation", "Warn")
        unknown = [f for f in body if f not in rtype.top_level_fields]
        unknown += [f"metadata.{f}" for f in metadata if f not in _OBJECT_META_FIELDS]
        if unknown:
            if mode == "Strict":
                raise errors.bad_request("strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown))
            if mode != "Ignore":
                call.warnings.extend(f'unknown field \\"{f}\\"' for f in unknown)
            for f in unknown:
                if f.startswith("metadata."):
                    metadata.pop(f[len("metadata.") :], None)
                else:
                    body.pop(f, None)
        for map_field in ("labels", "annotations"):
            value = metadata.get(map_field)
            if value is None:
                metadata.pop(map_field, None)
            elif not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise fail(f"metadata.{map_field} must be a map of strings")
        for text_field in ("name", "generateName", "namespace", "resourceVersion", "uid"):
            if metadata.get(text_field) is not None and not isinstance(metadata[text_field], str):
                raise fail(f"metadata.{text_field} must be a string")
        if rtype is _SECRETS:
            self._decode_secret(body, fail)
        elif rtype is not _NAMESPACES and "spec" in body and not isinstance(body["spec"], dict):
            raise fail("spec must be an object")
        return body

    @staticmethod
    def _decode_secret(body: dict[str, Any], fail: Callable[[str], KubeAPIError]) -> None:
        """Secret data is bytes on the wire as base64; ``stringData`` is a write-only convenience.

        Per the Secret API reference, ``stringData`` entries are merged into ``data`` (overwriting
        keys present in both) and the field is never output.
        """
        data = body.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise fail("data must be a map of base64 strings")
        decoded: dict[str, str] = {}
        for key, value in data.items():
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise fail(f"v1.Secret.Data: decode base64: data[{key}] is not a string")
            try:
                raw = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise fail(f"v1.Secret.Data: decode base64: illegal base64 data in data[{key}]: {exc}") from None
            decoded[key] = base64.b64encode(raw).decode("ascii")
        string_data = body.pop("stringData", None)
        if string_data is not None:
            if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
                raise fail("stringData must be a map of strings")
            for key, value in string_data.items():
                decoded[key] = base64.b64encode(value.encode("utf-8")).decode("ascii")
        if decoded or "data" in body:
            body["data"] = decoded
        secret_type = body.get("type")
        if secret_type is not None and not isinstance(secret_type, str):
            raise fail("type must be a string")
        immutable = body.get("immutable")
        if immutable is not None and not isinstance(immutable, bool):
            raise fail("immutable must be a boolean")

    # ------------------------------------------------------------------ object lifecycle helpers

    def _existing(self, rtype: _ResourceType, namespace: str | None, name: str) -> _Stored:
        stored = self._objects.get(_key(rtype, namespace, name))
        if stored is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        return stored

    def _check_namespace_writable(self, namespace: str, resource: _ResourceType, name: str) -> None:
        """404 if the namespace is missing; 403 while it is Terminating.

        This is the NamespaceLifecycle admission plugin
        (https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#namespacelifecycle):
        "enforces that a Namespace that is undergoing termination cannot have new objects created in it,
        and ensures that requests in a non-existent Namespace are rejected".
        """
        stored = self._objects.get(_key(_NAMESPACES, None, namespace))
        if stored is None:
            raise errors.not_found("namespaces", "", namespace)
        if stored.body.get("status", {}).get("phase") == "Terminating":
            error = errors.forbidden(
                resource.plural,
                resource.group,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )
            error.details["causes"] = [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ]
            raise error

    def _render(self, rtype: _ResourceType, stored: _Stored, *, with_type: bool = True) -> dict[str, Any]:
        """The object as the API returns it: ``kind``/``apiVersion`` first, ``managedFields`` filled in."""
        body = copy.deepcopy(stored.body)
        rank = {name: position for position, name in enumerate(_METADATA_ORDER)}
        body["metadata"] = dict(sorted(body["metadata"].items(), key=lambda item: rank.get(item[0], len(rank))))
        if stored.managed:
            body["metadata"]["managedFields"] = encode_managed_fields(stored.managed)
        if not with_type:
            return body
        return {"kind": rtype.kind, "apiVersion": rtype.api_version, **body}

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    @staticmethod
    def _normalize(rtype: _ResourceType, body: dict[str, Any]) -> None:
        """Drop empty maps that the API server's serializer would omit (``omitempty``)."""
        metadata = body["metadata"]
        for map_field in ("labels", "annotations"):
            if not metadata.get(map_field):
                metadata.pop(map_field, None)
        for list_field in ("finalizers", "ownerReferences"):
            if metadata.get(list_field) in ([], None):
                metadata.pop(list_field, None)
        if rtype is _SECRETS and not body.get("data"):
            body.pop("data", None)

    def _system_fields(self, rtype: _ResourceType, body: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Fields the server owns: defaults, generation and status (api-conventions, "Spec and Status").

        POST and PUT ignore a sent ``status``. Workloads get ``spec.replicas`` defaulted to 1 and a
        ``status`` that reports the rollout as complete at once; ``metadata.generation`` counts spec
        changes. Namespaces carry the ``kubernetes`` finalizer, phase ``Active`` and the
        ``kubernetes.io/metadata.name`` label.
        """
        metadata = body["metadata"]
        if rtype is _NAMESPACES:
            metadata.setdefault("labels", {})["kubernetes.io/metadata.name"] = metadata["name"]
            body["spec"] = copy.deepcopy(old["spec"]) if old else {"finalizers": ["kubernetes"]}
            body["status"] = copy.deepcopy(old["status"]) if old else {"phase": "Active"}
            return
        if rtype in (_DEPLOYMENTS, _STATEFULSETS):
            spec = body.setdefault("spec", {})
            if isinstance(spec, dict) and "replicas" not in spec:
                spec["replicas"] = 1
            generation = 1
            if old is not None:
                generation = int(old["metadata"].get("generation", 1))
                if old.get("spec") != body.get("spec"):
                    generation += 1
            metadata["generation"] = generation
            replicas = spec.get("replicas", 1) if isinstance(spec, dict) else 1
            status: dict[str, Any] = {"observedGeneration": generation, "replicas": replicas}
            if replicas:
                status.update(updatedReplicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
                if rtype is _STATEFULSETS:
                    status["currentReplicas"] = replicas
            body["status"] = status
        else:
            body.pop("status", None)
        if rtype is _SECRETS:
            body["type"] = body.get("type") or "Opaque"

    def _validate(self, rtype: _ResourceType, body: dict[str, Any], old: dict[str, Any] | None) -> None:
        name_check = is_dns1123_label if rtype is _NAMESPACES else is_dns1123_subdomain
        problems: list[FieldError] = validate_metadata(body["metadata"], name_check)
        if rtype is _SECRETS:
            problems += validate_secret(body)
            if old is not None:
                problems += validate_secret_update(body, old)
        elif rtype in (_DEPLOYMENTS, _STATEFULSETS):
            problems += validate_workload(rtype.kind, body)
            if old is not None and not problems:
                problems += validate_workload_update(rtype.kind, body, old)
        if problems:
            raise errors.invalid(rtype.kind, rtype.group, str(body["metadata"].get("name", "")), problems)

    # ------------------------------------------------------------------ create

    def _create(self, rtype: _ResourceType, namespace: str | None, raw: dict[str, Any], call: _Call) -> dict[str, Any]:
        """POST: create, 409 ``AlreadyExists`` if the name is taken (api-conventions, "Idempotency")."""
        body = self._decode_object(rtype, raw, call)
        self._place(rtype, namespace, body)
        name = body["metadata"]["name"]
        if namespace is not None:
            self._check_namespace_writable(namespace, rtype, name)
        body = self._new_object(rtype, namespace, body)
        if _key(rtype, namespace, body["metadata"]["name"]) in self._objects:
            raise errors.already_exists(rtype.plural, rtype.group, body["metadata"]["name"])
        managed = record_update([], None, body, call.manager(), rtype.api_version, _now())
        return self._commit(rtype, namespace, _Stored(body, managed), call)

    def _place(self, rtype: _ResourceType, namespace: str | None, body: dict[str, Any]) -> None:
        """Fill in ``metadata.namespace`` from the URL; 400 if the body names another one.

        Also serves ``metadata.generateName`` (api-conventions, "Idempotency"): five random characters
        are appended to the prefix.
        """
        metadata = body["metadata"]
        sent = metadata.get("namespace")
        if rtype.namespaced:
            if sent and sent != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            prefix = str(metadata["generateName"])
            for _ in range(100):
                candidate = prefix + "".join(secrets.choice(_GENERATE_NAME_ALPHABET) for _ in range(5))
                if _key(rtype, namespace, candidate) not in self._objects:
                    metadata["name"] = candidate
                    break
        metadata.setdefault("name", "")

    def _new_object(self, rtype: _ResourceType, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """A new object's server-set metadata, defaults and status; validated (422 ``Invalid``)."""
        metadata = body["metadata"]
        for system_field in (
            "resourceVersion",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            metadata.pop(system_field, None)
        metadata.pop("managedFields", None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = _now()
        self._system_fields(rtype, body, None)
        self._normalize(rtype, body)
        self._validate(rtype, body, None)
        return self._ordered(body)

    @staticmethod
    def _ordered(body: dict[str, Any]) -> dict[str, Any]:
        """Keys in the order the API server writes them (metadata first, status last)."""
        body.pop("apiVersion", None)  # added back by _render
        body.pop("kind", None)
        metadata = body.pop("metadata")
        status = body.pop("status", None)
        ordered = {"metadata": metadata, **body}
        if status is not None:
            ordered["status"] = status
        return ordered

    def _commit(self, rtype: _ResourceType, namespace: str | None, stored: _Stored, call: _Call) -> dict[str, Any]:
        """Store ``stored`` with a new ``resourceVersion`` and render it.

        With ``dryRun=All`` (api-concepts, "Dry-run") the object is validated and returned but not stored.
        """
        name = stored.body["metadata"]["name"]
        if call.dry_run:
            preview = _Stored(copy.deepcopy(stored.body), stored.managed)
            return self._render(rtype, preview)
        stored.body["metadata"]["resourceVersion"] = self._next_resource_version()
        self._objects[_key(rtype, namespace, name)] = stored
        return self._render(rtype, stored)

    # ------------------------------------------------------------------ update / patch / apply

    def _check_preconditions(
        self,
        rtype: _ResourceType,
        old: _Stored,
        metadata: Mapping[str, Any],
        name: str,
        *,
        deleting: bool = False,
    ) -> None:
        """Optimistic concurrency (api-conventions, "Concurrency Control and Consistency")."""
        sent_version = metadata.get("resourceVersion")
        current_version = old.body["metadata"]["resourceVersion"]
        if sent_version and sent_version != current_version:
            why = (
                f"Precondition failed: ResourceVersion in precondition: {sent_version}, "
                f"ResourceVersion in object meta: {current_version}"
                if deleting
                else "the object has been modified; please apply your changes to the latest version and try again"
            )
            raise errors.conflict(rtype.plural, rtype.group, name, why)
        sent_uid = metadata.get("uid")
        if sent_uid and sent_uid != old.body["metadata"]["uid"]:
            raise errors.conflict(
                rtype.plural,
                rtype.group,
                name,
                f"Precondition failed: UID in precondition: {sent_uid}, "
                f"UID in object meta: {old.body['metadata']['uid']}",
            )

    def _check_identity(self, rtype: _ResourceType, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        metadata = body["metadata"]
        sent_name = metadata.get("name")
        if sent_name and sent_name != name:
            raise errors.bad_request(
                f"the name of the object ({sent_name}) does not match the name on the URL ({name})"
            )
        metadata["name"] = name
        self._place(rtype, namespace, body)

    def _replacement(self, rtype: _ResourceType, old: _Stored, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the metadata the server keeps across updates; validated (422 ``Invalid``)."""
        metadata = body["metadata"]
        old_metadata = old.body["metadata"]
        for kept in ("uid", "creationTimestamp", "resourceVersion", "deletionTimestamp"):
            if kept in old_metadata:
                metadata[kept] = old_metadata[kept]
            else:
                metadata.pop(kept, None)
        for dropped in ("selfLink", "generation", "managedFields", "generateName"):
            metadata.pop(dropped, None)
        if "generateName" in old_metadata:
            metadata["generateName"] = old_metadata["generateName"]
        self._system_fields(rtype, body, old.body)
        self._normalize(rtype, body)
        self._validate(rtype, body, old.body)
        return self._ordered(body)

    def _store_update(
        self,
        rtype: _ResourceType,
        namespace: str | None,
        old: _Stored,
        body: dict[str, Any],
        managed: list[ManagedEntry],
        call: _Call,
    ) -> dict[str, Any]:
        """Write an update, unless nothing changed: a no-op write keeps the ``resourceVersion``."""
        unchanged = body == old.body and [(e.manager, e.operation, e.fields) for e in managed] == [
            (e.manager, e.operation, e.fields) for e in old.managed
        ]
        if unchanged:
            return self._render(rtype, old)
        return self._commit(rtype, namespace, _Stored(body, managed), call)

    def _managed_after_update(
        self, rtype: _ResourceType, old: _Stored, sent: Any, body: dict[str, Any], call: _Call
    ) -> list[ManagedEntry]:
        """Ownership after an Update; ``managedFields: [{}]`` strips it (server-side-apply docs)."""
        if sent == _STRIP_MANAGED_FIELDS:
            return []
        return record_update(old.managed, old.body, body, call.manager(), rtype.api_version, _now())

    def _update(
        self, rtype: _ResourceType, namespace: str | None, name: str, raw: dict[str, Any], call: _Call
    ) -> dict[str, Any]:
        """PUT: replace the whole object (api-concepts, "Updates to existing resources"); no create-on-update."""
        old = self._existing(rtype, namespace, name)
        sent_managed = (
            (raw.get("metadata") or {}).get("managedFields") if isinstance(raw.get("metadata"), dict) else None
        )
        body = self._decode_object(rtype, raw, call)
        self._check_identity(rtype, namespace, name, body)
        self._check_preconditions(rtype, old, body["metadata"], name)
        body = self._replacement(rtype, old, body)
        managed = self._managed_after_update(rtype, old, sent_managed, body, call)
        return self._store_update(rtype, namespace, old, body, managed, call)

    def _patch(self, rtype: _ResourceType, namespace: str | None, name: str, call: _Call) -> tuple[int, dict[str, Any]]:
        """PATCH with one of the four patch types (api-concepts, "Updates to existing resources")."""
        content_type = call.content_type
        if content_type not in _PATCH_TYPES:
            raise errors.unsupported_media_type(_PATCH_TYPES)
        if content_type == "application/apply-patch+yaml":
            return self._apply(rtype, namespace, name, call)
        if "force" in call.params:
            raise errors.bad_request("force is only allowed for apply patches (application/apply-patch+yaml)")
        old = self._existing(rtype, namespace, name)
        try:
            patch = json.loads(call.body.decode("utf-8"))
        except ValueError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
        current = self._render(rtype, old)
        try:
            if content_type == "application/json-patch+json":
                patched = json_patch(current, patch)
            elif content_type == "application/merge-patch+json":
                patched = merge_patch(current, patch)
            else:
                patched = strategic_merge_patch(current, patch)
        except PatchFormatError as exc:
            raise errors.bad_request(str(exc)) from None
        except PatchError as exc:
            raise errors.invalid(
                rtype.kind, rtype.group, name, [FieldError.invalid("patch", "<patch>", str(exc))]
            ) from None
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched object must be a JSON object")
        metadata = patched.get("metadata")
        sent_managed = metadata.get("managedFields") if isinstance(metadata, dict) else None
        if sent_managed == current["metadata"].get("managedFields"):
            sent_managed = None
        body = self._decode_object(rtype, patched, call)
        self._check_identity(rtype, namespace, name, body)
        self._check_preconditions(rtype, old, body["metadata"], name)
        body = self._replacement(rtype, old, body)
        managed = self._managed_after_update(rtype, old, sent_managed, body, call)
        return 200, self._store_update(rtype, namespace, old, body, managed, call)

    def _apply(self, rtype: _ResourceType, namespace: str | None, name: str, call: _Call) -> tuple[int, dict[str, Any]]:
        """Server-side apply: create or merge by field ownership (server-side-apply docs).

        ``fieldManager`` is required; ``force=true`` takes conflicting fields over. A conflict is
        409 ``Conflict`` with one ``FieldManagerConflict`` cause per field.
        """
        manager = call.params.get("fieldManager")
        if not manager:
            raise errors.bad_request("fieldManager is required for apply requests")
        force = _bool_param(call.params.get("force"))
        raw = self._decode_document(call.body, yaml=True)
        for required in ("apiVersion", "kind"):
            if not raw.get(required):
                raise errors.bad_request(f"{required} must be set")
        raw_metadata = raw.get("metadata")
        if isinstance(raw_metadata, dict) and raw_metadata.get("managedFields") is not None:
            raise errors.bad_request("metadata.managedFields must be nil")
        applied = self._decode_object(rtype, raw, call)
        self._check_identity(rtype, namespace, name, applied)
        old = self._objects.get(_key(rtype, namespace, name))
        if old is None:
            # "also needs the create verb permission in order to create new resources" (SSA docs)
            self._authorize(call.user, "create", rtype, name if rtype is _NAMESPACES else namespace, name)
            if namespace is not None:
                self._check_namespace_writable(namespace, rtype, name)
        if old is not None:
            self._check_preconditions(rtype, old, applied["metadata"], name)
        for system_field in ("resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"):
            applied["metadata"].pop(system_field, None)
        applied.pop("status", None)
        try:
            merged, managed = apply_config(
                old.body if old is not None else None,
                old.managed if old is not None else [],
                applied,
                manager,
                force=force,
                api_version=rtype.api_version,
                now=_now(),
            )
        except ApplyConflict as conflict:
            raise KubeAPIError(409, "Conflict", conflict.message(), {"causes": conflict.causes()}) from None
        merged.pop("apiVersion", None)
        merged.pop("kind", None)
        if old is None:
            merged.setdefault("metadata", {})["name"] = name
            self._place(rtype, namespace, merged)
            body = self._new_object(rtype, namespace, merged)
            return 201, self._commit(rtype, namespace, _Stored(body, managed), call)
        body = self._replacement(rtype, old, merged)
        return 200, self._store_update(rtype, namespace, old, body, managed, call)

    # ------------------------------------------------------------------ delete

    def _delete_options(self, call: _Call) -> dict[str, Any]:
        if not call.body.strip():
            return {}
        return self._decode_document(call.body, yaml=False)

    def _delete(self, rtype: _ResourceType, namespace: str | None, name: str, call: _Call) -> dict[str, Any]:
        """DELETE: returns a ``Success`` Status (api-conventions, "Response Status Kind").

        ``preconditions`` (``uid``, ``resourceVersion``) in the DeleteOptions body are checked (409).
        A namespace is special (api-concepts, "Resource deletion"): it goes to phase ``Terminating``,
        its contents are deleted, and the namespace object is returned.
        """
        old = self._existing(rtype, namespace, name)
        preconditions = self._delete_options(call).get("preconditions") or {}
        if isinstance(preconditions, dict):
            self._check_preconditions(rtype, old, preconditions, name, deleting=True)
        if rtype is _NAMESPACES:
            return self._delete_namespace(old, call)
        if not call.dry_run:
            del self._objects[_key(rtype, namespace, name)]
            self._next_resource_version()
        details: dict[str, Any] = {"name": name}
        if rtype.group:
            details["group"] = rtype.group
        details.update(kind=rtype.plural, uid=old.body["metadata"]["uid"])
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _delete_namespace(self, old: _Stored, call: _Call) -> dict[str, Any]:
        name = old.body["metadata"]["name"]
        if old.body["status"].get("phase") == "Terminating":
            raise errors.conflict(
                "namespaces",
                "",
                name,
                "The system is ensuring all content is removed from this namespace.  Upon completion, this "
                "namespace will automatically be purged by the system.",
            )
        if name in _PROTECTED_NAMESPACES:
            raise errors.forbidden("namespaces", "", name, "this namespace may not be deleted")
        if call.dry_run:
            return self._render(_NAMESPACES, old)
        for key in [key for key in self._objects if key[0] != "namespaces" and key[1] == name]:
            del self._objects[key]
            self._next_resource_version()
        body = copy.deepcopy(old.body)
        body["metadata"]["deletionTimestamp"] = _now()
        body["status"] = {"phase": "Terminating"}
        terminating = _Stored(body, old.managed)
        body["metadata"]["resourceVersion"] = self._next_resource_version()
        self._objects[_key(_NAMESPACES, None, name)] = terminating
        self._terminating[name] = time.monotonic() + max(0.0, self.namespace_deletion_delay)
        return self._render(_NAMESPACES, terminating)

    def _purge_namespaces(self) -> None:
        """Remove Terminating namespaces whose time is up (the namespace controller's job)."""
        if not self._terminating:
            return
        now = time.monotonic()
        for name, deadline in list(self._terminating.items()):
            if deadline <= now:
                del self._terminating[name]
                for key in [key for key in self._objects if key[0] != "namespaces" and key[1] == name]:
                    del self._objects[key]
                if self._objects.pop(_key(_NAMESPACES, None, name), None) is not None:
                    self._next_resource_version()

    def _delete_collection(self, rtype: _ResourceType, namespace: str | None, call: _Call) -> dict[str, Any]:
        """DELETE on a collection: delete what the selectors match; returns the deleted objects."""
        deleted = [item for _, item in self._select(rtype, namespace, call)]
        if not call.dry_run:
            for item in deleted:
                del self._objects[_key(rtype, namespace, item["metadata"]["name"])]
                self._next_resource_version()
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self._resource_version)},
            "items": deleted,
        }

    # ------------------------------------------------------------------ list

    def _select(
        self, rtype: _ResourceType, namespace: str | None, call: _Call
    ) -> list[tuple[tuple[str, str, str], dict[str, Any]]]:
        """Objects matching ``labelSelector`` and ``fieldSelector``, in key order, rendered as list items."""
        try:
            labels = LabelSelector.parse(call.params.get("labelSelector"))
            fields = FieldSelector.parse(call.params.get("fieldSelector"))
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        for field_name in fields.fields():
            if field_name not in rtype.field_selectors:
                raise errors.bad_request(rtype.unsupported_field_selector(field_name))
        selected: list[tuple[tuple[str, str, str], dict[str, Any]]] = []
        for key in sorted(self._objects):
            if key[0] != rtype.plural or (namespace is not None and key[1] != namespace):
                continue
            stored = self._objects[key]
            metadata = stored.body["metadata"]
            if not labels.matches(metadata.get("labels")):
                continue
            if not fields.empty:
                values = {"metadata.name": metadata["name"], "metadata.namespace": metadata.get("namespace", "")}
                if rtype is _SECRETS:
                    values["type"] = stored.body.get("type", "")
                if rtype is _NAMESPACES:
                    values["status.phase"] = stored.body.get("status", {}).get("phase", "")
                if not fields.matches(values):
                    continue
            selected.append((key, self._render(rtype, stored, with_type=False)))
        return selected

    def _list(self, rtype: _ResourceType, namespace: str | None, call: _Call) -> dict[str, Any]:
        """GET on a collection, with ``limit``/``continue`` chunking (api-concepts,
        "Retrieving large results sets in chunks"): every chunk of one list shows the same snapshot and
        the same ``resourceVersion``; a token older than 5 minutes gets 410 ``Expired``.
        """
        limit_text = call.params.get("limit") or "0"
        if not limit_text.isdigit():
            raise errors.bad_request(f"invalid limit: {limit_text!r}")
        limit = int(limit_text)
        token = call.params.get("continue")
        if token:
            continuation = self._continuations.pop(self._continuation_id(token), None)
            if continuation is None or time.monotonic() - continuation.created > _CONTINUE_TTL_SECONDS:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter."
                )
            items, resource_version = continuation.items, continuation.resource_version
        else:
            items = [item for _, item in self._select(rtype, namespace, call)]
            resource_version = str(self._resource_version)
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if limit and len(items) > limit:
            items, rest = items[:limit], items[limit:]
            metadata["continue"] = self._new_continuation(resource_version, rest)
            if not call.params.get("labelSelector") and not call.params.get("fieldSelector"):
                metadata["remainingItemCount"] = len(rest)
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version, "metadata": metadata, "items": items}

    def _new_continuation(self, resource_version: str, rest: list[dict[str, Any]]) -> str:
        identifier = uuid.uuid4().hex
        self._continuations[identifier] = _Continuation(resource_version, rest, time.monotonic())
        while len(self._continuations) > _MAX_CONTINUATIONS:
            self._continuations.popitem(last=False)
        payload = {"v": "meta.k8s.io/v1", "rv": int(resource_version), "id": identifier}
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode("ascii").rstrip("=")

    @staticmethod
    def _continuation_id(token: str) -> str:
        try:
            payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            identifier = payload["id"]
            if payload.get("v") != "meta.k8s.io/v1" or not isinstance(identifier, str):
                raise ValueError("wrong version")
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
        return identifier


# --------------------------------------------------------------------------- ASGI app


def create_app(api: FakeKubernetesAPI) -> Starlette:
    """A Starlette application serving ``api`` (every path, every method), honouring ``api.latency``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        if api.latency > 0:
            await asyncio.sleep(api.latency)
        response = api.handle(request.method, request.url.path, request.url.query, dict(request.headers), body)
        return Response(response.body, status_code=response.status, headers=response.headers)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


# --------------------------------------------------------------------------- the server


class KubeAPIServer:
    """Serves a :class:`FakeKubernetesAPI` over HTTP on ``127.0.0.1`` (ephemeral port) in a thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``latency`` (seconds) is added
    to every request, e.g. ``0.02`` for benchmarks that need a realistic round trip.
    """

    def __init__(self, api: FakeKubernetesAPI | None = None, *, latency: float | None = None) -> None:
        self.api = api if api is not None else FakeKubernetesAPI()
        if latency is not None:
            self.api.latency = latency
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._url: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> KubeAPIServer:
        """Bind a port, start uvicorn in a daemon thread, and return once it answers ``/readyz``."""
        import uvicorn

        if self._server is not None:
            raise RuntimeError("KubeAPIServer is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.api),
            log_config=None,  # leave the process's logging configuration alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"kube-api-server-{port}", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        self._url = f"http://127.0.0.1:{port}"
        thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the fake Kubernetes API server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def _ready(self) -> bool:
        server = self._server
        if server is None or not server.started or self._url is None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", int(self._url.rsplit(":", 1)[1])), timeout=1) as connection:
                connection.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return connection.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        if sock is not None:
            sock.close()

    def __enter__(self) -> KubeAPIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ accessors

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._url is None:
            raise RuntimeError("KubeAPIServer is not started")
        return self._url

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received: ``(method, path, query)`` tuples (clear it to start counting)."""
        return self.api.requests

    @property
    def write_requests(self) -> list[RecordedRequest]:
        """The POST, PUT, PATCH and DELETE requests received."""
        return self.api.write_requests

    @property
    def latency(self) -> float:
        """Seconds added to every request."""
        return self.api.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self.api.latency = value

    def write_kubeconfig(
        self,
        path: str | Path,
        context: str = "strongroom-test",
        token: str = DEFAULT_TOKEN,
        namespace: str = "default",
    ) -> Path:
        """Write a kubeconfig for this server (plain HTTP, bearer ``token``) and return its path.

        Cluster, user and context are all named ``context``, which is the current context. The
        official ``kubernetes`` client (``config.load_kube_config``) and ``lightkube``
        (``KubeConfig.from_file``) both load it. The file is created with mode 0600.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        quoted = {name: json.dumps(value) for name, value in {"context": context, "token": token}.items()}
        text = "\n".join(
            [
                "apiVersion: v1",
                "kind: Config",
                "clusters:",
                f"- name: {quoted['context']}",
                "  cluster:",
                f"    server: {json.dumps(self.url)}",
                "    insecure-skip-tls-verify: true",
                "users:",
                f"- name: {quoted['context']}",
                "  user:",
                f"    token: {quoted['token']}",
                "contexts:",
                f"- name: {quoted['context']}",
                "  context:",
                f"    cluster: {quoted['context']}",
                f"    user: {quoted['context']}",
                f"    namespace: {json.dumps(namespace)}",
                f"current-context: {quoted['context']}",
                "preferences: {}",
                "",
            ]
        )
        target.touch(mode=0o600, exist_ok=True)
        target.chmod(0o600)
        target.write_text(text, encoding="utf-8")
        return target
