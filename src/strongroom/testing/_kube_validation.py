"""Validation rules of the fake Kubernetes API server (:mod:`strongroom.testing.kube_api`).

The rules and their messages follow the real API server
(``k8s.io/apimachinery/pkg/util/validation`` and ``pkg/apis/core/validation``) as documented in:

* "Object Names and IDs" (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/):
  most names are DNS-1123 subdomains, namespace names are DNS-1123 labels;
* "Labels and Selectors" / "Annotations": label keys are qualified names, values at most 63 characters,
  annotations at most 256 KiB in total;
* "Secrets" (https://kubernetes.io/docs/concepts/configuration/secret/): data keys match
  ``[-._a-zA-Z0-9]+``, a Secret holds at most 1 MiB (``#restriction-data-size``), the built-in types
  require their keys (``#secret-types``), an immutable Secret's data cannot change (``#secret-immutable``)
  and the ``type`` of any Secret is immutable;
* API conventions, "Validation": failures are ``Invalid`` (422) with one cause per field.
"""

from __future__ import annotations

__all__ = [
    "MAX_ANNOTATIONS_BYTES",
    "MAX_SECRET_BYTES",
    "is_config_key",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_qualified_name",
    "is_valid_label_value",
    "validate_metadata",
    "validate_secret",
    "validate_secret_update",
    "validate_workload",
    "validate_workload_update",
]

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from strongroom.testing._kube_errors import FieldError

#: "The maximum size of a Secret is 1 MiB" (Secrets, "Restrictions": ``#restriction-data-size``).
MAX_SECRET_BYTES = 1024 * 1024
#: Total size limit of all annotations on an object (``TotalAnnotationSizeLimitB``).
MAX_ANNOTATIONS_BYTES = 256 * 1024

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"
_CONFIG_KEY = "[-._a-zA-Z0-9]+"

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    f"'{_DNS1123_LABEL}')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_DNS1123_SUBDOMAIN}')"
)
_QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    f"'{_QUALIFIED_NAME}')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    f"validation is '{_LABEL_VALUE}')"
)
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    f"'KEY_NAME',  or 'key-name', regex used for validation is '{_CONFIG_KEY}')"
)


def is_dns1123_label(value: str) -> list[str]:
    """Problems with ``value`` as a DNS-1123 label (empty when valid)."""
    problems: list[str] = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not re.fullmatch(_DNS1123_LABEL, value):
        problems.append(_LABEL_MSG)
    return problems


def is_dns1123_subdomain(value: str) -> list[str]:
    """Problems with ``value`` as a DNS-1123 subdomain (empty when valid)."""
    problems: list[str] = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not re.fullmatch(_DNS1123_SUBDOMAIN, value):
        problems.append(_SUBDOMAIN_MSG)
    return problems


