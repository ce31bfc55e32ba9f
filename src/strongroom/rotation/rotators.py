"""Rotators: how a new value is made (``create``), applied (``set``), checked (``test``) and the old one retired.

Built in: ``random`` (``openssl rand``-style tokens), ``postgresql`` (a role's password, see
:mod:`strongroom.rotation.postgresql`) and ``manual`` (a person follows the catalog's procedure
and pastes the new value). Others come from the entry-point group
``strongroom.rotators``, loaded only when a rotation asks for one by name.
Rotators never put a value into an exception message, a log line or their output.
"""

from __future__ import annotations

__all__ = [
    "ENTRY_POINT_GROUP",
    "AnnouncesFinish",
    "ManualRotator",
    "RandomRotator",
    "Rotated",
    "Rotator",
    "RotatorIO",
    "load_rotator",
]

import base64
import binascii
import logging
import secrets
import string
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from strongroom.errors import InvalidInputError

ENTRY_POINT_GROUP = "strongroom.rotators"
DEFAULT_BYTES = 32
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rotated:
    """What ``create`` may return instead of a bare value.

    ``extra``: plain (non-secret) values written in the same revision as the new secret,
    by value path (``{'pulumiConfig["postgresql:user"]': "app_clone"}``); kept sealed in the
    rotation state until then. ``memo``: non-secret notes kept in the rotation state, given
    back to ``set``/``test``/``retire`` (and to the next rotation's ``create``) as ``inputs["memo"]``.
    """

    value: str
    extra: Mapping[str, str] = field(default_factory=dict)
    memo: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Rotated(value=[secret], extra={sorted(self.extra)!r}, memo={dict(self.memo)!r})"


@runtime_checkable
class Rotator(Protocol):
    """One kind of rotation. ``inputs`` are the rotator's inputs from the catalog plus ``procedure``
    and ``memo`` (the memo of this rotation, or at ``create`` the previous rotation's; may be empty)."""

    def create(self, current: str | None, inputs: Mapping[str, Any]) -> str | Rotated:
        """The new value (generated, or obtained from a person or a provider)."""
        ...

    def set(self, new: str, inputs: Mapping[str, Any]) -> None:
        """Apply the new value at the provider. Must be idempotent: it is repeated after a crash."""
        ...

    def test(self, new: str, inputs: Mapping[str, Any]) -> None:
        """Raise (an ``InvalidInputError``, never with the value in it) unless the new value works."""
        ...

    def retire(self, old: str, inputs: Mapping[str, Any]) -> None:
        """Retire the previous value once its grace period is over. Must be idempotent."""
        ...


@runtime_checkable
class AnnouncesFinish(Protocol):
    """Optional: a rotator that has something to tell the person once the new value is promoted."""

    def finished(self, inputs: Mapping[str, Any]) -> None: ...


def _echo_err(text: str) -> None:
    import click

    click.echo(text, err=True)


def _read_secret(label: str) -> str:
    """A hidden prompt on a terminal; one line of stdin otherwise (``echo $TOKEN | strongroom rotate ...``)."""
    if sys.stdin is not None and sys.stdin.isatty():
        import click

        value: str = click.prompt(label, hide_input=True, err=True)
        return value
    return sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""


@dataclass(frozen=True, slots=True)
class RotatorIO:
    """How an interactive rotator talks to a person: ``echo`` (to stderr) and ``read_secret`` (hidden)."""

    echo: Callable[[str], None] = field(default=_echo_err)
    read_secret: Callable[[str], str] = field(default=_read_secret)


# -- random ---------------------------------------------------------------------------------------

_ENCODINGS = {"hex": "hex", "base64": "base64", "urlsafe": "urlsafe", "base64url": "urlsafe"}
_HEX = frozenset(string.hexdigits.lower())


def _random_params(inputs: Mapping[str, Any]) -> tuple[int, str]:
    size = inputs.get("bytes", DEFAULT_BYTES)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1024:
        raise InvalidInputError("the random rotator's bytes must be a whole number from 1 to 1024")
    encoding = _ENCODINGS.get(str(inputs.get("encoding", "hex")))
    if encoding is None:
        raise InvalidInputError("the random rotator's encoding must be hex, base64 or urlsafe")
    return size, encoding


