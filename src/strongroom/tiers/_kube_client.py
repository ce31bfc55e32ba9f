"""A small dict-in, dict-out adapter over ``lightkube`` with bounded retries and Strongroom errors.

The sync talks to Kubernetes only through :class:`KubeClient`; the same code runs against a cluster
and against ``strongroom.testing.kube_api`` (both load a kubeconfig). Responses are plain dicts.
Retries (api-conventions, "HTTP Status codes"): 429 honours ``Retry-After``; 500, 502, 503, 504 and
connection errors back off exponentially; everything is bounded by ``max_attempts``.
"""

from __future__ import annotations

__all__ = ["KubeClient", "KubernetesAPIError", "load_config"]

import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar, cast

import httpx2
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import Namespace, Secret
from lightkube.types import PatchType

from strongroom.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StrongroomError,
    UsageError,
)

FIELD_MANAGER = "strongroom"
_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_WORKLOADS: dict[str, Any] = {"Deployment": Deployment, "StatefulSet": StatefulSet}
T = TypeVar("T")


class KubernetesAPIError(StrongroomError):
    """The Kubernetes API kept failing (429, 5xx, unreachable) after the bounded retries."""

    http_status = 502
    code = "kubernetes_unavailable"


def load_config(kubeconfig: str | None = None, context: str | None = None) -> KubeConfig:
    """``--kubeconfig``, else in-cluster service account, else ``KUBECONFIG``, else ``~/.kube/config``."""
    try:
        if kubeconfig:
            config = KubeConfig.from_file(kubeconfig)
        elif os.environ.get("KUBECONFIG"):
            config = KubeConfig.from_file(os.environ["KUBECONFIG"].split(os.pathsep)[0])
        else:
            config = KubeConfig.from_env()
        if context is not None:
            config.get(context_name=context)
    except (ConfigError, KeyError, OSError, ValueError) as exc:
        raise UsageError(
            f"cannot load the Kubernetes configuration: {exc}", hint="pass --kubeconfig and --context"
        ) from None
    if context is not None:
        config.current_context = context
    return config


def _status_message(exc: ApiError) -> str:
    status = exc.status
    message = (getattr(status, "message", None) or "").strip()
    return message[:300]


class KubeClient:
    """The Kubernetes operations Strongroom needs, over one thread-safe lightkube :class:`Client`."""

    def __init__(
        self,
        client: Client,
        *,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None, **options: Any) -> KubeClient:
        config = load_config(kubeconfig, context)
        client = Client(config=config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(30.0), lazy=False)
        return cls(client, **options)

    def close(self) -> None:
        self._client.close()

    # -- retries and errors -----------------------------------------------------------------

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return operation()
            except ApiError as exc:
                code = exc.status.code or exc.response.status_code
                if code in _RETRYABLE and attempt < self._max_attempts:
                    self._sleep(self._delay(attempt, exc.response.headers.get("Retry-After")))
                    continue
                raise self._translate(what, code, exc) from None
            except httpx2.TransportError as exc:
                if attempt < self._max_attempts:
                    self._sleep(self._delay(attempt, None))
                    continue
                raise KubernetesAPIError(
                    f"{what}: the Kubernetes API cannot be reached ({type(exc).__name__})",
                    hint="check the server address in the kubeconfig and the network",
                ) from None

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), 30.0)
            except ValueError:
                pass
        backoff: float = min(self._base_delay * 2.0 ** (attempt - 1), self._max_delay)
        return backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography

    @staticmethod
    def _translate(what: str, code: int, exc: ApiError) -> StrongroomError:
        message = _status_message(exc)
        text = f"{what}: {message}" if message else f"{what}: HTTP {code}"
        if code == 401:
            return AuthenticationError(text, hint="the kubeconfig credentials were refused; refresh them")
        if code == 403:
            return PermissionDeniedError(text, hint="grant Strongroom's account RBAC rights on Secrets there")
        if code == 404:
            return NotFoundError(text)
        if code == 409:
            return ConflictError(text, hint="it changed meanwhile; run the sync again")
        if code == 422 or code == 400:
            return InvalidInputError(text)
        if code in _RETRYABLE:
            return KubernetesAPIError(f"{text} (still failing after retries)", hint="try again later")
        return KubernetesAPIError(text)

    # -- namespaces --------------------------------------------------------------------------

    def list_namespaces(self) -> list[dict[str, Any]]:
        return self._call("list namespaces", lambda: [n.to_dict() for n in self._client.list(Namespace)])

    def get_namespace(self, name: str) -> dict[str, Any] | None:
        try:
            return self._call(f"get namespace {name}", lambda: self._client.get(Namespace, name).to_dict())
        except NotFoundError:
            return None

    def create_namespace(self, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> None:
        body = cast(
            Namespace,
            Namespace.from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations)},
                }
            ),
        )
        self._call(f"create namespace {name}", lambda: self._client.create(body))

    def delete_namespace(self, name: str) -> None:
        self._call(f"delete namespace {name}", lambda: self._client.delete(Namespace, name))

    # -- secrets -----------------------------------------------------------------------------

    def list_secrets(self, namespace: str | None, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Secrets in ``namespace`` (``None``: every namespace), optionally by label."""
        where = f"in namespace {namespace}" if namespace else "in all namespaces"

        def run() -> list[dict[str, Any]]:
            found: Iterable[Any] = self._client.list(
                Secret, namespace=namespace if namespace else "*", labels=dict(labels) if labels else None
            )
            return [s.to_dict() for s in found]

        return self._call(f"list Secrets {where}", run)

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call(
                f"get Secret {namespace}/{name}", lambda: self._client.get(Secret, name, namespace=namespace).to_dict()
            )
        except NotFoundError:
            return None

    def create_secret(self, manifest: Mapping[str, Any]) -> None:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        body = cast(Secret, Secret.from_dict(dict(manifest)))
        self._call(f"create Secret {namespace}/{name}", lambda: self._client.create(body, namespace=namespace))

    def replace_secret(self, manifest: Mapping[str, Any]) -> None:
        """PUT the whole Secret; ``metadata.resourceVersion`` in it makes the write conditional (409 if stale)."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        body = cast(Secret, Secret.from_dict(dict(manifest)))
        self._call(f"replace Secret {namespace}/{name}", lambda: self._client.replace(body))

    def delete_secret(self, namespace: str, name: str) -> None:
        self._call(f"delete Secret {namespace}/{name}", lambda: self._client.delete(Secret, name, namespace=namespace))

    # -- workloads ---------------------------------------------------------------------------

    def list_workloads(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for kind, resource in _WORKLOADS.items():
            items = self._call(f"list {kind}s in namespace {namespace}", partial(self._list_all, resource, namespace))
            out.extend((kind, item) for item in items)
        return out

    def _list_all(self, resource: Any, namespace: str) -> list[dict[str, Any]]:
        return [w.to_dict() for w in self._client.list(resource, namespace=namespace)]

    def annotate_pod_template(self, kind: str, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        """Merge ``annotations`` into the pod template (a rollout, as ``kubectl rollout restart`` does)."""
        patch = {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}
        self._call(
            f"restart {kind} {namespace}/{name}",
            lambda: self._client.patch(_WORKLOADS[kind], name, patch, namespace=namespace, patch_type=PatchType.MERGE),
        )
