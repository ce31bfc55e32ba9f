"""The Pulumi bridge: an environment's ``pulumiConfig`` into a stack file, and drift back out.

``sync_pulumi`` writes every ``pulumiConfig`` key into ``Pulumi.<stack>.yaml`` (secrets as
``secure: v1:...`` under Pulumi's passphrase provider), ``pulumi_status`` reports drift, and
``stack_config`` hands the same values to the Automation API. See docs/pulumi.md.
"""

from __future__ import annotations

__all__ = [
    "ConfigValue",
    "PulumiChange",
    "PulumiStatus",
    "PulumiSyncResult",
    "pulumi_status",
    "read_passphrase",
    "stack_config",
    "sync_pulumi",
]

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom._pulumi_crypto import KeyDerivation, PassphraseCrypter, derive_key
from strongroom._pulumi_stack import (
    StackFile,
    detect_provider,
    find_stack_file,
    project_name,
    read_managed,
    require_dir,
    write_atomic,
    write_managed,
)
from strongroom.errors import ConflictError, DefinitionError, InvalidInputError, KeyUnavailableError
from strongroom.model import RevisionRef

if TYPE_CHECKING:
    from strongroom.language import EvalValue
    from strongroom.service import Service


@dataclass(frozen=True, slots=True)
class Secure:
    """A secret leaf of a config value (plaintext; never shown)."""

    text: str

    def __repr__(self) -> str:
        return "Secure('[secret]')"


#: A config value as Strongroom compares it: scalars, Secure leaves, dicts and lists of those.
Desired = Any


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """What ``Stack.set_all_config`` takes, used when the ``pulumi`` package is not installed."""

    value: str
    secret: bool = False

    def __repr__(self) -> str:
        return f"ConfigValue(value={'[secret]' if self.secret else repr(self.value)}, secret={self.secret})"


@dataclass(frozen=True, slots=True)
class PulumiChange:
    """One key of a sync: ``added``, ``changed``, ``removed``, ``unchanged``, ``conflict`` or ``kept``.

    ``kept``: written by Strongroom, no longer in the environment, left in place without ``--prune``.
    """

    key: str
    kind: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class PulumiSyncResult:
    stack_file: Path
    changes: tuple[PulumiChange, ...]
    written: bool
    created_salt: bool = False

    @property
    def changed(self) -> bool:
        return any(c.kind in ("added", "changed", "removed") for c in self.changes)


@dataclass(frozen=True, slots=True)
class PulumiStatus:
    """Drift of a stack file against the environment: (key, ``changed``/``missing``/``not synced``/``kept``)."""

    stack_file: Path
    drift: tuple[tuple[str, str], ...]
    in_sync: tuple[str, ...] = field(default=())

    @property
    def drifted(self) -> bool:
        return bool(self.drift)


# --------------------------------------------------------------------------- the passphrase


def read_passphrase(environ: Mapping[str, str]) -> str:
    """``PULUMI_CONFIG_PASSPHRASE``, else the file ``PULUMI_CONFIG_PASSPHRASE_FILE`` (trimmed), as Pulumi reads them."""
    phrase = environ.get("PULUMI_CONFIG_PASSPHRASE")
    if phrase is not None:
        return phrase
    path = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise KeyUnavailableError(
                "PULUMI_CONFIG_PASSPHRASE_FILE cannot be read", hint="point it at a readable file with the passphrase"
            ) from None
    raise KeyUnavailableError(
        "no Pulumi passphrase: set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE",
        hint="the stack's secrets are encrypted with it, as `pulumi config set --secret` does",
    )


class _Crypter:
    """The run's one passphrase crypter, built on first use (PBKDF2 runs at most once per run)."""

    def __init__(self, stack: StackFile, provider: str, environ: Mapping[str, str], derive: KeyDerivation) -> None:
        self._stack = stack
        self._provider = provider
        self._environ = environ
        self._derive = derive
        self._crypter: PassphraseCrypter | None = None
        self.created = False

    def get(self) -> PassphraseCrypter:
        if self._crypter is None:
            phrase = read_passphrase(self._environ)
            if self._provider == "passphrase":
                self._crypter = PassphraseCrypter.from_state(
                    phrase, str(self._stack.doc["encryptionsalt"]), derive=self._derive
                )
            else:
                self._crypter = PassphraseCrypter.create(phrase, derive=self._derive)
                self.created = True
        return self._crypter


# --------------------------------------------------------------------------- values


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _desired(v: EvalValue, secret: bool = False) -> Desired:
    secret = secret or v.secret
    if v.unknown:
        raise DefinitionError("a pulumiConfig value is not known (a provider was not opened)")
    if isinstance(v.value, dict):
        return {k: _desired(child, secret) for k, child in v.value.items()}
    if isinstance(v.value, list):
        return [_desired(child, secret) for child in v.value]
    return Secure(_scalar_text(v.value)) if secret else v.value


