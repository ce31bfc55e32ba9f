"""Use cases over the store: the only layer that ever holds plaintext secrets.

The CLI and the server call this; it calls storage and crypto and never the other
way round. The master key is loaded lazily, only by operations that encrypt or
decrypt, so masked reads need neither the key nor the crypto library.
"""

from __future__ import annotations

__all__ = [
    "Change",
    "CompiledCache",
    "HistoryEntry",
    "RunData",
    "Service",
    "format_time",
    "looks_like_credential",
    "parse_value",
]

import base64
import hashlib
import hmac
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from strongroom.audit.chain import ChainBreak
from strongroom.audit.chain import verify as verify_chain
from strongroom.definition import SECRET_FN, Document, is_secret_node, parse_definition
from strongroom.errors import (
    ConflictError,
    DefinitionError,
    Diagnostic,
    InvalidInputError,
    InvalidNameError,
    KeyUnavailableError,
    NotFoundError,
    PathError,
    PermissionDeniedError,
    StrongroomError,
    TooLargeError,
)
from strongroom.language.paths import Path, format_path
from strongroom.model import (
    MAX_VALUE_BYTES,
    AuditEvent,
    AuditRecord,
    DeliveryRecord,
    EnvironmentRecord,
    EnvRef,
    EnvTagRecord,
    OpenSession,
    RevisionRecord,
    RevisionRef,
    Secret,
    TagRecord,
    TokenRecord,
    WebhookRecord,
    validate_tag_name,
)
from strongroom.storage.base import Store

if TYPE_CHECKING:
    from strongroom.access import Principal
    from strongroom.crypto.providers import Keyring
    from strongroom.language import Compiled, Evaluation, EvalValue, Provider
    from strongroom.webhooks import WebhookDispatcher

#: The project of a bare import name (``imports: [base]`` means ``default/base``).
DEFAULT_PROJECT = "default"
#: The one organisation a Strongroom is (ESC-compatible routes accept it as the org segment).
DEFAULT_ORGANIZATION = "default"
META_MASTER_KEY_ID = "master_key_id"
META_KDF_PARAMS = "kdf_params"
META_AUDIT_KEY = "audit_hmac_key"
META_WEBHOOK_KEY = "webhook_secret_key"
#: The name bound (as associated data) to the wrapped audit HMAC key; no user environment can have it.
_AUDIT_KEY_REF = EnvRef(".", "audit-hmac-key")
#: The store's own keys, each bound to a name no environment can have; re-wrapped by key rotation.
_STORE_KEYS = {"audit_hmac_key": _AUDIT_KEY_REF, "webhook_secret_key": EnvRef(".", "webhook-secret-key")}
#: How often, and for how long, a path-level write (``env set``/``env rm PATH``) is re-applied after
#: losing a race. Writers to one environment contend for its newest revision; a deadline rather than a
#: small count keeps a writer from giving up under heavy contention (many writers, a slow machine).
WRITE_RETRIES = 200
WRITE_DEADLINE = 30.0

_SENSITIVE_KEY = re.compile(r"pass(word|wd|phrase)?|token|secret|api[_-]?key|private[_-]?key|credential", re.I)
_CREDENTIAL_PREFIX = re.compile(
    r"^(ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|dop_v1_|doo_v1_|glpat-|xox[abprs]-|sk_live_|AKIA[0-9A-Z]{12})"
)
_REFERENCE = re.compile(r"^\$\{[^}]*\}$")
_ENV_TAG_NAME = re.compile(r"[A-Za-z0-9._:/-]{1,100}")
_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,199}")
_SCOPE = re.compile(r"[A-Za-z0-9._*?-]{1,100}/[A-Za-z0-9._*?-]{1,100}")


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _shannon_bits_per_char(value: str) -> float:
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_like_credential(path: Path, value: str) -> bool:
    """True when ``value`` should not be stored in plaintext without the user saying so.

    That is: a known credential prefix (``ghp_``, ``dop_v1_``, ...) anywhere, or, under a
    key whose last word names a password, token or secret, any value that is not a
    ``${...}`` reference and is either high-entropy or at least 8 characters long.
    """
    if _CREDENTIAL_PREFIX.match(value):
        return True
    last = next((seg for seg in reversed(path) if isinstance(seg, str)), "")
    word = re.split(r"[:.]", last)[-1]
    if not _SENSITIVE_KEY.search(word) or _REFERENCE.match(value):
        return False
    high_entropy = len(value) >= 12 and _shannon_bits_per_char(value) >= 3.5
    return high_entropy or len(value) >= 8


def parse_value(text: str) -> Any:
    """Read VALUE as ``pulumi env set`` does: a YAML scalar (``"587"`` is the number 587).

    Flow collections (``[1, 2]``, ``{a: 1}``) are read as such; anything else that is
    not a plain scalar stays the string it was.
    """
    if text == "":
        return ""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        loaded = YAML(typ="safe", pure=True).load(text)
    except (YAMLError, ValueError, TypeError, RecursionError):
        return text
    if loaded is None or isinstance(loaded, bool | int | float | str):
        return loaded
    if isinstance(loaded, list | dict) and text.lstrip()[:1] in ("[", "{"):
        return _plain_json(loaded, text)
    return text


def _plain_json(value: Any, original: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return original


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    number: int
    created_at: str
    author: str
    tags: tuple[str, ...]


class CompiledCache:
    """A bounded, thread-safe cache of compiled revisions, shared by the requests of one process.

    Keyed by environment, revision number and creation time, so a deleted and recreated
    environment never hits the old entry.
    """

    def __init__(self, size: int = 4096) -> None:
        import threading
        from collections import OrderedDict

        self._size = size
        self._items: OrderedDict[tuple[str, int, str], Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CompiledCache({len(self._items)}/{self._size})"

    def get(self, key: tuple[str, int, str]) -> Compiled | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, int, str], compiled: Compiled) -> None:
        with self._lock:
            self._items[key] = compiled
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