def is_qualified_name(value: str) -> list[str]:
    """Problems with ``value`` as a label or annotation key (``[prefix/]name``)."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        prefix_problems = is_dns1123_subdomain(prefix)
        if prefix_problems:
            return ["prefix part " + problem for problem in prefix_problems]
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            f"validation is '{_QUALIFIED_NAME}') with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    if not name:
        return ["name part must be non-empty"]
    problems: list[str] = []
    if len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not re.fullmatch(_QUALIFIED_NAME, name):
        problems.append(_QUALIFIED_NAME_MSG)
    return problems


def is_valid_label_value(value: str) -> list[str]:
    """Problems with ``value`` as a label value (empty when valid)."""
    problems: list[str] = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not re.fullmatch(_LABEL_VALUE, value):
        problems.append(_LABEL_VALUE_MSG)
    return problems


def is_config_key(value: str) -> list[str]:
    """Problems with ``value`` as a Secret/ConfigMap data key (empty when valid)."""
    problems: list[str] = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not re.fullmatch(_CONFIG_KEY, value):
        problems.append(_CONFIG_KEY_MSG)
    if value == ".":
        problems.append("must not be '.'")
    elif value == "..":
        problems.append("must not be '..'")
    elif value.startswith(".."):
        problems.append("must not start with '..'")
    return problems


# --------------------------------------------------------------------------- metadata


def validate_metadata(metadata: Mapping[str, Any], name_check: Callable[[str], list[str]]) -> list[FieldError]:
    """Name, labels and annotations of ``metadata`` (ObjectMeta validation)."""
    errors: list[FieldError] = []
    name = metadata.get("name")
    if not name:
        errors.append(FieldError.required("metadata.name", "name or generateName is required"))
    else:
        errors.extend(FieldError.invalid("metadata.name", name, problem) for problem in name_check(str(name)))
    labels = metadata.get("labels") or {}
    for key, value in labels.items():
        errors.extend(FieldError.invalid("metadata.labels", key, problem) for problem in is_qualified_name(key))
        errors.extend(FieldError.invalid("metadata.labels", value, problem) for problem in is_valid_label_value(value))
    annotations = metadata.get("annotations") or {}
    total = 0
    for key, value in annotations.items():
        errors.extend(
            FieldError.invalid("metadata.annotations", key, problem) for problem in is_qualified_name(key.lower())
        )
        total += len(key) + len(value)
    if total > MAX_ANNOTATIONS_BYTES:
        errors.append(FieldError.too_long("metadata.annotations", MAX_ANNOTATIONS_BYTES))
    return errors


# --------------------------------------------------------------------------- secrets


def _decoded(data: Mapping[str, str], key: str) -> bytes | None:
    value = data.get(key)
    return None if value is None else base64.b64decode(value)


def validate_secret(secret: Mapping[str, Any]) -> list[FieldError]:
    """Secret validation: data keys, total size and the keys each built-in type requires.

    ``secret["data"]`` holds canonical base64 strings (the decoder has already checked them).
    """
    errors: list[FieldError] = []
    data: dict[str, str] = secret.get("data") or {}
    total = 0
    for key, value in data.items():
        errors.extend(FieldError.invalid(f"data[{key}]", key, problem) for problem in is_config_key(key))
        total += len(base64.b64decode(value))
    if total > MAX_SECRET_BYTES:
        errors.append(FieldError.too_long("data", MAX_SECRET_BYTES))

    secret_type = secret.get("type", "Opaque")
    if secret_type == "kubernetes.io/dockerconfigjson":
        raw = _decoded(data, ".dockerconfigjson")
        if raw is None:
            errors.append(FieldError.required("data[.dockerconfigjson]"))
        else:
            try:
                json.loads(raw)
            except ValueError as exc:
                errors.append(FieldError.invalid("data[.dockerconfigjson]", "<secret contents redacted>", str(exc)))
    elif secret_type == "kubernetes.io/dockercfg":
        raw = _decoded(data, ".dockercfg")
        if raw is None:
            errors.append(FieldError.required("data[.dockercfg]"))
        else:
            try:
                json.loads(raw)
            except ValueError as exc:
                errors.append(FieldError.invalid("data[.dockercfg]", "<secret contents redacted>", str(exc)))
    elif secret_type == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errors.append(FieldError.required("data[username]"))
            errors.append(FieldError.required("data[password]"))
    elif secret_type == "kubernetes.io/ssh-auth":
        if not _decoded(data, "ssh-privatekey"):
            errors.append(FieldError.required("data[ssh-privatekey]"))
    elif secret_type == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in data:
                errors.append(FieldError.required(f"data[{key}]"))
    elif secret_type == "kubernetes.io/service-account-token":
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            errors.append(FieldError.required("metadata.annotations[kubernetes.io/service-account.name]"))
    return errors


def validate_secret_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """Update rules: ``type`` never changes; an immutable Secret keeps its data and stays immutable."""
    errors: list[FieldError] = []
    if new.get("type", "Opaque") != old.get("type", "Opaque"):
        errors.append(FieldError.invalid("type", new.get("type", "Opaque"), "field is immutable"))
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errors.append(FieldError.forbidden("immutable", "field is immutable when `immutable` is set"))
        if (new.get("data") or {}) != (old.get("data") or {}):
            errors.append(FieldError.forbidden("data", "field is immutable when `immutable` is set"))
    return errors


# --------------------------------------------------------------------------- workloads


def validate_workload(kind: str, body: Mapping[str, Any]) -> list[FieldError]:
    """A deliberately small subset of Deployment / StatefulSet validation.

    Checks what a client most often gets wrong: the selector is required, non-empty and matches the
    pod template's labels; there is at least one container, each with a name and an image;
    ``replicas`` is not negative. The rest of the pod template is stored as sent.
    """
    errors: list[FieldError] = []
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return [FieldError.required("spec")]
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errors.append(FieldError.invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    raw_template = spec.get("template")
    template: Mapping[str, Any] = raw_template if isinstance(raw_template, Mapping) else {}
    raw_template_metadata = template.get("metadata")
    template_metadata: Mapping[str, Any] = raw_template_metadata if isinstance(raw_template_metadata, Mapping) else {}
    template_labels = template_metadata.get("labels") or {}
    if not isinstance(selector, Mapping):
        errors.append(FieldError.required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errors.append(FieldError.invalid("spec.selector", selector, f"empty selector is invalid for {kind.lower()}"))
    else:
        from strongroom.testing._kube_selectors import LabelSelector

        if not LabelSelector.from_label_selector_object(selector).matches(template_labels):
            errors.append(
                FieldError.invalid(
                    "spec.template.metadata.labels", template_labels, "`selector` does not match template `labels`"
                )
            )
    raw_pod_spec = template.get("spec")
    pod_spec: Mapping[str, Any] = raw_pod_spec if isinstance(raw_pod_spec, Mapping) else {}
    containers = pod_spec.get("containers")
    if not containers or not isinstance(containers, list):
        errors.append(FieldError.required("spec.template.spec.containers"))
    else:
        for index, container in enumerate(containers):
            path = f"spec.template.spec.containers[{index}]"
            if not isinstance(container, Mapping):
                errors.append(FieldError.invalid(path, container, "must be an object"))
                continue
            if not container.get("name"):
                errors.append(FieldError.required(f"{path}.name"))
            if not container.get("image"):
                errors.append(FieldError.required(f"{path}.image"))
    return errors


#: StatefulSet spec fields that may change after creation (the rest are immutable).
_STATEFULSET_MUTABLE = {
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
}


def validate_workload_update(kind: str, new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """``spec.selector`` is immutable in apps/v1; a StatefulSet may change only a few spec fields."""
    errors: list[FieldError] = []
    new_spec = new.get("spec") or {}
    old_spec = old.get("spec") or {}
    if new_spec.get("selector") != old_spec.get("selector"):
        errors.append(FieldError.invalid("spec.selector", new_spec.get("selector"), "field is immutable"))
    elif kind == "StatefulSet":
        fixed_new = {k: v for k, v in new_spec.items() if k not in _STATEFULSET_MUTABLE}
        fixed_old = {k: v for k, v in old_spec.items() if k not in _STATEFULSET_MUTABLE}
        if fixed_new != fixed_old:
            errors.append(
                FieldError.forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                )
            )
    return errors