def _has_secret(value: Desired) -> bool:
    if isinstance(value, Secure):
        return True
    if isinstance(value, dict):
        return any(_has_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secret(v) for v in value)
    return False


def _decode(node: Any, crypter: Callable[[], PassphraseCrypter]) -> Desired:
    """A stack-file value as :data:`Desired` (``secure:`` leaves decrypted)."""
    if isinstance(node, dict):
        if set(node) == {"secure"} and isinstance(node["secure"], str):
            return Secure(crypter().decrypt(node["secure"]))
        return {str(k): _decode(v, crypter) for k, v in node.items()}
    if isinstance(node, list):
        return [_decode(v, crypter) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _same(a: Desired, b: Desired) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _encode(value: Desired, crypter: Callable[[], PassphraseCrypter]) -> Any:
    """``value`` as ruamel nodes, secrets encrypted."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, Secure):
        node = CommentedMap()
        node["secure"] = crypter().encrypt(value.text)
        return node
    if isinstance(value, dict):
        node = CommentedMap()
        for k, v in value.items():
            node[k] = _encode(v, crypter)
        return node
    if isinstance(value, list):
        return CommentedSeq([_encode(v, crypter) for v in value])
    return value


def _merge(old: Any, new: Any) -> Any:
    """``new`` written into ``old`` in place where both are mappings or sequences, keeping comments."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            old[key] = _merge(old[key], value) if key in old else value
        return old
    if isinstance(old, list) and isinstance(new, list):
        for i, value in enumerate(new):
            if i < len(old):
                old[i] = _merge(old[i], value)
            else:
                old.append(value)
        del old[len(new) :]
        return old
    return new


def _environment_config(service: Service, ref: RevisionRef, project: str | None) -> tuple[dict[str, Desired], int]:
    from strongroom.language import project_pulumi_config

    _value, ev = service.open(ref)
    projection = project_pulumi_config(ev)
    if projection.diagnostics:
        diagnostics = tuple(d.to_diagnostic() for d in projection.diagnostics)
        raise DefinitionError(f"{ref}: {diagnostics[0]}", diagnostics=diagnostics)
    out: dict[str, Desired] = {}
    for key, projected in projection.items():
        full = key
        if ":" not in key:
            if project is None:
                raise InvalidInputError(
                    f"pulumiConfig key {key!r} has no namespace and no Pulumi.yaml gives the project name",
                    hint='write "project:key", or run in the Pulumi project folder (--cwd)',
                )
            full = f"{project}:{key}"
        out[full] = _desired(projected.value)
    revision = service.resolve(ref).number
    return out, revision


# --------------------------------------------------------------------------- sync


def sync_pulumi(
    service: Service,
    ref: RevisionRef,
    stack: str,
    *,
    cwd: Path | str = ".",
    plan_only: bool = False,
    prune: bool = False,
    adopt: bool = False,
    environ: Mapping[str, str] | None = None,
    derive: KeyDerivation = derive_key,
) -> PulumiSyncResult:
    """Write ``ref``'s ``pulumiConfig`` into the stack file of ``stack`` in ``cwd``.

    Nothing is written when ``plan_only``, when a key is refused (not written by Strongroom,
    no ``adopt``), or when the passphrase is wrong. Records a ``sync.pulumi`` audit event.
    """
    environ = os.environ if environ is None else environ
    folder = require_dir(Path(cwd))
    path = find_stack_file(folder, stack)
    stack_file = StackFile.load(path)
    desired, revision = _environment_config(service, ref, project_name(folder))
    provider = detect_provider(stack_file, folder, environ)
    crypter = _Crypter(stack_file, provider, environ, derive)

    config = stack_file.config
    managed = read_managed(path)
    managed_set = set(managed)
    changes: list[PulumiChange] = []
    for key, value in desired.items():
        secret = _has_secret(value)
        if key not in config:
            changes.append(PulumiChange(key, "added", secret))
        elif key not in managed_set and not adopt:
            changes.append(PulumiChange(key, "conflict", secret))
        elif _same(_decode(config[key], crypter.get), value):
            changes.append(PulumiChange(key, "unchanged", secret))
        else:
            changes.append(PulumiChange(key, "changed", secret))
    for key in managed:
        if key not in desired:
            kind = ("removed" if key in config else "gone") if prune else "kept"
            if kind != "gone":
                changes.append(PulumiChange(key, kind))

    conflicts = [c.key for c in changes if c.kind == "conflict"]
    if plan_only:
        _record(service, ref, revision, path, changes, "plan")
        return PulumiSyncResult(path, tuple(changes), written=False)
    if conflicts:
        _record(service, ref, revision, path, changes, "refused", outcome="error")
        raise ConflictError(
            f"{path.name} already has {len(conflicts)} key(s) Strongroom did not write: {', '.join(conflicts)}",
            hint="pass --adopt to take them over, or remove them from pulumiConfig",
        )

    writes = [c for c in changes if c.kind in ("added", "changed", "removed")]
    new_managed = [k for k in managed if k in desired or (not prune and k in config)]
    new_managed += [k for k in desired if k not in new_managed]
    if writes:
        config = stack_file.ensure_config()
        for change in writes:
            if change.kind == "removed":
                del config[change.key]
            elif change.key in config:
                config[change.key] = _merge(config[change.key], _encode(desired[change.key], crypter.get))
            else:
                config[change.key] = _encode(desired[change.key], crypter.get)
        if crypter.created:
            stack_file.set_encryption_salt(crypter.get().state)
        data = stack_file.dump()
        # write-ahead: claim the union first, so a crash never leaves a written key unclaimed
        write_managed(path, list(dict.fromkeys([*managed, *new_managed])), str(ref.env))
        write_atomic(path, data)
    if new_managed != managed or writes:
        write_managed(path, new_managed, str(ref.env))
    _record(service, ref, revision, path, changes, "apply")
    return PulumiSyncResult(path, tuple(changes), written=bool(writes), created_salt=crypter.created)


def _record(
    service: Service,
    ref: RevisionRef,
    revision: int,
    path: Path,
    changes: list[PulumiChange],
    mode: str,
    *,
    outcome: str = "ok",
) -> None:
    details = [("mode", mode), ("stack_file", str(path))]
    details.extend((f"key:{c.key}", c.kind) for c in changes if c.kind != "unchanged")
    service.record(service.event("sync.pulumi", env=ref.env, revision=revision, outcome=outcome, details=details))


# --------------------------------------------------------------------------- status


def pulumi_status(
    service: Service,
    ref: RevisionRef,
    stack: str,
    *,
    cwd: Path | str = ".",
    environ: Mapping[str, str] | None = None,
    derive: KeyDerivation = derive_key,
) -> PulumiStatus:
    """Compare the managed keys of the stack file with the environment (decrypting ``secure:`` values).

    Drift: a managed key whose value differs (``changed``, e.g. after ``pulumi config set``) or
    that is gone (``missing``), a key of the environment never synced (``not synced``), and a
    managed key the environment no longer has (``kept``).
    """
    environ = os.environ if environ is None else environ
    folder = require_dir(Path(cwd))
    path = find_stack_file(folder, stack)
    stack_file = StackFile.load(path)
    desired, _revision = _environment_config(service, ref, project_name(folder))
    crypter = _Crypter(stack_file, detect_provider(stack_file, folder, environ), environ, derive)
    config = stack_file.config
    managed = read_managed(path)
    drift: list[tuple[str, str]] = []
    in_sync: list[str] = []
    for key, value in desired.items():
        if key not in managed:
            drift.append((key, "not synced"))
        elif key not in config:
            drift.append((key, "missing"))
        elif _same(_decode(config[key], crypter.get), value):
            in_sync.append(key)
        else:
            drift.append((key, "changed"))
    drift.extend((key, "kept") for key in managed if key not in desired)
    return PulumiStatus(path, tuple(drift), tuple(in_sync))


# --------------------------------------------------------------------------- Automation API


def _plain(value: Desired) -> Any:
    if isinstance(value, Secure):
        return value.text
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def stack_config(env: str | RevisionRef, *, service: Service | None = None) -> dict[str, ConfigValue]:
    """``pulumiConfig`` of ``env`` as ``{key: ConfigValue(value, secret)}`` for ``Stack.set_all_config``.

    Scalars become their text (``587`` -> ``"587"``); objects and arrays become JSON text. ``secret``
    is set when the value holds any secret. The class is ``pulumi.automation.ConfigValue`` when the
    ``pulumi`` package is installed, else :class:`ConfigValue` (same ``value`` and ``secret``).
    Keys are as written in the environment (Pulumi adds the project name to keys without one).
    """
    ref = env if isinstance(env, RevisionRef) else RevisionRef.parse(env)
    owned = None
    if service is None:
        from strongroom.cli.context import AppContext

        owned = AppContext.from_os()
        service = owned.service()
    try:
        from strongroom.language import project_pulumi_config

        _value, ev = service.open(ref)
        projection = project_pulumi_config(ev)
        if projection.diagnostics:
            diagnostics = tuple(d.to_diagnostic() for d in projection.diagnostics)
            raise DefinitionError(f"{ref}: {diagnostics[0]}", diagnostics=diagnostics)
    finally:
        if owned is not None:
            owned.close()
    factory: Callable[..., Any] = ConfigValue
    try:
        from pulumi.automation import ConfigValue as PulumiConfigValue  # type: ignore[import-not-found]

        factory = PulumiConfigValue
    except ImportError:
        pass
    out: dict[str, ConfigValue] = {}
    for key, projected in projection.items():
        value = _plain(_desired(projected.value))
        text = json.dumps(value) if isinstance(value, dict | list) else _scalar_text(value)
        out[key] = factory(value=text, secret=bool(projected.secret))
    return out
