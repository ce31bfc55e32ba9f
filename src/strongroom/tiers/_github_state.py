"""What Strongroom remembers about the GitHub Actions secrets it pushed (ownership state).

Kept in the store's ``store_meta`` table, one JSON value per (environment, scope) under
``github:<env>:<scope>``, plus an index ``github:<env>`` listing the scopes that hold
owned secrets. Only these functions know that layout, so the state can move to a table
later without touching the tier. Nothing here ever holds a value: only its keyed HMAC.
"""

from __future__ import annotations

__all__ = [
    "OwnedSecret",
    "load_owned",
    "owned_scopes",
    "save_owned",
    "state_key",
]

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from strongroom.model import EnvRef
from strongroom.storage.base import Store

_PREFIX = "github"


@dataclass(frozen=True, slots=True)
class OwnedSecret:
    """One secret Strongroom pushed.

    ``hmac`` is the keyed HMAC of the value pushed, ``revision`` the environment revision
    it came from, ``updated_at`` what GitHub reported after the push (drift is a later
    ``updated_at``). ``pending`` marks a write that was started and whose outcome is not
    known (written before the request, cleared after it).
    """

    name: str
    hmac: str
    revision: int
    updated_at: str | None
    pushed_at: str
    visibility: str | None = None
    selected_repositories: tuple[str, ...] = field(default=())
    pending: bool = False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["selected_repositories"] = list(self.selected_repositories)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OwnedSecret:
        return cls(
            name=str(data["name"]),
            hmac=str(data.get("hmac", "")),
            revision=int(data.get("revision", 0)),
            updated_at=data.get("updated_at"),
            pushed_at=str(data.get("pushed_at", "")),
            visibility=data.get("visibility"),
            selected_repositories=tuple(data.get("selected_repositories") or ()),
            pending=bool(data.get("pending", False)),
        )


def state_key(env: EnvRef, scope: str) -> str:
    """The ``store_meta`` key of one (environment, scope)."""
    return f"{_PREFIX}:{env}:{scope}"


def _index_key(env: EnvRef) -> str:
    return f"{_PREFIX}:{env}"


def owned_scopes(store: Store, env: EnvRef) -> list[str]:
    """The scopes in which ``env`` owns at least one secret."""
    raw = store.get_meta(_index_key(env))
    return sorted(json.loads(raw)) if raw else []


def load_owned(store: Store, env: EnvRef, scope: str) -> dict[str, OwnedSecret]:
    """The secrets ``env`` owns in ``scope``, by upper-case name."""
    raw = store.get_meta(state_key(env, scope))
    if not raw:
        return {}
    data = json.loads(raw)
    return {name.upper(): OwnedSecret.from_json(entry) for name, entry in data.get("secrets", {}).items()}


def save_owned(store: Store, env: EnvRef, scope: str, owned: dict[str, OwnedSecret]) -> None:
    """Replace what ``env`` owns in ``scope`` (an empty mapping forgets the scope)."""
    payload = {"version": 1, "secrets": {name: owned[name].to_json() for name in sorted(owned)}}
    store.set_meta(state_key(env, scope), json.dumps(payload, sort_keys=True))
    scopes = set(owned_scopes(store, env))
    updated = scopes | {scope} if owned else scopes - {scope}
    if updated != scopes:
        store.set_meta(_index_key(env), json.dumps(sorted(updated)))
