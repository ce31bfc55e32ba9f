"""The server's configuration, read once from the process environment.

Every setting has a default that is safe for a single host; ``docs/server.md`` lists
them. The configuration holds the whole environment (the key providers read their
variables from it, as the CLI's do) but never shows it: the repr leaves it and the
metrics token out.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_AUTH_FAILURE_LIMIT",
    "DEFAULT_AUTH_FAILURE_WINDOW",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_OPEN_SESSION_TTL",
    "DEFAULT_ORGANIZATION",
    "ServerConfig",
]

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from strongroom.errors import InvalidInputError

#: The largest request body accepted (bytes). A definition is at most 1 MiB; this leaves room for JSON quoting.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
#: How long an ESC open session lasts when the client does not ask for less (ESC's own default).
DEFAULT_OPEN_SESSION_TTL = timedelta(hours=2)
#: Authentication failures one client address may make per window before it gets 429.
DEFAULT_AUTH_FAILURE_LIMIT = 10
DEFAULT_AUTH_FAILURE_WINDOW = timedelta(minutes=1)
#: The name of the one organisation the ESC-compatible routes serve.
DEFAULT_ORGANIZATION = "default"

_ORG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,39}")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(name: str, text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1h30m``: a positive duration."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise InvalidInputError(f"{name}={text!r} is not a duration", hint="use for example 90s, 15m, 2h or 1h30m")
    try:
        total = sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta())
    except OverflowError:
        raise InvalidInputError(f"{name}={text!r} is too long a duration") from None
    if total <= timedelta():
        raise InvalidInputError(f"{name} must be longer than zero")
    return total


def _positive_int(name: str, text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise InvalidInputError(f"{name}={text!r} is not a positive whole number")
    return int(text)


def _secret_setting(environ: Mapping[str, str], name: str) -> str | None:
    """A setting given directly (``NAME``) or in a file (``NAME_FILE``, e.g. a mounted Kubernetes secret)."""
    value = environ.get(name) or None
    path = environ.get(f"{name}_FILE") or None
    if value is not None and path is not None:
        raise InvalidInputError(f"set {name} or {name}_FILE, not both")
    if path is not None:
        try:
            value = Path(path).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"cannot read {name}_FILE {path!r} ({type(exc).__name__})") from None
    return value


def _rotation_interval(text: str | None) -> timedelta | None:
    if text is None:
        return timedelta(hours=1)
    if text.strip().lower() in ("off", "0", "never"):
        return None
    return _duration("STRONGROOM_ROTATION_INTERVAL", text)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the server needs to know before it starts. Build it with :meth:`from_environ`."""

    home: Path
    store_url: str | None = None
    #: The bearer token ``/metrics`` requires; metrics are off (404) when ``None``.
    metrics_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: The longest an ESC open session may last (a shorter ``duration`` may be asked for).
    open_session_ttl: timedelta = DEFAULT_OPEN_SESSION_TTL
    auth_failure_limit: int = DEFAULT_AUTH_FAILURE_LIMIT
    auth_failure_window: timedelta = DEFAULT_AUTH_FAILURE_WINDOW
    organization: str = DEFAULT_ORGANIZATION
    #: How often webhook deliveries are attempted (STRONGROOM_WEBHOOK_INTERVAL, e.g. 2s).
    webhook_interval: timedelta = timedelta(seconds=2)
    #: How often the server rotates what is due (STRONGROOM_ROTATION_INTERVAL, e.g. 1h; "off" disables).
    rotation_interval: timedelta | None = timedelta(hours=1)
    #: Offer ``fn::open::env`` (the server's own environment) to definitions (STRONGROOM_SERVER_ENV_PROVIDER=1).
    env_provider: bool = False
    #: The process environment (key providers read STRONGROOM_MASTER_KEY etc. from it). Never shown.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _ORG_NAME.fullmatch(self.organization):
            raise InvalidInputError(
                f"invalid organisation name {self.organization!r} (STRONGROOM_ORGANIZATION)",
                hint="use 3-40 letters, digits, '.', '_' or '-' (ESC clients require 3-40 characters)",
            )
        if self.max_body_bytes < 1024:
            raise InvalidInputError("the request body limit (STRONGROOM_MAX_BODY_BYTES) must be at least 1024 bytes")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServerConfig:
        """Read the configuration; ``InvalidInputError`` names the variable that is wrong."""
        home = Path(environ.get("STRONGROOM_HOME") or Path.home() / ".strongroom").expanduser()

        def get(name: str) -> str | None:
            return environ.get(name) or None

        body = get("STRONGROOM_MAX_BODY_BYTES")
        ttl = get("STRONGROOM_OPEN_SESSION_TTL")
        limit = get("STRONGROOM_AUTH_FAILURE_LIMIT")
        window = get("STRONGROOM_AUTH_FAILURE_WINDOW")
        return cls(
            home=home,
            store_url=get("STRONGROOM_STORE"),
            metrics_token=_secret_setting(environ, "STRONGROOM_METRICS_TOKEN"),
            max_body_bytes=DEFAULT_MAX_BODY_BYTES if body is None else _positive_int("STRONGROOM_MAX_BODY_BYTES", body),
            open_session_ttl=DEFAULT_OPEN_SESSION_TTL if ttl is None else _duration("STRONGROOM_OPEN_SESSION_TTL", ttl),
            auth_failure_limit=(
                DEFAULT_AUTH_FAILURE_LIMIT if limit is None else _positive_int("STRONGROOM_AUTH_FAILURE_LIMIT", limit)
            ),
            auth_failure_window=(
                DEFAULT_AUTH_FAILURE_WINDOW if window is None else _duration("STRONGROOM_AUTH_FAILURE_WINDOW", window)
            ),
            organization=get("STRONGROOM_ORGANIZATION") or DEFAULT_ORGANIZATION,
            webhook_interval=(
                timedelta(seconds=2)
                if get("STRONGROOM_WEBHOOK_INTERVAL") is None
                else _duration("STRONGROOM_WEBHOOK_INTERVAL", str(get("STRONGROOM_WEBHOOK_INTERVAL")))
            ),
            env_provider=get("STRONGROOM_SERVER_ENV_PROVIDER") == "1",
            rotation_interval=_rotation_interval(get("STRONGROOM_ROTATION_INTERVAL")),
            environ=dict(environ),
        )

    def context_environ(self) -> dict[str, str]:
        """The environment for the CLI's :class:`~strongroom.cli.context.AppContext`, with this home and store."""
        environ = dict(self.environ)
        environ["STRONGROOM_HOME"] = str(self.home)
        if self.store_url is None:
            environ.pop("STRONGROOM_STORE", None)
        else:
            environ["STRONGROOM_STORE"] = self.store_url
        return environ