@dataclass(frozen=True, slots=True)
class RunData:
    """What a command run inside an environment gets. Holds plaintext: never logged, never kept."""

    variables: dict[str, str]
    files: dict[str, str]
    secrets: list[str]
    args: list[str]
    diagnostics: tuple[Diagnostic, ...] = ()

    def __repr__(self) -> str:
        return f"RunData(variables={sorted(self.variables)!r}, files={sorted(self.files)!r})"


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two revisions. Secrets are :class:`Secret` (masked unless revealed)."""

    path: str
    kind: str  # "added", "removed" or "changed"
    old: Any = None
    new: Any = None


class Service:
    """Strongroom's use cases.

    ``load_keyring`` is called at most once, and only when an operation needs the key.
    """

    def __init__(
        self,
        store: Store,
        *,
        load_keyring: Callable[[Store], Keyring],
        actor: str,
        client: str | None = "local",
        clock: Callable[[], datetime] = _utc_now,
        principal: Principal | None = None,
        providers: Mapping[str, Provider] | None = None,
        compiled_cache: CompiledCache | None = None,
    ) -> None:
        self._store = store
        self._load_keyring = load_keyring
        self._keyring: Keyring | None = None
        self._store_keys: dict[str, bytes] = {}
        self._actor = actor
        self._client = client
        self._clock = clock
        self._principal = principal
        self._providers: Mapping[str, Provider] = providers if providers is not None else {}
        self._compiled_cache = compiled_cache

    def __repr__(self) -> str:
        return f"Service(store={self._store!r}, actor={self._actor!r})"

    @property
    def store(self) -> Store:
        return self._store

    def close(self) -> None:
        self._store.close()

    def _now(self) -> str:
        return format_time(self._clock())

    def now(self) -> datetime:
        """The service's clock (injected in tests)."""
        return self._clock()

    # -- audit --------------------------------------------------------------------------------

    def _event(
        self,
        action: str,
        *,
        env: EnvRef | None = None,
        revision: int | None = None,
        outcome: str = "ok",
        details: Iterable[tuple[str, str]] = (),
    ) -> AuditEvent:
        return AuditEvent(
            at=self._now(),
            actor=self._actor,
            action=action,
            outcome=outcome,
            environment=None if env is None else str(env),
            revision=revision,
            client=self._client,
            details=tuple(sorted(details)),
        )

    # -- access -------------------------------------------------------------------------------

    def _allowed(self, permission: str, env: EnvRef | None = None) -> bool:
        return self._principal is None or self._principal.may(permission, None if env is None else str(env))

    def _require(self, permission: str, env: EnvRef | None = None) -> None:
        """Refuse (and record the refusal) unless the principal has ``permission`` on ``env``.

        Checked on the name alone, before any look-up, so a refusal never tells whether
        the environment exists.
        """
        if self._allowed(permission, env):
            return
        self.record(self._event(f"denied.{permission}", env=env, outcome="denied"))
        assert self._principal is not None
        raise PermissionDeniedError(
            f"token {self._principal.name!r} ({self._principal.role}) may not {permission} "
            + (f"environment {env}" if env is not None else "this"),
            hint="ask an admin for a token with the right role and scope",
        )

    def event(
        self,
        action: str,
        *,
        env: EnvRef | None = None,
        revision: int | None = None,
        outcome: str = "ok",
        details: Iterable[tuple[str, str]] = (),
    ) -> AuditEvent:
        """An audit event by this service's actor and client, at its clock's time (for tiers and the server)."""
        return self._event(action, env=env, revision=revision, outcome=outcome, details=details)

    def record(self, event: AuditEvent) -> None:
        """Append an event that goes with no change (used by the server for denials)."""
        self._store.append_audit([event])

    def _store_key(self, meta: str) -> bytes:
        """One of the store's own keys (random, wrapped by the master key, made on first use)."""
        key = self._store_keys.get(meta)
        if key is None:
            ref = _STORE_KEYS[meta]
            stored = self._store.get_meta(meta)
            if stored is None:
                key = os.urandom(32)
                primary = self.keyring().primary
                self._store.set_meta(meta, _wrapped_json(primary.key_id, primary.wrap(ref, key)))
            else:
                info = json.loads(stored)
                key = self.keyring().get(info["key_id"]).unwrap(ref, base64.b64decode(info["wrapped"]))
            self._store_keys[meta] = key
        return key

    def audit_key(self) -> bytes:
        """The key of the audit log's value HMACs."""
        return self._store_key(META_AUDIT_KEY)

    def value_hmac(self, value: str) -> str:
        """The keyed HMAC the audit log records instead of a value."""
        return hmac.new(self.audit_key(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def _secret_hmacs(self, value: Any, path: Path = ()) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []

        def walk(node: Any, here: Path) -> None:
            if isinstance(node, Secret):
                if node.revealed:
                    found.append((f"hmac:{format_path(here, 'values')}", self.value_hmac(node.reveal())))
            elif isinstance(node, dict):
                for k, v in node.items():
                    walk(v, (*here, k))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, (*here, i))

        walk(value, path)
        return found

    # -- keys ---------------------------------------------------------------------------------

    def keyring(self) -> Keyring:
        if self._keyring is None:
            keyring = self._load_keyring(self._store)
            expected = self._store.get_meta(META_MASTER_KEY_ID)
            if expected is not None and expected not in keyring.ids:
                raise KeyUnavailableError(
                    f"wrong master key: this store was made with key id {expected}, "
                    f"the loaded key has id {', '.join(keyring.ids)}",
                    hint="use the key file, passphrase or STRONGROOM_MASTER_KEY this store was created with",
                )
            self._keyring = keyring
        return self._keyring

    def _data_key(self, env: EnvironmentRecord) -> bytes:
        return self.keyring().get(env.key_id).unwrap(env.ref, env.data_key)

    def initialise_keys(self) -> str:
        """Record the master key this store is bound to (first ``init``); returns its id."""
        existing = self._store.get_meta(META_MASTER_KEY_ID)
        keyring = self.keyring()
        if existing is None:
            self._store.set_meta(META_MASTER_KEY_ID, keyring.primary.key_id)
            existing = keyring.primary.key_id
        self.audit_key()
        return existing

    def rewrap_data_keys(self, new_keyring: Keyring) -> int:
        """Re-wrap every data key under ``new_keyring.primary`` in one transaction.

        Reads with the current keyring; revisions are untouched. Returns the count.
        """
        self._require("admin")
        old = self.keyring()
        target = new_keyring.primary

        def source(key_id: str) -> Any:
            return new_keyring.get(key_id) if key_id in new_keyring.ids else old.get(key_id)

        store_keys = {meta: self._store_key(meta) for meta in _STORE_KEYS}
        rewrapped: list[tuple[EnvRef, bytes, str]] = []
        for ref, wrapped, key_id in self._store.list_data_keys():
            data_key = source(key_id).unwrap(ref, wrapped)
            rewrapped.append((ref, target.wrap(ref, data_key), target.key_id))
        # Data keys, the audit key and the store's key binding move together or not at all.
        self._store.replace_data_keys(
            rewrapped,
            meta={
                **{
                    meta: _wrapped_json(target.key_id, target.wrap(_STORE_KEYS[meta], key))
                    for meta, key in store_keys.items()
                },
                META_MASTER_KEY_ID: target.key_id,
            },
            audit=[self._event("key.rotate", details=[("key_id", target.key_id), ("count", str(len(rewrapped)))])],
        )
        self._keyring = new_keyring
        return len(rewrapped)

    def audit_log(
        self,
        *,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        after_seq: int = 0,
        page_size: int = 10_000,
    ) -> Iterator[AuditRecord]:
        """Audit records, oldest first, after ``after_seq`` and matching every filter given.
        Reading the log is itself recorded."""
        self._require("admin")
        self.record(self._event("audit.read", details=[("view", "log")]))
        after, left = after_seq, limit
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            page = self._store.list_audit(
                environment=environment, actor=actor, action=action, since=since, after_seq=after, limit=size
            )
            yield from page
            if len(page) < size:
                return
            after = page[-1].seq
            if left is not None:
                left -= len(page)

    def verify_audit(self, *, page_size: int = 10_000) -> tuple[int, ChainBreak | None]:
        """Walk the whole chain; returns (records checked, first break or None)."""
        self._require("admin")
        head = self._store.audit_head()

        def records() -> Iterator[AuditRecord]:
            after = 0
            while True:
                page = self._store.list_audit(after_seq=after, limit=page_size)
                for rec in page:
                    if rec.seq > head[0]:
                        return
                    yield rec
                if len(page) < page_size:
                    return
                after = page[-1].seq

        return verify_chain(records(), head=head)

    def search_value(self, value: str) -> list[AuditRecord]:
        """Every record whose details carry the HMAC of ``value``: who read or wrote it, and when."""
        self._require("admin")
        digest = self.value_hmac(value)
        self.record(self._event("audit.read", details=[("view", "hash")]))
        found: list[AuditRecord] = []
        after = 0
        while True:
            page = self._store.list_audit(after_seq=after, limit=10_000)
            found.extend(rec for rec in page if any(v == digest for _k, v in rec.event.details))
            if len(page) < 10_000:
                return found
            after = page[-1].seq

    # -- tokens -------------------------------------------------------------------------------

    def create_token(
        self, name: str, role: str, scopes: Iterable[str] = (), expires_in: timedelta | None = None
    ) -> tuple[TokenRecord, str]:
        """Make a token; returns its record and the token itself, which is never stored or shown again."""
        self._require("admin")
        from strongroom.access import ROLES, new_token

        if not _TOKEN_NAME.fullmatch(name):
            raise InvalidInputError(
                f"invalid token name {name!r}: use 1-200 letters, digits, spaces or . _ - @ :",
                hint="for example: --name ci-deploy",
            )
        if role not in ROLES:
            raise InvalidInputError(f"unknown role {role!r}", hint=f"choose one of {', '.join(ROLES)}")
        scope_list = tuple(dict.fromkeys(scopes))
        for scope in scope_list:
            if not _SCOPE.fullmatch(scope):
                raise InvalidInputError(
                    f"invalid scope {scope!r}: a scope is PROJECT/ENV with * and ? as wildcards",
                    hint="for example: --scope 'aphiria.com/*'",
                )
        token_id, token, secret_hash = new_token()
        now = self._clock()
        record = TokenRecord(
            token_id=token_id,
            name=name,
            role=role,
            scopes=scope_list,
            secret_hash=secret_hash,
            created_at=format_time(now),
            created_by=self._actor,
            expires_at=None if expires_in is None else format_time(now + expires_in),
        )
        details = [("token_id", token_id), ("name", name), ("role", role), ("scopes", ",".join(scope_list))]
        self._store.create_token(record, audit=[self._event("token.create", details=details)])
        return record, token

    def list_tokens(self) -> list[TokenRecord]:
        self._require("admin")
        return self._store.list_tokens()

    def revoke_token(self, token_id: str) -> None:
        self._require("admin")
        self._store.revoke_token(
            token_id, at=self._now(), audit=[self._event("token.revoke", details=[("token_id", token_id)])]
        )

    def authenticate(self, token: str) -> Principal | None:
        """The principal a token stands for, or ``None`` when it is malformed, unknown, revoked or expired."""
        from strongroom.access import Principal, hash_secret, parse_token

        parsed = parse_token(token)
        record = self._store.get_token(parsed[0]) if parsed else None
        presented = hash_secret(parsed[1]) if parsed else "0" * 64
        expected = record.secret_hash if record else "f" * 64
        matches = hmac.compare_digest(presented, expected)
        if record is None or not matches or record.revoked_at is not None:
            return None
        if record.expires_at is not None and record.expires_at <= self._now():
            return None
        return Principal(record.name, record.role, record.scopes, record.token_id)

    # -- webhooks -----------------------------------------------------------------------------

    def create_webhook(
        self, env: EnvRef | None, url: str, secret: str, events: Iterable[str] | None = None
    ) -> WebhookRecord:
        """Register a webhook for one environment (or all: ``env=None``). Only later events are delivered."""
        import secrets as _secrets
        from urllib.parse import urlsplit

        from strongroom.webhooks import EVENTS

        self._require("admin")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"invalid webhook URL {url!r}", hint="use an http:// or https:// URL")
        if len(secret) < 16:
            raise InvalidInputError(
                "a webhook secret must be at least 16 characters", hint="generate one: openssl rand -hex 32"
            )
        chosen = tuple(dict.fromkeys(events)) if events else EVENTS
        unknown = [e for e in chosen if e not in EVENTS]
        if unknown:
            raise InvalidInputError(f"unknown event {unknown[0]!r}", hint=f"choose from {', '.join(EVENTS)}")
        from strongroom.crypto.format import encrypt_secret

        webhook_id = _secrets.token_hex(8)
        # Under the store's webhook key (which key rotation re-wraps), bound to this webhook's id.
        wrapped = encrypt_secret(self._store_key(META_WEBHOOK_KEY), _webhook_ref(webhook_id), secret)
        hook = WebhookRecord(
            webhook_id=webhook_id,
            environment=None if env is None else str(env),
            url=url,
            secret=wrapped,
            events=chosen,
            created_at=self._now(),
            created_by=self._actor,
            last_seq=self._store.audit_head()[0],
        )
        details = [("webhook_id", webhook_id), ("url", url), ("events", ",".join(chosen))]
        self._store.create_webhook(hook, audit=[self._event("webhook.create", env=env, details=details)])
        return hook

    def list_webhooks(self) -> list[WebhookRecord]:
        self._require("admin")
        return self._store.list_webhooks()

    def delete_webhook(self, webhook_id: str) -> None:
        self._require("admin")
        self._store.delete_webhook(
            webhook_id, audit=[self._event("webhook.delete", details=[("webhook_id", webhook_id)])]
        )

    def list_deliveries(self, webhook_id: str | None = None, limit: int = 100) -> list[DeliveryRecord]:
        self._require("admin")
        return self._store.list_deliveries(webhook_id=webhook_id, limit=limit)

    def webhook_secret(self, hook: WebhookRecord) -> bytes:
        from strongroom.crypto.format import decrypt_secret

        key = self._store_key(META_WEBHOOK_KEY)
        return decrypt_secret(key, _webhook_ref(hook.webhook_id), hook.secret).encode("utf-8")

    def webhook_dispatcher(self, post: Callable[[str, bytes, dict[str, str]], int] | None = None) -> WebhookDispatcher:
        from strongroom.webhooks import WebhookDispatcher, http_post

        return WebhookDispatcher(
            self._store,
            secret_of=self.webhook_secret,
            post=post or http_post(),
            clock=self._clock,
            format_time=format_time,
        )

    # -- environment tags and open sessions --------------------------------------------------

    def list_env_tags(self, env: EnvRef) -> list[EnvTagRecord]:
        self._require("read", env)
        tags = self._store.list_env_tags(env)
        self.record(self._event("read", env=env, details=[("view", "env-tags")]))
        return tags

    def set_env_tag(
        self, env: EnvRef, name: str, value: str, *, create_only: bool = False, expected_value: str | None = None
    ) -> EnvTagRecord:
        """Create or change an environment tag (``team: platform``); ``expected_value`` guards against races."""
        self._require("write", env)
        if not _ENV_TAG_NAME.fullmatch(name):
            raise InvalidInputError(
                f"invalid tag name {name!r}: use 1-100 letters, digits, '.', '_', '-', '/' or ':'",
                hint="for example: team",
            )
        if len(value.encode("utf-8", "surrogatepass")) > 4096:
            raise TooLargeError("a tag value is at most 4 KiB")
        event = self._event("env-tag.set", env=env, details=[("tag", name)])
        return self._store.set_env_tag(
            env,
            name,
            value,
            at=self._now(),
            actor=self._actor,
            create_only=create_only,
            expected_value=expected_value,
            audit=[event],
        )

    def delete_env_tag(self, env: EnvRef, name: str) -> None:
        self._require("write", env)
        self._store.delete_env_tag(env, name, audit=[self._event("env-tag.delete", env=env, details=[("tag", name)])])

    def create_open_session(self, ref: RevisionRef, ttl: timedelta) -> OpenSession:
        """Record that ``ref`` was opened (ESC's two-step open). The session holds no values: reading it
        opens the recorded revision again, with the reader's rights."""
        import secrets as _secrets

        self._require("open", ref.env)
        rev = self.resolve(ref)
        now = self._clock()
        session = OpenSession(
            session_id=_secrets.token_hex(16),
            env=ref.env,
            revision=rev.number,
            actor=self._actor,
            created_at=format_time(now),
            expires_at=format_time(now + ttl),
        )
        self._store.create_open_session(session)
        return session

    def get_open_session(self, session_id: str, env: EnvRef) -> OpenSession:
        """A live session of ``env``; ``NotFoundError`` for an unknown, expired or foreign one."""
        self._require("open", env)
        session = self._store.get_open_session(session_id)
        if session is None or session.env != env or session.expires_at <= self._now():
            raise NotFoundError(
                f"no open session {session_id!r} for {env}", hint="open the environment again; sessions expire"
            )
        return session

    # -- reading ------------------------------------------------------------------------------

    def list_environments(
        self, *, project: str | None = None, after: EnvRef | None = None, limit: int | None = None
    ) -> list[EnvironmentRecord]:
        self._require("read")
        found = self._store.list_environments(project=project, after=after, limit=limit)
        if self._principal is None or not self._principal.scopes:
            return found
        return [rec for rec in found if self._principal.reaches(str(rec.ref))]

    def resolve(self, ref: RevisionRef) -> RevisionRecord:
        sel = ref.selector
        if sel is None:
            return self._store.get_revision(ref.env)
        if isinstance(sel, int):
            return self._store.get_revision(ref.env, sel)
        return self._store.get_revision(ref.env, self._store.resolve_tag(ref.env, sel))

    def definition(self, ref: RevisionRef) -> RevisionRecord:
        """The stored definition (YAML with ciphertext only). Audited as a read."""
        self._require("read", ref.env)
        rev = self.resolve(ref)
        self.record(self._event("read", env=ref.env, revision=rev.number, details=[("view", "definition")]))
        return rev

    def definition_text(self, ref: RevisionRef, *, show_secrets: bool = False) -> str:
        """The definition as YAML: ciphertext as stored, or with ``fn::secret: PLAINTEXT`` when asked."""
        self._require("open" if show_secrets else "read", ref.env)
        rev = self.resolve(ref)
        if not show_secrets or SECRET_FN not in rev.definition:
            self.record(self._event("read", env=ref.env, revision=rev.number, details=[("view", "definition")]))
            return rev.definition
        decrypt = self._decryptor(ref.env)
        doc = parse_definition(rev.definition, str(ref.env))
        hmacs: list[tuple[str, str]] = []
        for path, node in list(doc.secret_nodes()):
            arg = node[SECRET_FN]
            if isinstance(arg, dict):
                plaintext = decrypt(str(arg["ciphertext"]))
                node[SECRET_FN] = plaintext
                hmacs.append((f"hmac:{format_path(path)}", self.value_hmac(plaintext)))
        self.record(self._event("decrypt", env=ref.env, revision=rev.number, details=[("view", "definition"), *hmacs]))
        return doc.dump()

    # -- evaluation ---------------------------------------------------------------------------

    def _compiled(self, rev: RevisionRecord) -> Compiled:
        """The revision's compiled form from its cache, or compiled afresh if the cache is from another version.

        With a shared ``compiled_cache`` (a long-running server), each revision is decoded once:
        revisions never change, and evaluation never changes a compiled definition.
        """
        from strongroom.language import Compiled, compile_definition

        cache = self._compiled_cache
        key = (str(rev.ref), rev.number, rev.created_at)
        if cache is not None and (hit := cache.get(key)) is not None:
            return hit
        try:
            compiled = Compiled.from_json(rev.compiled)
        except (ValueError, KeyError, TypeError):
            compiled = compile_definition(rev.definition, str(rev.ref))
        if cache is not None:
            cache.put(key, compiled)
        return compiled

    def _evaluate(self, env: EnvRef, compiled: Compiled, *, reveal: bool, open_providers: bool = True) -> Evaluation:
        """Evaluate ``compiled`` as ``env``: imports resolved through the store (each once), secrets
        decrypted only when ``reveal``. Opening needs the open right on every import."""
        from strongroom.language import LoadError, evaluate

        permission = "open" if reveal else "read"
        keys: dict[str, bytes] = {}
        if reveal:
            self.keyring()  # a missing or wrong master key is one clear error, not a diagnostic per secret

        def load(written: str) -> tuple[str, Compiled]:
            name, _, version = written.partition("@")
            if "/" not in name:
                name = f"{DEFAULT_PROJECT}/{name}"
            try:
                ref = RevisionRef.parse(f"{name}@{version}" if version else name)
            except InvalidNameError as exc:
                raise LoadError(exc.message) from None
            if not self._allowed(permission, ref.env):
                denied = self._event(f"denied.{permission}", env=ref.env, outcome="denied", details=[("via", "import")])
                self.record(denied)
                raise LoadError(f"environment {written!r} not found or not accessible")
            try:
                rev = self.resolve(ref)
            except NotFoundError:
                raise LoadError(f"environment {written!r} not found or not accessible") from None
            # A pinned import is its own environment for this evaluation: proj/env@3 and proj/env differ.
            canonical = f"{ref.env}@{rev.number}" if ref.selector is not None else str(ref.env)
            return canonical, self._compiled(rev)

        failures: list[StrongroomError] = []

        def decrypt(env_name: str, token: str) -> str:
            from strongroom.crypto.format import decrypt_secret

            env_name = env_name.partition("@")[0]
            try:
                key = keys.get(env_name)
                if key is None:
                    key = keys[env_name] = self._data_key(self._store.get_environment(EnvRef.parse(env_name)))
                return decrypt_secret(key, EnvRef.parse(env_name), token)
            except StrongroomError as exc:
                failures.append(exc)
                raise

        context = {
            "actor": self._actor,
            "pulumi": {"user": {"login": self._actor}, "organization": {"login": DEFAULT_ORGANIZATION}},
        }
        evaluation = evaluate(
            str(env),
            compiled,
            load=load,
            decrypt=decrypt if reveal else None,
            providers=self._providers if open_providers else _CheckOnlyProviders(self._providers),
            context=context,
        )
        if failures:  # a secret that will not decrypt is an error of the store, not of the definition
            raise failures[0]
        return evaluation

    def evaluate(self, ref: RevisionRef, *, reveal: bool = False) -> tuple[RevisionRecord, Evaluation]:
        """Evaluate a revision. Not audited: callers record what they show."""
        self._require("open" if reveal else "read", ref.env)
        rev = self.resolve(ref)
        return rev, self._evaluate(ref.env, self._compiled(rev), reveal=reveal)

    def check(self, env: EnvRef, text: str) -> tuple[Compiled, Evaluation | None]:
        """Compile and evaluate (masked) a definition without storing it (``yaml/check``)."""
        from strongroom.language import compile_definition

        self._require("read", env)
        compiled = compile_definition(text, str(env))
        return compiled, None if compiled.has_errors else self._evaluate(env, compiled, reveal=False)

    def read_value(
        self, ref: RevisionRef, path: Path = (), *, show_secrets: bool = False
    ) -> tuple[EvalValue, Evaluation]:
        """The evaluated value at ``path`` (with where each part is defined). Audited as read or decrypt."""
        rev, ev = self.evaluate(ref, reveal=show_secrets)
        value = _at_path(ev, path, ref)
        details = [("path", format_path(path, "values"))] if path else []
        if show_secrets:
            details.extend(self._eval_hmacs(value, path))
        self.record(
            self._event("decrypt" if show_secrets else "read", env=ref.env, revision=rev.number, details=details)
        )
        return value, ev

    def read(self, ref: RevisionRef, path: Path = (), *, show_secrets: bool = False) -> Any:
        """The evaluated values at ``path`` as plain data; secrets as :class:`Secret`, masked unless asked."""
        return _python(self.read_value(ref, path, show_secrets=show_secrets)[0])

    def open(self, ref: RevisionRef, path: Path = ()) -> tuple[EvalValue, Evaluation]:
        """``env open``: the evaluated values with secrets in plaintext. Recorded as an open, with value HMACs."""
        self._require("open", ref.env)
        rev, ev = self.evaluate(ref, reveal=True)
        errors = [d for d in ev.diagnostics if d.is_error]
        if errors:
            self.record(self._event("open", env=ref.env, revision=rev.number, outcome="error"))
            raise DefinitionError(
                f"{ref} cannot be opened: {errors[0].to_diagnostic()}",
                diagnostics=tuple(d.to_diagnostic() for d in errors),
                hint=f"fix the definition with `strongroom env edit {ref.env}`",
            )
        value = _at_path(ev, path, ref)
        details = [("path", format_path(path, "values"))] if path else []
        details.extend(self._eval_hmacs(value, path))
        self.record(self._event("open", env=ref.env, revision=rev.number, details=details))
        return value, ev

    def environment_variables(self, ev: Evaluation) -> tuple[dict[str, Any], tuple[Diagnostic, ...]]:
        """The ``environmentVariables`` projection: names to text, secrets as :class:`Secret`."""
        from strongroom.language import project_environment_variables

        projection = project_environment_variables(ev)
        variables = {
            name: (Secret(p.text) if p.secret else p.text)
            for name, p in projection.items()
            if p.text is not None or p.secret
        }
        return variables, tuple(d.to_diagnostic() for d in projection.diagnostics)

    def run_plan(self, ref: RevisionRef, args: list[str]) -> RunData:
        """What ``strongroom run`` needs: variables, files, the secrets to mask, and ARGS with
        ``${...}`` resolved. Opening is audited as an open."""
        from strongroom.language import project_environment_variables, project_files

        _value, ev = self.open(ref)
        variables = project_environment_variables(ev)
        files = project_files(ev)
        return RunData(
            variables={k: p.text for k, p in variables.items() if p.text is not None},
            files={k: p.text for k, p in files.items() if p.text is not None},
            secrets=_secret_texts(ev.value),
            args=self._interpolate_args(ref, args),
            diagnostics=tuple(d.to_diagnostic() for d in (*variables.diagnostics, *files.diagnostics)),
        )

    def _interpolate_args(self, ref: RevisionRef, args: list[str]) -> list[str]:
        """Resolve ``${...}`` in command arguments against the environment (``$$`` is a literal ``$``).

        The arguments are evaluated as a tiny environment that imports ``ref`` (under a name no
        user environment can have).
        """
        templated = [i for i, a in enumerate(args) if "${" in a]
        if not templated:
            return args
        from strongroom.language import compile_definition

        pinned = f"{ref.env}@{ref.selector}" if ref.selector is not None else str(ref.env)
        scratch = EnvRef(ref.env.project, ".run-arguments")
        compiled = compile_definition(
            json.dumps({"imports": [pinned], "values": {"__strongroom_args": [args[i] for i in templated]}}),
            str(scratch),
        )
        evaluation = self._evaluate(scratch, compiled, reveal=True)
        errors = [d for d in (*compiled.diagnostics, *evaluation.diagnostics) if d.is_error]
        if errors:
            raise DefinitionError(
                f"cannot interpolate the command's arguments: {errors[0].summary}",
                hint="check the ${...} references in the arguments; write $$ for a literal $",
            )
        resolved = evaluation.value.get("__strongroom_args")
        assert resolved is not None and isinstance(resolved.value, list)
        out = list(args)  # an argument without ${...} is passed as it is, $$ included
        for i, item in zip(templated, resolved.value, strict=True):
            out[i] = _text(item.value)
        return out

    def _eval_hmacs(self, value: EvalValue, path: Path) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        stack: list[tuple[EvalValue, Path]] = [(value, path)]
        while stack:
            node, here = stack.pop()
            if node.secret and not node.unknown and not isinstance(node.value, dict | list):
                found.append((f"hmac:{format_path(here, 'values')}", self.value_hmac(_text(node.value))))
            elif isinstance(node.value, dict):
                stack.extend((child, (*here, k)) for k, child in node.value.items())
            elif isinstance(node.value, list):
                stack.extend((child, (*here, i)) for i, child in enumerate(node.value))
        return found

    def seal(self, env: EnvRef, plaintext: str) -> str:
        """Encrypt a value under ``env``'s data key, as ``fn::secret`` ciphertext (for state kept outside
        the definition, such as a rotation's pending value)."""
        from strongroom.crypto.format import encrypt_secret

        return encrypt_secret(self._data_key(self._store.get_environment(env)), env, plaintext)

    def unseal(self, env: EnvRef, token: str) -> str:
        """Decrypt what :meth:`seal` made for ``env``."""
        return self._decryptor(env)(token)

    def _decryptor(self, env: EnvRef) -> Callable[[str], str]:
        from strongroom.crypto.format import decrypt_secret

        data_key = self._data_key(self._store.get_environment(env))
        return lambda token: decrypt_secret(data_key, env, token)

    def history(self, env: EnvRef) -> list[HistoryEntry]:
        self._require("read", env)
        tags: dict[int, list[str]] = {}
        for tag in self._store.list_tags(env):
            tags.setdefault(tag.revision, []).append(tag.name)
        entries = [
            HistoryEntry(r.number, r.created_at, r.author, tuple(sorted(tags.get(r.number, ()))))
            for r in self._store.list_revisions(env)
        ]
        self.record(self._event("read", env=env, details=[("view", "history")]))
        return entries

    def list_tags(self, env: EnvRef) -> list[TagRecord]:
        self._require("read", env)
        tags = self._store.list_tags(env)
        self.record(self._event("read", env=env, details=[("view", "tags")]))
        return tags

    def diff(self, a: RevisionRef, b: RevisionRef, *, show_secrets: bool = False) -> list[Change]:
        """Leaf-by-leaf differences from ``a`` to ``b``; secrets compare by plaintext when a key is at hand."""
        self._require("open" if show_secrets else "read", a.env)
        self._require("open" if show_secrets else "read", b.env)
        rev_a, rev_b = self.resolve(a), self.resolve(b)
        flat_a = _flatten(parse_definition(rev_a.definition, str(a.env)).to_plain())
        flat_b = _flatten(parse_definition(rev_b.definition, str(b.env)).to_plain())
        dec_a = dec_b = None
        secrets_differ = any(
            is_secret_node(flat_a.get(k)) or is_secret_node(flat_b.get(k))
            for k in flat_a.keys() | flat_b.keys()
            if flat_a.get(k) != flat_b.get(k)
        )
        if show_secrets:
            dec_a, dec_b = self._decryptor(a.env), self._decryptor(b.env)
        elif secrets_differ:
            # Compare secrets by plaintext when the key is at hand (a secret re-set to the same
            # value is no change); without the key, a new ciphertext counts as a change.
            try:
                dec_a, dec_b = self._decryptor(a.env), self._decryptor(b.env)
            except KeyUnavailableError:
                dec_a = dec_b = None
        changes: list[Change] = []
        for key in sorted(flat_a.keys() | flat_b.keys()):
            in_a, in_b = key in flat_a, key in flat_b
            old = _reveal(flat_a.get(key), dec_a, keep=show_secrets)
            new = _reveal(flat_b.get(key), dec_b, keep=show_secrets)
            if in_a and not in_b:
                changes.append(Change(key, "removed", old=old))
            elif in_b and not in_a:
                changes.append(Change(key, "added", new=new))
            elif not _same(flat_a[key], flat_b[key], dec_a, dec_b):
                changes.append(Change(key, "changed", old=old, new=new))
        action = "decrypt" if show_secrets else "read"
        hmacs = self._secret_hmacs([(c.old, c.new) for c in changes]) if show_secrets else []
        events = [
            self._event(action, env=a.env, revision=rev_a.number, details=[("view", "diff"), *hmacs]),
        ]
        if b.env != a.env or rev_b.number != rev_a.number:
            events.append(self._event(action, env=b.env, revision=rev_b.number, details=[("view", "diff")]))
        self._store.append_audit(events)
        return changes

    # -- writing ------------------------------------------------------------------------------

    def _compile(
        self, env: EnvRef, text: str, encrypt: Callable[[str], str] | None
    ) -> tuple[str, str, tuple[Diagnostic, ...]]:
        """Check a definition as written, encrypt its plaintext secrets; (stored text, cache, warnings).

        Every error is reported at once (``DefinitionError.diagnostics``), positioned in
        the text as the user wrote it; nothing is stored when there is one.
        """
        from strongroom.language import compile_definition

        written = compile_definition(text, str(env))
        warnings = self._check_compiled(env, written)
        doc = parse_definition(text, str(env))
        if not doc.has_plaintext_secrets():
            return text, written.to_json(), warnings
        if encrypt is None:
            raise InvalidInputError("internal: plaintext secrets need an encryptor")
        doc.encrypt_secrets(encrypt)
        stored = doc.dump()
        return stored, compile_definition(stored, str(env)).to_json(), warnings

    def _check_compiled(self, env: EnvRef, compiled: Compiled) -> tuple[Diagnostic, ...]:
        """Raise ``DefinitionError`` if compiling or (masked) evaluating finds errors; return the warnings."""
        try:
            compiled.to_json().encode("utf-8")
        except UnicodeEncodeError:
            raise DefinitionError(
                f"the definition of {env} contains an unpaired surrogate escape (\\ud800-\\udfff)",
                hint="escape characters outside the basic plane as pairs, or write them as they are",
            ) from None
        diags = list(compiled.diagnostics)
        if not compiled.has_errors:
            diags.extend(self._evaluate(env, compiled, reveal=False, open_providers=False).diagnostics)
        errors = [d for d in diags if d.is_error]
        converted = tuple(d.to_diagnostic() for d in diags)
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise DefinitionError(
                f"invalid definition: {errors[0].to_diagnostic()}{more}",
                diagnostics=tuple(d for d in converted if d.severity == "error")
                + tuple(d for d in converted if d.severity != "error"),
                hint="fix the definition and try again; nothing was saved",
            )
        return converted

    def create_environment(self, env: EnvRef, definition: str = "") -> RevisionRecord:
        self._require("write", env)
        from strongroom.crypto.format import encrypt_secret, new_data_key

        primary = self.keyring().primary
        data_key = new_data_key()
        text, compiled, warnings = self._compile(env, definition, lambda p: encrypt_secret(data_key, env, p))
        rev = self._store.create_environment(
            env,
            data_key=primary.wrap(env, data_key),
            key_id=primary.key_id,
            definition=text,
            compiled=compiled,
            author=self._actor,
            at=self._now(),
            audit=[self._event("create", env=env, revision=1)],
        )
        return replace(rev, warnings=warnings)

    def replace_definition(self, env: EnvRef, text: str, *, expected_latest: int | None = None) -> RevisionRecord:
        """``env edit``: store ``text`` as the new revision; plaintext secrets get encrypted."""
        self._require("write", env)
        record = self._store.get_environment(env)
        base = record.latest_revision if expected_latest is None else expected_latest
        stored, compiled, warnings = self._compile(env, text, self._lazy_encryptor(record))
        rev = self._store.append_revision(
            env,
            expected_latest=base,
            definition=stored,
            compiled=compiled,
            author=self._actor,
            at=self._now(),
            audit=[self._event("write", env=env, revision=base + 1, details=[("change", "edit")])],
        )
        return replace(rev, warnings=warnings)

    def _lazy_encryptor(self, record: EnvironmentRecord) -> Callable[[str], str]:
        """An encryptor that loads the key only if something is actually encrypted."""
        made: list[Callable[[str], str]] = []

        def encrypt(plaintext: str) -> str:
            if not made:
                made.append(self._encryptor(record))
            return made[0](plaintext)

        return encrypt

    def _encryptor(self, record: EnvironmentRecord) -> Callable[[str], str]:
        from strongroom.crypto.format import encrypt_secret

        data_key = self._data_key(record)
        return lambda plaintext: encrypt_secret(data_key, record.ref, plaintext)

    def _edit(
        self,
        env: EnvRef,
        apply: Callable[[Document, EnvironmentRecord], None],
        details: list[tuple[str, str]],
    ) -> RevisionRecord:
        """Read the newest revision, apply a path-level edit, write; re-apply if another writer won."""
        from strongroom.language import compile_definition

        deadline = time.monotonic() + WRITE_DEADLINE
        for attempt in range(WRITE_RETRIES):
            record = self._store.get_environment(env)
            rev = self._store.get_revision(env, record.latest_revision)
            doc = parse_definition(rev.definition, str(env))
            apply(doc, record)
            text = doc.dump()
            checked = compile_definition(text, str(env))  # every check the written text needs
            warnings = self._check_compiled(env, checked)
            try:
                written = self._store.append_revision(
                    env,
                    expected_latest=rev.number,
                    definition=text,
                    compiled=checked.to_json(),
                    author=self._actor,
                    at=self._now(),
                    audit=[self._event("write", env=env, revision=rev.number + 1, details=details)],
                )
                return replace(written, warnings=warnings)
            except ConflictError:
                if attempt == WRITE_RETRIES - 1 or time.monotonic() > deadline:
                    raise
                # Jittered exponential backoff, so that writers racing in lockstep fall apart.
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))  # noqa: S311
        raise AssertionError("unreachable")

    def set_value(
        self,
        env: EnvRef,
        path: Path,
        value: Any,
        *,
        secret: bool = False,
        plaintext_ok: bool = False,
        also: Sequence[tuple[Path, str]] = (),
    ) -> RevisionRecord:
        """``env set``. With ``secret`` the value is encrypted; a credential-like plaintext is refused.

        ``also``: plain values written in the same revision (a rotation's companion values,
        such as the user name that goes with a new password).
        """
        self._require("write", env)
        for extra_path, extra in also:
            if not extra_path:
                raise PathError("a path is required for every companion value")
            if looks_like_credential(extra_path, extra):
                raise InvalidInputError(
                    f"{format_path(extra_path, 'values')} looks like a credential and would be stored in plaintext"
                )
        if not path:
            raise PathError("a path is required", hint='for example: pulumiConfig."postgresql:password"')
        size = (
            len(json.dumps(value, ensure_ascii=False).encode())
            if not isinstance(value, str)
            else len(value.encode("utf-8", "surrogatepass"))
        )
        if size > MAX_VALUE_BYTES:
            raise TooLargeError(
                f"the value for {format_path(path, 'values')} is larger than the "
                f"{MAX_VALUE_BYTES // 1024} KiB limit for one value",
                hint="store large files outside Strongroom, or split the value",
            )
        if secret and not isinstance(value, str):
            raise InvalidInputError("a secret must be a string", hint="quote the value, or drop --secret")
        if not secret and not plaintext_ok and isinstance(value, str) and looks_like_credential(path, value):
            raise InvalidInputError(
                f"{format_path(path, 'values')} looks like a credential and would be stored in plaintext",
                hint="add --secret to encrypt it, or --plaintext if it really is not secret",
            )
        details = [("change", "set"), ("path", format_path(path, "values"))]
        if secret:
            details.append(("value_hmac", self.value_hmac(value)))
        details.extend(("also", format_path(extra_path, "values")) for extra_path, _extra in also)

        def apply(doc: Document, record: EnvironmentRecord) -> None:
            for extra_path, extra in also:
                doc.set(extra_path, extra)
            if secret:
                from ruamel.yaml.comments import CommentedMap

                sealed = CommentedMap()
                sealed["ciphertext"] = self._encryptor(record)(value)
                node = CommentedMap()
                node[SECRET_FN] = sealed
                doc.set(path, node)
            else:
                doc.set(path, value)

        return self._edit(env, apply, details)

    def remove_value(self, env: EnvRef, path: Path) -> RevisionRecord:
        self._require("write", env)
        details = [("change", "remove"), ("path", format_path(path, "values"))]
        return self._edit(env, lambda doc, _record: doc.delete(path), details)

    def delete_environment(self, env: EnvRef) -> None:
        self._require("delete", env)
        self._store.delete_environment(env, audit=[self._event("delete", env=env)])

    def rollback(self, target: RevisionRef) -> RevisionRecord:
        """Write a new revision whose content is that of ``target``."""
        self._require("write", target.env)
        old = self.resolve(target)
        latest = self._store.get_environment(target.env).latest_revision
        return self._store.append_revision(
            target.env,
            expected_latest=latest,
            definition=old.definition,
            compiled=old.compiled,
            author=self._actor,
            at=self._now(),
            audit=[self._event("rollback", env=target.env, revision=latest + 1, details=[("to", str(old.number))])],
        )

    def tag(self, env: EnvRef, tag: str, revision: int | str | None = None) -> int:
        self._require("write", env)
        validate_tag_name(tag)
        number = self.resolve(RevisionRef(env, revision)).number
        event = self._event("tag.set", env=env, revision=number, details=[("tag", tag)])
        self._store.set_tag(env, tag, number, at=self._now(), audit=[event])
        return number

    def untag(self, env: EnvRef, tag: str) -> None:
        self._require("write", env)
        validate_tag_name(tag)
        self._store.delete_tag(env, tag, audit=[self._event("tag.delete", env=env, details=[("tag", tag)])])

    def clone(self, src: EnvRef, dst: EnvRef, *, preserve_history: bool = False) -> int:
        """Copy ``src`` to a new ``dst``; secrets are re-encrypted under ``dst``'s own data key."""
        self._require("open", src)
        self._require("write", dst)
        from strongroom.crypto.format import decrypt_secret, encrypt_secret, new_data_key
        from strongroom.language import compile_definition

        src_key = self._data_key(self._store.get_environment(src))
        dst_key = new_data_key()
        revisions = self._store.list_revisions(src)[::-1] if preserve_history else [self._store.get_revision(src)]

        def reencrypt(rev: RevisionRecord) -> tuple[str, str, str, str]:
            doc = parse_definition(rev.definition, str(src))
            for _path, node in doc.secret_nodes():
                arg = node[SECRET_FN]
                if isinstance(arg, dict):
                    plaintext = decrypt_secret(src_key, src, str(arg["ciphertext"]))
                    arg["ciphertext"] = encrypt_secret(dst_key, dst, plaintext)
            text = doc.dump()
            author = rev.author if preserve_history else self._actor
            created = rev.created_at if preserve_history else self._now()
            return text, compile_definition(text, str(dst)).to_json(), author, created

        copied = [reencrypt(r) for r in revisions]
        tags: list[tuple[str, int]] = []
        if preserve_history:
            tags = [(t.name, t.revision) for t in self._store.list_tags(src)]
        primary = self.keyring().primary
        self._store.import_environment(
            dst,
            data_key=primary.wrap(dst, dst_key),
            key_id=primary.key_id,
            revisions=copied,
            tags=tags,
            at=self._now(),
            audit=[
                self._event("decrypt", env=src, revision=revisions[-1].number, details=[("view", "clone")]),
                self._event("create", env=dst, revision=len(copied), details=[("cloned_from", str(src))]),
            ],
        )
        return len(copied)


