"""State records, limits and rules behind :mod:`strongroom.testing.github_api`.

Private: the public names are re-exported by ``github_api``. Nothing here does
I/O; every rule cites the GitHub documentation it follows (see ``Docs``).
"""

from __future__ import annotations

__all__ = [
    "CONTENT_METHODS",
    "DEFAULT_API_VERSIONS",
    "MAX_SECRET_VALUE_BYTES",
    "SECRET_LIMITS",
    "VISIBILITIES",
    "Docs",
    "Environment",
    "EnvironmentScope",
    "KeyPair",
    "OrgScope",
    "Organization",
    "PrimaryBucket",
    "RecordedRequest",
    "RepoScope",
    "Repository",
    "Scope",
    "SecretInfo",
    "SecretStore",
    "StoredSecret",
    "Token",
    "TokenKind",
    "invalid_secret_name",
    "iso8601",
    "paginate",
    "parse_scope",
]

import base64
import binascii
import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, TypeAlias, TypeVar
from urllib.parse import urlencode

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

_T = TypeVar("_T")

TokenKind: TypeAlias = Literal["classic", "fine-grained", "app"]


class Docs:
    """The GitHub documentation each behaviour follows (also used as ``documentation_url``)."""

    REST: Final = "https://docs.github.com/rest"
    SECRETS: Final = "https://docs.github.com/rest/actions/secrets"
    #: Naming rules: letters, digits, underscore; not a digit first; no ``GITHUB_`` prefix; stored upper-case.
    SECRET_NAMES: Final = "https://docs.github.com/actions/reference/security/secrets#naming-your-secrets"
    #: 1,000 organization, 100 repository and 100 environment secrets; values up to 48 KB.
    SECRET_LIMITS: Final = "https://docs.github.com/actions/reference/security/secrets#limits-for-secrets"
    RATE_LIMITS: Final = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
    PRIMARY_RATE_LIMIT: Final = RATE_LIMITS + "#about-primary-rate-limits"
    SECONDARY_RATE_LIMIT: Final = RATE_LIMITS + "#about-secondary-rate-limits"
    RATE_LIMIT_HEADERS: Final = RATE_LIMITS + "#checking-the-status-of-your-rate-limit"
    RATE_LIMIT_ENDPOINT: Final = (
        "https://docs.github.com/rest/rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user"
    )
    PAGINATION: Final = "https://docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api"
    TROUBLESHOOTING: Final = "https://docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api"
    API_VERSIONS: Final = "https://docs.github.com/rest/about-the-rest-api/api-versions"
    OAUTH_SCOPES: Final = "https://docs.github.com/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps"
    AUTHENTICATED_USER: Final = "https://docs.github.com/rest/users/users#get-the-authenticated-user"
    GET_REPOSITORY: Final = "https://docs.github.com/rest/repos/repos#get-a-repository"


#: Versions accepted in ``X-GitHub-Api-Version``; the first is the default when the header is absent.
DEFAULT_API_VERSIONS: Final = ("2022-11-28", "2026-03-10")
#: "Content-generating" methods for the secondary rate limit (the docs' POST/PATCH/PUT/DELETE).
CONTENT_METHODS: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: "Secrets are limited to 48 KB in size" (Docs.SECRET_LIMITS), measured on the decrypted value.
MAX_SECRET_VALUE_BYTES: Final = 48 * 1024
#: Secrets a scope may hold (Docs.SECRET_LIMITS).
SECRET_LIMITS: Final = {"repository": 100, "environment": 100, "organization": 1000}
#: Organization secret visibilities (Docs.SECRETS, "Create or update an organization secret").
VISIBILITIES: Final = ("all", "private", "selected")

_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------- scopes


@dataclass(frozen=True, slots=True)
class RepoScope:
    """Repository secrets of ``repository`` (``"owner/name"``); written ``"owner/name"``."""

    repository: str

    def __str__(self) -> str:
        return self.repository


@dataclass(frozen=True, slots=True)
class EnvironmentScope:
    """Secrets of one deployment environment of a repository; written ``"owner/name:environment"``."""

    repository: str
    environment: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.environment}"


@dataclass(frozen=True, slots=True)
class OrgScope:
    """Organization secrets of ``organization``; written ``"org:login"``."""

    organization: str

    def __str__(self) -> str:
        return f"org:{self.organization}"


Scope: TypeAlias = RepoScope | EnvironmentScope | OrgScope


def parse_scope(value: Scope | str) -> Scope:
    """A scope object from itself or from ``"owner/name"``, ``"owner/name:env"`` or ``"org:login"``."""
    if isinstance(value, RepoScope | EnvironmentScope | OrgScope):
        return value
    if value.startswith("org:") and len(value) > 4 and "/" not in value:
        return OrgScope(value[4:])
    repository, colon, environment = value.partition(":")
    owner, slash, name = repository.partition("/")
    if not (owner and slash and name) or "/" in name or (colon and not environment):
        raise ValueError(f"not a secrets scope: {value!r} (use 'owner/name', 'owner/name:environment' or 'org:login')")
    return EnvironmentScope(repository, environment) if colon else RepoScope(repository)


# --------------------------------------------------------------------------- records


