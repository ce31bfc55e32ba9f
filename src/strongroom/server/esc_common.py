"""What the ESC-compatible routes share: the organisation segment, names, ETags, YAML replies.

**Organisation.** A Strongroom is one organisation. The ``{orgName}`` segment must be
the configured name (``STRONGROOM_ORGANIZATION``, default ``default``); any other
name is 404 "organization not found", so a client pointed at the wrong server or
organisation fails loudly instead of writing somewhere unexpected.

**ETags.** An environment's ETag is its revision number, quoted (``"4"``); ``If-Match``
on an update must name the newest revision (``*`` matches any), otherwise 409.
"""

from __future__ import annotations

__all__ = [
    "ESC_ERRORS",
    "YAML_RESPONSE",
    "check_org",
    "env_ref",
    "etag",
    "expected_revision",
    "path_text",
    "revision_ref",
    "yaml_response",
]

from typing import Any

from fastapi.responses import Response

from strongroom.errors import ConflictError, InvalidInputError, NotFoundError
from strongroom.model import EnvRef, RevisionRef
from strongroom.server.config import ServerConfig
from strongroom.server.esc_models import MAX_REVISION

YAML_MEDIA_TYPE = "application/x-yaml"
#: OpenAPI for a 200 whose body is a definition in YAML (any YAML document; ESC's shape is an object).
YAML_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The definition, as YAML",
        "content": {YAML_MEDIA_TYPE: {"schema": {"type": ["object", "null"]}}},
        "headers": {"ETag": {"description": "The revision number, quoted", "schema": {"type": "string"}}},
    }
}
#: The error responses every ESC route may give (added to the OpenAPI document of each route).
ESC_ERRORS = (400, 401, 403, 404, 409, 413, 415, 429, 500, 503)


def check_org(config: ServerConfig, org: str) -> None:
    if org != config.organization:
        raise NotFoundError(
            f"organization {org!r} not found",
            hint=f"this Strongroom serves the organization {config.organization!r}",
        )


def env_ref(project: str, name: str) -> EnvRef:
    return EnvRef.parse(f"{project}/{name}")


def revision_ref(project: str, name: str, version: str | None = None) -> RevisionRef:
    """``project/name`` at ``version`` (a number, a tag, ``latest``, or the newest when ``None``)."""
    if version is not None and not version.isascii():  # "³".isdigit() is true, but no revision is named so
        raise InvalidInputError(f"invalid revision {version!r}: use a revision number or a tag name")
    ref = RevisionRef.parse(f"{project}/{name}" if version is None else f"{project}/{name}@{version}")
    if isinstance(ref.selector, int) and ref.selector > MAX_REVISION:
        raise InvalidInputError(f"invalid revision {version!r}: revision numbers go up to {MAX_REVISION}")
    return ref


def path_text(value: str, what: str) -> str:
    """A free-form path segment (a tag name, a session id): no control characters, at most 200 characters."""
    if len(value) > 200 or any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise InvalidInputError(f"invalid {what}: at most 200 characters, no control characters")
    return value


def etag(revision: int) -> str:
    return f'"{revision}"'


def expected_revision(if_match: str | None) -> int | None:
    """The revision an ``If-Match`` header expects to be the newest; ``None`` for no header or ``*``."""
    if if_match is None or if_match.strip() in ("", "*"):
        return None
    text = if_match.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or not 1 <= int(text) <= MAX_REVISION:
        raise ConflictError(
            f"If-Match {if_match.strip()[:40]!r} does not name the newest revision",
            hint="read the environment again (GET) and resend with its ETag",
        )
    return int(text)


def yaml_response(text: str, *, revision: int | None = None) -> Response:
    headers = {"ETag": etag(revision)} if revision is not None else None
    return Response(text, media_type=YAML_MEDIA_TYPE, headers=headers)