def _webhook_ref(webhook_id: str) -> EnvRef:
    """The name bound to a webhook's wrapped secret (no user environment can have it)."""
    return EnvRef(".", f"webhook-{webhook_id}")


def _wrapped_json(key_id: str, wrapped: bytes) -> str:
    return json.dumps({"key_id": key_id, "wrapped": base64.b64encode(wrapped).decode("ascii")})


def _reveal(node: Any, decrypt: Callable[[str], str] | None, *, keep: bool = True) -> Any:
    """Replace secret nodes by :class:`Secret` (decrypted when ``decrypt`` is given and ``keep``)."""
    if is_secret_node(node):
        arg = node[SECRET_FN]
        if decrypt is not None and keep and isinstance(arg, dict):
            return Secret(decrypt(str(arg.get("ciphertext"))))
        return Secret(None)
    if isinstance(node, dict):
        return {k: _reveal(v, decrypt, keep=keep) for k, v in node.items()}
    if isinstance(node, list):
        return [_reveal(v, decrypt, keep=keep) for v in node]
    return node


def _flatten(plain: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(node: Any, path: Path) -> None:
        if is_secret_node(node):
            out[format_path(path)] = node
        elif isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list) and node:
            for i, v in enumerate(node):
                walk(v, (*path, i))
        else:
            out[format_path(path)] = node

    walk(plain, ())
    return out