class RandomRotator:
    """``bytes`` (default 32) of ``secrets.token_bytes`` as ``hex``, ``base64`` (padded, like
    ``openssl rand -base64``) or ``urlsafe`` (base64url without padding, like ``token_urlsafe``)."""

    def __repr__(self) -> str:
        return "RandomRotator()"

    def create(self, current: str | None, inputs: Mapping[str, Any]) -> str:
        size, encoding = _random_params(inputs)
        raw = secrets.token_bytes(size)
        if encoding == "hex":
            return raw.hex()
        if encoding == "base64":
            return base64.b64encode(raw).decode("ascii")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def set(self, new: str, inputs: Mapping[str, Any]) -> None:
        return None

    def test(self, new: str, inputs: Mapping[str, Any]) -> None:
        size, encoding = _random_params(inputs)
        try:
            if encoding == "hex":
                ok = len(new) == 2 * size and set(new) <= _HEX
            elif encoding == "base64":
                ok = len(base64.b64decode(new.encode("ascii"), validate=True)) == size
            else:
                ok = "=" not in new and len(base64.urlsafe_b64decode(new + "=" * (-len(new) % 4))) == size
                ok = ok and set(new) <= set(string.ascii_letters + string.digits + "-_")
        except (binascii.Error, UnicodeEncodeError, ValueError):
            ok = False
        if not ok:
            raise InvalidInputError(f"the new value is not {size} bytes of {encoding}")

    def retire(self, old: str, inputs: Mapping[str, Any]) -> None:
        return None


# -- manual ---------------------------------------------------------------------------------------


def _procedure(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    found = inputs.get("procedure") or {}
    return found if isinstance(found, Mapping) else {}


class ManualRotator:
    """A person makes the new value at the provider, following the catalog's ``procedure``.

    Inputs: ``minLength`` (optional). From the procedure: ``url``, ``scopes``, ``expiry``,
    ``steps``, ``prefix`` (checked) and ``revokeUrl`` (named at the end).
    """

    def __init__(self, io: RotatorIO | None = None) -> None:
        self._io = io or RotatorIO()

    def __repr__(self) -> str:
        return "ManualRotator()"

    def create(self, current: str | None, inputs: Mapping[str, Any]) -> str:
        proc = _procedure(inputs)
        echo = self._io.echo
        echo("Make the new value by hand:")
        if proc.get("url"):
            echo(f"  go to:   {proc['url']}")
        if proc.get("scopes"):
            echo("  scopes:  " + ", ".join(str(s) for s in proc["scopes"]))
        if proc.get("expiry"):
            echo(f"  expiry:  {proc['expiry']}")
        if proc.get("prefix"):
            echo(f"  it starts with {proc['prefix']}")
        for n, step in enumerate(proc.get("steps") or (), 1):
            echo(f"  {n}. {step}")
        value = self._io.read_secret("New value (hidden)").strip()
        self.test(value, inputs)  # refuse a wrong shape before anything is stored
        return value

    def set(self, new: str, inputs: Mapping[str, Any]) -> None:
        return None

    def test(self, new: str, inputs: Mapping[str, Any]) -> None:
        if not new:
            raise InvalidInputError("no value was given", hint="paste the new value, or pipe it on stdin")
        prefix = _procedure(inputs).get("prefix")
        if isinstance(prefix, str) and prefix and not new.startswith(prefix):
            raise InvalidInputError(
                f"the new value does not start with {prefix}", hint="check that it is the right token"
            )
        min_length = inputs.get("minLength")
        if isinstance(min_length, int) and len(new) < min_length:
            raise InvalidInputError(f"the new value is shorter than {min_length} characters")
        if any(c.isspace() for c in new):
            raise InvalidInputError("the new value contains whitespace")

    def retire(self, old: str, inputs: Mapping[str, Any]) -> None:
        return None

    def finished(self, inputs: Mapping[str, Any]) -> None:
        revoke = _procedure(inputs).get("revokeUrl")
        where = f" at {revoke}" if revoke else " at the provider"
        self._io.echo(f"Now revoke the old credential{where} once everything uses the new one.")


def load_rotator(name: str, io: RotatorIO | None = None) -> Rotator:
    """The rotator called ``name``: a built-in, else the ``strongroom.rotators`` entry point of that name.

    A plug-in's entry point names a class (or factory) called with no arguments.
    """
    if name == "random":
        return RandomRotator()
    if name == "manual":
        return ManualRotator(io)
    if name == "postgresql":
        from strongroom.rotation.postgresql import PostgresRotator  # imports psycopg: only when asked for

        return PostgresRotator()
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            made = entry.load()()
        except Exception as exc:
            _log.warning("rotator plug-in %s could not be loaded: %s", name, type(exc).__name__)
            break
        if isinstance(made, Rotator):
            return made
        _log.warning("rotator plug-in %s does not implement create/set/test/retire", name)
        break
    raise InvalidInputError(
        f"rotator {name!r} is not available",
        hint="built-in rotators are random, manual and postgresql; install the plug-in that provides it",
    )