class RecordedRequest(NamedTuple):
    """One request as the server received it: method, raw (still percent-encoded) path, raw query."""

    method: str
    path: str
    query: str


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What GitHub shows about a secret (never its value); timestamps are ISO-8601 UTC with ``Z``."""

    name: str
    created_at: str
    updated_at: str
    visibility: str | None = None
    selected_repository_ids: tuple[int, ...] = ()


@dataclass(slots=True)
class KeyPair:
    """A scope's libsodium key pair; GitHub hands out the public half with a string ``key_id``."""

    key_id: str
    private_key: PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> KeyPair:
        """A new random key pair with an 18-digit key id, like GitHub's."""
        return cls(str(10**17 + secrets.randbelow(9 * 10**17)), PrivateKey.generate())

    @property
    def public_key(self) -> str:
        """The public key, base64 (standard alphabet), as ``GET .../public-key`` returns it."""
        return base64.b64encode(bytes(self.private_key.public_key)).decode("ascii")

    def open(self, encrypted_value: str) -> bytes:
        """Decrypt a base64 sealed box as GitHub does; ``ValueError`` when it is not one for this key."""
        try:
            sealed = base64.b64decode(encrypted_value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("encrypted_value is not valid base64") from exc
        try:
            return bytes(SealedBox(self.private_key).decrypt(sealed))
        except CryptoError as exc:
            raise ValueError("encrypted_value is not a sealed box for this key") from exc


@dataclass(slots=True)
class StoredSecret:
    """A secret as the fake holds it: the decrypted value plus GitHub's metadata (epoch seconds)."""

    name: str
    value: bytes = field(repr=False)
    created_at: int
    updated_at: int
    visibility: str | None = None
    selected_repository_ids: list[int] = field(default_factory=list)

    def info(self) -> SecretInfo:
        """The public, value-free view."""
        return SecretInfo(
            name=self.name,
            created_at=iso8601(self.created_at),
            updated_at=iso8601(self.updated_at),
            visibility=self.visibility,
            selected_repository_ids=tuple(self.selected_repository_ids) if self.visibility == "selected" else (),
        )


@dataclass(slots=True)
class SecretStore:
    """The secrets of one scope, its current key pair and how many secrets it may hold."""

    kind: Literal["repository", "environment", "organization"]
    key: KeyPair = field(default_factory=KeyPair.generate)
    secrets: dict[str, StoredSecret] = field(default_factory=dict)

    @property
    def limit(self) -> int:
        """The documented maximum number of secrets for this kind of scope."""
        return SECRET_LIMITS[self.kind]


@dataclass(slots=True)
class Environment:
    """A deployment environment of a repository."""

    name: str
    store: SecretStore = field(default_factory=lambda: SecretStore("environment"))


@dataclass(slots=True)
class Repository:
    """A repository: its owner, name, numeric id, visibility, secrets and environments."""

    owner: str
    name: str
    id: int
    private: bool
    store: SecretStore = field(default_factory=lambda: SecretStore("repository"))
    environments: dict[str, Environment] = field(default_factory=dict)  # keyed by lower-cased name

    @property
    def full_name(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"


@dataclass(slots=True)
class Organization:
    """An organization and its secrets."""

    login: str
    id: int
    store: SecretStore = field(default_factory=lambda: SecretStore("organization"))


@dataclass(slots=True)
class Token:
    """An access token the fake accepts; ``value`` is never shown in a repr."""

    value: str = field(repr=False)
    kind: TokenKind
    scopes: frozenset[str]
    permissions: dict[str, str]
    expired: bool
    login: str
    user_id: int
    rate_limit: int | None = None


@dataclass(slots=True)
class PrimaryBucket:
    """One token's primary rate-limit window (an hour from its first request)."""

    used: int = 0
    reset_at: int = 0

    def roll(self, now: float, window: int = 3600) -> None:
        """Start a new window when the current one has ended."""
        if now >= self.reset_at:
            self.used = 0
            self.reset_at = int(now) + window


# --------------------------------------------------------------------------- rules


def invalid_secret_name(name: str) -> str | None:
    """Why ``name`` is not a valid secret name (Docs.SECRET_NAMES), or ``None`` when it is."""
    if not _SECRET_NAME.fullmatch(name):
        return (
            "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_), "
            "and must not start with a number."
        )
    if name.upper().startswith("GITHUB_"):
        return "Secret names must not start with the GITHUB_ prefix."
    return None


def iso8601(epoch_seconds: float) -> str:
    """``2019-08-10T14:59:22Z``: the timestamp format GitHub's REST API uses."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_seconds)))


def paginate(items: Sequence[_T], params: Sequence[tuple[str, str]], page_url: str) -> tuple[Sequence[_T], str | None]:
    """One page of ``items`` and the ``Link`` header for it, as Docs.PAGINATION describes.

    ``per_page`` defaults to 30 and is capped at 100; ``page`` starts at 1. The link
    header carries ``prev``/``next``/``last``/``first`` as applicable and is omitted
    when everything fits on the first page. ``page_url`` is the URL without a query;
    the other query parameters are kept in every link.
    """
    query: Mapping[str, str] = dict(params)
    per_page = _positive_int(query.get("per_page"), 30)
    per_page = min(per_page, 100)
    page = _positive_int(query.get("page"), 1)
    last = max(1, math.ceil(len(items) / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    if last == 1 and page == 1:
        return chunk, None
    kept = [(key, value) for key, value in params if key != "page"]

    def link(number: int, rel: str) -> str:
        return f'<{page_url}?{urlencode([*kept, ("page", str(number))])}>; rel="{rel}"'

    links: list[str] = []
    if page > 1:
        links.append(link(page - 1, "prev"))
    if page < last:
        links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
    if page > 1:
        links.append(link(1, "first"))
    return chunk, ", ".join(links)


def _positive_int(raw: str | None, default: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= 1 else default