def _same(a: Any, b: Any, dec_a: Callable[[str], str] | None, dec_b: Callable[[str], str] | None) -> bool:
    if is_secret_node(a) and is_secret_node(b):
        ta, tb = a[SECRET_FN], b[SECRET_FN]
        if ta == tb:
            return True
        if dec_a is not None and dec_b is not None and isinstance(ta, dict) and isinstance(tb, dict):
            return dec_a(str(ta["ciphertext"])) == dec_b(str(tb["ciphertext"]))
        return False
    return bool(type(a) is type(b) and a == b)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _python(v: EvalValue, inherited: bool = False) -> Any:
    """Plain data from an evaluated value; each secret leaf a :class:`Secret` (masked ones hold no plaintext)."""
    secret = v.secret or inherited
    if isinstance(v.value, dict):
        return {k: _python(c, secret) for k, c in v.value.items()}
    if isinstance(v.value, list):
        return [_python(c, secret) for c in v.value]
    if secret:
        return Secret(None if v.unknown else _text(v.value))
    return None if v.unknown else v.value


def _at_path(ev: Evaluation, path: Path, ref: RevisionRef) -> EvalValue:
    node = ev.value
    for i, seg in enumerate(path):
        here = format_path(path[:i], "values")
        if node.secret and not isinstance(node.value, dict | list):
            raise PathError(f"the path runs through the secret at {here} in {ref.env}")
        if not isinstance(node.value, dict | list):
            raise PathError(f"the path runs through a scalar: {here} in {ref.env} has no key {seg!r}")
        child = node.get(seg)
        if child is None:
            raise PathError(
                f"{format_path(path[: i + 1], 'values')} does not exist in {ref}",
                hint=f"run `strongroom env get {ref}` to see its values",
            )
        node = child
    return node


def _secret_texts(value: EvalValue) -> list[str]:
    """Every secret leaf's plaintext in an evaluated value (what ``run`` masks)."""
    found: list[str] = []
    stack = [(value, False)]
    while stack:
        node, inherited = stack.pop()
        secret = node.secret or inherited
        if isinstance(node.value, dict):
            stack.extend((c, secret) for c in node.value.values())
        elif isinstance(node.value, list):
            stack.extend((c, secret) for c in node.value)
        elif secret and not node.unknown and node.value is not None:
            found.append(_text(node.value))
    return found


class _CheckOnlyProvider:
    """A provider's schema without its effect: checking a definition before saving opens nothing."""

    def __init__(self, provider: Any) -> None:
        self.schema = getattr(provider, "schema", None)

    def open(self, inputs: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        return Secret(None)  # unknown until the environment is really opened


class _CheckOnlyProviders(Mapping[str, Any]):
    def __init__(self, providers: Mapping[str, Any]) -> None:
        self._providers = providers

    def __getitem__(self, name: str) -> Any:
        return _CheckOnlyProvider(self._providers[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)
