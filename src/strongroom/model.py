"""Frozen value types shared by every layer: names, revision addresses and records."""

from __future__ import annotations

__all__ = [
    "LATEST",
    "MAX_DEFINITION_BYTES",
    "MAX_VALUE_BYTES",
    "AuditEvent",
    "AuditRecord",
    "DeliveryRecord",
    "EnvRef",
    "EnvTagRecord",
    "EnvironmentRecord",
    "OpenSession",
    "RevisionRecord",
    "RevisionRef",
    "Secret",
    "TagRecord",
    "TokenRecord",
    "WebhookRecord",
    "validate_tag_name",
]

import re
from dataclasses import dataclass

from strongroom.errors import Diagnostic, InvalidNameError

#: The largest definition (YAML text, as stored) that Strongroom accepts.
MAX_DEFINITION_BYTES = 1024 * 1024
#: The largest single value ``env set`` accepts.
MAX_VALUE_BYTES = 256 * 1024

LATEST = "latest"

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
_RESERVED_ENV_NAMES = frozenset({"open", "yaml"})


def _check_part(kind: str, value: str, whole: str) -> None:
    if not _NAME_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidNameError(
            f"invalid environment name {whole!r}: the {kind} {value!r} must be 1-100 characters "
            "of letters, digits, '.', '_' or '-', and not '.' or '..'",
            hint="name environments PROJECT/NAME, for example aphiria.com/Preview",
        )


@dataclass(frozen=True, slots=True, order=True)
class EnvRef:
    """An environment's name: ``project/name``."""

    project: str
    name: str

    @classmethod
    def parse(cls, text: str) -> EnvRef:
        if text.count("/") != 1:
            raise InvalidNameError(
                f"invalid environment name {text!r}: expected PROJECT/NAME",
                hint="for example aphiria.com/Preview",
            )
        project, name = text.split("/")
        _check_part("project", project, text)
        _check_part("name", name, text)
        if name in _RESERVED_ENV_NAMES:
            raise InvalidNameError(
                f"invalid environment name {text!r}: {name!r} is reserved",
                hint="choose another name",
            )
        return cls(project, name)

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"


def validate_tag_name(tag: str) -> str:
    if not _NAME_RE.fullmatch(tag) or tag in (".", "..") or tag[0].isdigit():
        raise InvalidNameError(
            f"invalid tag name {tag!r}: a tag is 1-100 characters of letters, digits, '.', '_' "
            "or '-', and does not start with a digit",
            hint="for example: stable",
        )
    if tag == LATEST:
        raise InvalidNameError(
            "the tag 'latest' is reserved: it always points at the newest revision",
            hint="choose another tag name",
        )
    return tag


@dataclass(frozen=True, slots=True)
class RevisionRef:
    """An address of one revision: ``ENV``, ``ENV@4``, ``ENV@stable`` or ``ENV@latest``.

    ``selector`` is an ``int`` revision number, a tag name, or ``None`` for the newest.
    """

    env: EnvRef
    selector: int | str | None = None

    @classmethod
    def parse(cls, text: str) -> RevisionRef:
        if "@" not in text:
            return cls(EnvRef.parse(text))
        env_text, _, sel = text.rpartition("@")
        env = EnvRef.parse(env_text)
        if sel == "" or sel == LATEST:
            return cls(env, None)
        if sel.isascii() and sel.isdigit():
            number = int(sel)
            if number < 1:
                raise InvalidNameError(f"invalid revision {sel!r}: revisions are numbered from 1")
            return cls(env, number)
        if not _NAME_RE.fullmatch(sel) or sel[0].isdigit():
            raise InvalidNameError(
                f"invalid revision {sel!r} in {text!r}: use a revision number or a tag name",
                hint="for example aphiria.com/Preview@4 or aphiria.com/Preview@stable",
            )
        return cls(env, sel)

    def __str__(self) -> str:
        return str(self.env) if self.selector is None else f"{self.env}@{self.selector}"


@dataclass(frozen=True, slots=True)
class EnvironmentRecord:
    """An environment as storage holds it. ``data_key`` is wrapped (ciphertext)."""

    ref: EnvRef
    created_at: str
    latest_revision: int
    data_key: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    """One immutable revision. ``definition`` is YAML with secrets as ciphertext only.

    ``compiled`` is a JSON cache of the parsed definition (same content, ciphertext only)
    so that reads need no YAML parser.
    """

    ref: EnvRef
    number: int
    created_at: str
    author: str
    definition: str
    compiled: str
    #: Warnings found in the definition when it was written (never stored; empty when read back).
    warnings: tuple[Diagnostic, ...] = ()

    def __repr__(self) -> str:
        return f"RevisionRecord(ref={self.ref}, number={self.number}, author={self.author!r})"


@dataclass(frozen=True, slots=True)
class TagRecord:
    name: str
    revision: int
    updated_at: str


class Secret:
    """A secret value in memory. Its ``repr`` and ``str`` never show it; ``reveal()`` does.

    ``Secret(None)`` is a masked secret whose plaintext was not loaded.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "[secret]"

    __str__ = __repr__

    def reveal(self) -> str:
        if self._value is None:
            raise ValueError("this secret was read masked")
        return self._value

    @property
    def revealed(self) -> bool:
        return self._value is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value and self._value is not None

    def __hash__(self) -> int:
        return hash(("secret", self._value))


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something to record. ``details`` never holds plaintext: values appear only as keyed HMACs."""

    at: str
    actor: str
    action: str
    outcome: str = "ok"  # "ok", "denied" or "error"
    environment: str | None = None
    revision: int | None = None
    client: str | None = None
    details: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An :class:`AuditEvent` as stored: numbered and hash-chained to the record before it."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as stored: only a hash of its secret part is kept."""

    token_id: str
    name: str
    role: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: str
    created_by: str
    expires_at: str | None = None
    revoked_at: str | None = None

    def __repr__(self) -> str:
        return f"TokenRecord(token_id={self.token_id!r}, name={self.name!r}, role={self.role!r})"


@dataclass(frozen=True, slots=True)
class EnvTagRecord:
    """A key/value tag on an environment (ESC's environment tags, e.g. ``team: platform``)."""

    name: str
    value: str
    created_at: str
    updated_at: str
    updated_by: str


@dataclass(frozen=True, slots=True)
class OpenSession:
    """An ESC open session: which revision was opened, by whom, until when. It holds no values."""

    session_id: str
    env: EnvRef
    revision: int
    actor: str
    created_at: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A webhook. ``secret`` is the signing secret wrapped by the master key (base64 JSON)."""

    webhook_id: str
    environment: str | None
    url: str
    secret: str
    events: tuple[str, ...]
    created_at: str
    created_by: str
    last_seq: int
    active: bool = True

    def __repr__(self) -> str:
        return f"WebhookRecord(webhook_id={self.webhook_id!r}, environment={self.environment!r}, url={self.url!r})"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One event to deliver to one webhook, and how delivering it went."""

    delivery_id: int
    webhook_id: str
    audit_seq: int
    event: str
    payload: str
    status: str  # "pending", "delivered" or "failed" (gave up)
    attempts: int
    next_attempt_at: str
    last_status: int | None
    last_error: str | None
    created_at: str
    updated_at: str
