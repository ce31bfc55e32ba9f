"""``Status`` errors for the fake Kubernetes API server (:mod:`strongroom.testing.kube_api`).

Every failed request is answered with a ``Status`` object, as the API conventions require
("Response Status Kind",
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#response-status-kind),
with the HTTP code and ``reason`` pairs listed under "HTTP Status codes" in the same document. The
messages copy the wording of the real API server (``k8s.io/apimachinery/pkg/api/errors`` and
``k8s.io/apimachinery/pkg/util/validation/field``) so that clients that match on them behave the same.
"""

from __future__ import annotations

__all__ = [
    "FieldError",
    "KubeAPIError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "forbidden",
    "injected",
    "invalid",
    "method_not_allowed",
    "not_found",
    "qualified_kind",
    "qualified_resource",
    "request_too_large",
    "route_not_found",
    "unauthorized",
    "unsupported_media_type",
]

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Reasons for the status codes a test may inject (api-conventions.md, "Response Status Kind").
_REASON_FOR_CODE: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_MESSAGE_FOR_CODE: dict[int, str] = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected failure",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be processing the request",
}


class KubeAPIError(Exception):
    """A failed API request: an HTTP status code plus the ``Status`` body that explains it."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def status(self) -> dict[str, Any]:
        """The ``Status`` object (api-conventions.md, "Response Status Kind") sent as the response body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"KubeAPIError({self.code}, {self.reason!r}, {self.message!r})"


# --------------------------------------------------------------------------- naming helpers


def qualified_resource(resource: str, group: str) -> str:
    """``secrets`` or ``deployments.apps``: how the server names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def qualified_kind(kind: str, group: str) -> str:
    """``Secret`` or ``Deployment.apps``: how the server names a kind in ``Invalid`` messages."""
    return f"{kind}.{group}" if group else kind


def _details(resource: str, group: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


# --------------------------------------------------------------------------- field errors

_MISSING: Any = object()


@dataclass(frozen=True)
class FieldError:
    """One validation failure, as ``k8s.io/apimachinery/pkg/util/validation/field.Error``.

    ``type`` is the ``StatusCause`` reason (``FieldValueInvalid``, ``FieldValueRequired``,
    ``FieldValueForbidden``, ``FieldValueTooLong``, ``FieldValueDuplicate``).
    """

    type: str
    field: str
    detail: str = ""
    value: Any = _MISSING

    _LABELS = {
        "FieldValueInvalid": "Invalid value",
        "FieldValueRequired": "Required value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueNotSupported": "Unsupported value",
    }

    @classmethod
    def invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        """``<path>: Invalid value: <value>: <detail>``."""
        return cls("FieldValueInvalid", path, detail, value)

    @classmethod
    def required(cls, path: str, detail: str = "") -> FieldError:
        """``<path>: Required value[: <detail>]``."""
        return cls("FieldValueRequired", path, detail)

    @classmethod
    def forbidden(cls, path: str, detail: str) -> FieldError:
        """``<path>: Forbidden: <detail>``."""
        return cls("FieldValueForbidden", path, detail)

    @classmethod
    def too_long(cls, path: str, limit: int) -> FieldError:
        """``<path>: Too long: may not be more than <limit> bytes``."""
        return cls("FieldValueTooLong", path, f"may not be more than {limit} bytes")

    def body(self) -> str:
        """The error without its field path (``field.Error.ErrorBody``)."""
        text = self._LABELS.get(self.type, self.type)
        if self.value is not _MISSING:
            text += f": {_render_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        """This error as a ``StatusCause``."""
        return {"reason": self.type, "message": self.body(), "field": self.field}


def _render_value(value: Any) -> str:
    """Roughly Go's ``%q`` for strings and ``%v`` for the rest."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- constructors


def not_found(resource: str, group: str, name: str) -> KubeAPIError:
    """404 ``NotFound``: ``secrets "x" not found``."""
    return KubeAPIError(
        404, "NotFound", f'{qualified_resource(resource, group)} "{name}" not found', _details(resource, group, name)
    )


def route_not_found() -> KubeAPIError:
    """404 for a path the server does not serve at all."""
    return KubeAPIError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: str, group: str, name: str) -> KubeAPIError:
    """409 ``AlreadyExists``: ``secrets "x" already exists`` (api-conventions.md, "Idempotency")."""
    return KubeAPIError(
        409,
        "AlreadyExists",
        f'{qualified_resource(resource, group)} "{name}" already exists',
        _details(resource, group, name),
    )


def conflict(
    resource: str, group: str, name: str, why: str, causes: Sequence[Mapping[str, str]] | None = None
) -> KubeAPIError:
    """409 ``Conflict``: ``Operation cannot be fulfilled on secrets "x": <why>``."""
    details = _details(resource, group, name)
    if causes:
        details["causes"] = [dict(cause) for cause in causes]
    return KubeAPIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified_resource(resource, group)} "{name}": {why}',
        details,
    )


def invalid(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> KubeAPIError:
    """422 ``Invalid``: ``Secret "x" is invalid: <errors>``, one ``StatusCause`` per error."""
    rendered = [str(error) for error in errors]
    aggregate = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [error.cause() for error in errors]
    return KubeAPIError(422, "Invalid", f'{qualified_kind(kind, group)} "{name}" is invalid: {aggregate}', details)


def forbidden(resource: str, group: str, name: str, why: str) -> KubeAPIError:
    """403 ``Forbidden``: ``secrets "x" is forbidden: <why>`` (``secrets is forbidden`` without a name)."""
    subject = qualified_resource(resource, group)
    subject = f'{subject} "{name}"' if name else subject
    return KubeAPIError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(resource, group, name))


def unauthorized() -> KubeAPIError:
    """401 ``Unauthorized``, exactly as the API server sends it."""
    return KubeAPIError(401, "Unauthorized", "Unauthorized")


def bad_request(message: str) -> KubeAPIError:
    """400 ``BadRequest``: the request can never succeed as sent."""
    return KubeAPIError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> KubeAPIError:
    """405 ``MethodNotAllowed``."""
    return KubeAPIError(405, "MethodNotAllowed", message)


def unsupported_media_type(accepted: Sequence[str]) -> KubeAPIError:
    """415 ``UnsupportedMediaType``: the body's ``Content-Type`` is not one the endpoint takes."""
    return KubeAPIError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
    )


def expired(message: str) -> KubeAPIError:
    """410 ``Expired``: e.g. a ``continue`` token that is too old."""
    return KubeAPIError(410, "Expired", message)


def request_too_large(limit: int) -> KubeAPIError:
    """413: the request body is over the server's limit."""
    return KubeAPIError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def injected(code: int, message: str | None, retry_after: float | None) -> KubeAPIError:
    """A failure a test asked for (``FakeKubernetesAPI.inject_failure``), with ``Retry-After`` if given."""
    reason = _REASON_FOR_CODE.get(code, "Unknown")
    text = message or _MESSAGE_FOR_CODE.get(code, f"injected failure ({code})")
    details: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if retry_after is not None:
        seconds = max(0, math.ceil(retry_after))
        details["retryAfterSeconds"] = seconds
        headers["Retry-After"] = str(seconds)
    return KubeAPIError(code, reason, text, details, headers)
