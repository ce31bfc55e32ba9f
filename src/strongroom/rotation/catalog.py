"""The rotation catalog: the ``rotation:`` block of each environment, checked, cached and dated.

``check_entry`` validates one entry as plain data (the compiler calls it and turns the
issues into positioned diagnostics). ``read_catalog`` reads every environment's entries
from the compiled cache (no YAML parsing) and dates them with one audit query.
"""

from __future__ import annotations

__all__ = [
    "CatalogEntry",
    "CatalogItem",
    "CatalogRow",
    "Issue",
    "StatusItem",
    "check_entry",
    "collapse",
    "read_catalog",
    "rotation_status",
]

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from strongroom.errors import PathError
from strongroom.language.diagnostics import ERROR, WARNING, did_you_mean
from strongroom.language.paths import Path, format_path, parse_path
from strongroom.rotation.schedule import Schedule, ScheduleError, next_due, parse_schedule

if TYPE_CHECKING:
    from strongroom.model import EnvRef
    from strongroom.service import Service

FIELDS = ("name", "purpose", "owner", "usedBy", "schedule", "rotator", "procedure", "verify", "lastRotated")
PROCEDURE_FIELDS = ("steps", "url", "scopes", "prefix", "expiry", "revokeUrl")
BUILTIN_ROTATORS = ("random", "postgresql", "manual")
RANDOM_ENCODINGS = ("hex", "base64", "urlsafe")
#: The ``postgresql`` rotator's inputs (checked here when a definition is written; see rotation/postgresql.py).
POSTGRESQL_INPUTS = ("user", "host", "port", "dbname", "bytes", "strategy", "userPath", "adminDsnEnv", "adminUser")
#: Verifiers a ``verify:`` entry can name, with the spec fields each requires.
VERIFIERS = {"http": ("url",), "postgresql": ("user",), "smtp": ("host",), "registry": ("registry", "username")}


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem in one entry: ``field`` is the path inside the entry (empty: the entry's key)."""

    field: tuple[str | int, ...]
    summary: str
    hint: str | None = None
    severity: str = ERROR
    at_key: bool = False


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@functools.lru_cache(maxsize=4096)
def parse_date(value: str) -> datetime:
    """``2025-01-15`` or an ISO 8601 time, as an aware UTC datetime; ``ValueError`` otherwise."""
    text = value.strip()
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_rotator(value: Any, issues: list[Issue]) -> None:
    if not isinstance(value, dict) or len(value) != 1:
        issues.append(
            Issue(
                ("rotator",),
                "rotator must be an object with one key, the rotator's name",
                "write rotator: {random: {bytes: 32, encoding: hex}} or rotator: {manual: {}}",
            )
        )
        return
    ((name, inputs),) = value.items()
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        issues.append(Issue(("rotator", name), f"the inputs of rotator {name!r} must be an object"))
        return
    if name not in BUILTIN_ROTATORS:
        suggestion = did_you_mean(str(name), BUILTIN_ROTATORS)
        issues.append(
            Issue(
                ("rotator", name),
                f"rotator {name!r} is not built in" + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                "built-in rotators are random, postgresql and manual; others come from plug-ins",
                WARNING,
                at_key=True,
            )
        )
    if name == "postgresql":
        _check_postgresql(inputs, issues)
    if name == "random":
        for key, input_value in inputs.items():
            if key == "bytes":
                if not isinstance(input_value, int) or isinstance(input_value, bool) or not 16 <= input_value <= 1024:
                    issues.append(Issue(("rotator", name, key), "bytes must be a whole number from 16 to 1024"))
            elif key == "encoding":
                if input_value not in RANDOM_ENCODINGS:
                    issues.append(Issue(("rotator", name, key), "encoding must be hex, base64 or urlsafe"))
            else:
                issues.append(
                    Issue(
                        ("rotator", name, key),
                        f'unknown input "{key}" of the random rotator',
                        "the random rotator takes bytes and encoding",
                        at_key=True,
                    )
                )


def _check_postgresql(inputs: dict[str, Any], issues: list[Issue]) -> None:
    name = "postgresql"
    for key in inputs:
        if key not in POSTGRESQL_INPUTS:
            suggestion = did_you_mean(str(key), POSTGRESQL_INPUTS)
            issues.append(
                Issue(
                    ("rotator", name, key),
                    f'unknown input "{key}" of the postgresql rotator'
                    + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                    "the postgresql rotator takes " + ", ".join(POSTGRESQL_INPUTS),
                    at_key=True,
                )
            )
    if not isinstance(inputs.get("user"), str) or not inputs["user"]:
        issues.append(Issue(("rotator", name), "the postgresql rotator needs user", "write {postgresql: {user: app}}"))
    strategy = inputs.get("strategy", "single")
    if strategy not in ("single", "alternate"):
        issues.append(Issue(("rotator", name, "strategy"), "strategy must be single or alternate"))
    elif strategy == "alternate":
        try:
            parse_path(str(inputs.get("userPath", "")))
        except PathError:
            issues.append(
                Issue(
                    ("rotator", name),
                    "strategy alternate needs userPath, the value path of the active user name",
                    'add userPath: pulumiConfig["postgresql:user"]',
                )
            )


def _check_procedure(value: Any, issues: list[Issue]) -> None:
    if not isinstance(value, dict):
        issues.append(
            Issue(
                ("procedure",),
                "procedure must be an object",
                "write procedure: {url: ..., steps: [...], scopes: [...], prefix: ..., revokeUrl: ...}",
            )
        )
        return
    for key, item in value.items():
        if key not in PROCEDURE_FIELDS:
            suggestion = did_you_mean(str(key), PROCEDURE_FIELDS)
            issues.append(
                Issue(
                    ("procedure", key),
                    f'unknown procedure field "{key}"' + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                    "a procedure has " + ", ".join(PROCEDURE_FIELDS),
                    at_key=True,
                )
            )
        elif key in ("steps", "scopes"):
            if not _is_str_list(item):
                issues.append(Issue(("procedure", key), f"procedure {key} must be a list of strings"))
        elif not isinstance(item, str):
            issues.append(Issue(("procedure", key), f"procedure {key} must be a string"))


def _check_verify(value: Any, issues: list[Issue]) -> None:
    hint = "write verify: {http: {url: https://example.com/metrics}} (or postgresql, smtp, registry)"
    if not isinstance(value, dict) or len(value) != 1:
        issues.append(Issue(("verify",), "verify must be an object with one key, the verifier's name", hint))
        return
    ((name, spec),) = value.items()
    if name not in VERIFIERS:
        suggestion = did_you_mean(str(name), tuple(VERIFIERS))
        issues.append(
            Issue(
                ("verify", name),
                f"unknown verifier {name!r}" + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                "verifiers are " + ", ".join(VERIFIERS),
                at_key=True,
            )
        )
        return
    if not isinstance(spec, dict):
        issues.append(Issue(("verify", name), f"the {name} verifier's settings must be an object", hint))
        return
    for required in VERIFIERS[name]:
        if not isinstance(spec.get(required), str) or not spec[required]:
            issues.append(
                Issue(("verify", name), f"the {name} verifier needs {required}", f"add {required}: ... under {name}")
            )


def check_entry(path_text: str, data: Any) -> tuple[str | None, dict[str, Any] | None, list[Issue]]:
    """Check one ``rotation:`` entry: (canonical path, the entry as plain JSON, issues).

    The canonical path is written as ``format_path`` writes it (``pulumiConfig["a:b"]``);
    the entry is ``None`` when an error makes it unusable.
    """
    issues: list[Issue] = []
    canonical: str | None = None
    try:
        canonical = format_path(parse_path(path_text))
    except PathError as exc:
        issues.append(Issue((), str(exc.args[0]), exc.hint, at_key=True))
    if not isinstance(data, dict):
        issues.append(
            Issue(
                (),
                "a rotation entry must be an object",
                "write PATH: {purpose: ..., schedule: annually, rotator: {manual: {}}}",
            )
        )
        return canonical, None, issues
    for key, value in data.items():
        if key not in FIELDS:
            suggestion = did_you_mean(str(key), FIELDS)
            issues.append(
                Issue(
                    (key,),
                    f'unknown rotation field "{key}"' + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                    "a rotation entry has " + ", ".join(FIELDS),
                    at_key=True,
                )
            )
        elif key in ("name", "purpose", "owner"):
            if not isinstance(value, str):
                issues.append(Issue((key,), f"{key} must be a string"))
        elif key == "usedBy":
            if not (isinstance(value, str) or _is_str_list(value)):
                issues.append(Issue((key,), "usedBy must be a list of strings", "write usedBy: [deploy.yml, api]"))
        elif key == "schedule":
            try:
                parse_schedule(value)
            except ScheduleError as exc:
                issues.append(Issue((key,), str(exc)))
        elif key == "rotator":
            _check_rotator(value, issues)
        elif key == "procedure":
            _check_procedure(value, issues)
        elif key == "verify":
            _check_verify(value, issues)
        elif key == "lastRotated":
            try:
                parse_date(str(value))
            except ValueError:
                issues.append(Issue((key,), f"lastRotated {value!r} is not a date", "write lastRotated: 2025-01-31"))
    if "schedule" not in data:
        issues.append(
            Issue(
                (),
                "a rotation entry needs a schedule",
                "add schedule: annually (or quarterly, monthly, every 30d, cron, never, when: EVENT)",
                at_key=True,
            )
        )
    if canonical is None or any(i.severity == ERROR for i in issues):
        return canonical, None, issues
    entry = dict(data)
    if isinstance(entry.get("usedBy"), str):
        entry["usedBy"] = [entry["usedBy"]]
    if "lastRotated" in entry:
        entry["lastRotated"] = str(entry["lastRotated"])
    return canonical, entry, issues


# -- reading the catalog --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One secret's rotation metadata, in one environment."""

    env: str
    path: str
    name: str
    purpose: str
    owner: str
    used_by: tuple[str, ...]
    schedule: Schedule
    rotator: Mapping[str, Any]
    procedure: Mapping[str, Any]
    declared_last_rotated: datetime | None
    verify: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, env: str, path: str, data: Mapping[str, Any]) -> CatalogEntry:
        last = data.get("lastRotated")
        return cls(
            env=env,
            path=path,
            name=str(data.get("name") or path),
            purpose=str(data.get("purpose", "")),
            owner=str(data.get("owner", "")),
            used_by=tuple(data.get("usedBy", ())),
            schedule=parse_schedule(data["schedule"]),
            rotator=dict(data.get("rotator") or {}),
            procedure=dict(data.get("procedure") or {}),
            declared_last_rotated=None if last is None else parse_date(str(last)),
            verify=dict(data.get("verify") or {}),
        )

    @property
    def rotator_name(self) -> str:
        return next(iter(self.rotator), "")


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """An entry with its dates: ``next_due`` is ``None`` for ``never`` and event schedules."""

    entry: CatalogEntry
    last_rotated: datetime
    next_due: datetime | None


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """What ``catalog ls`` shows: one path, collapsed over the environments that declare it."""

    name: str
    path: str
    environments: tuple[str, ...]
    imported_by: tuple[str, ...]
    purpose: str
    owner: str
    schedule: str
    used_by: tuple[str, ...]
    rotator: str
    last_rotated: datetime | None
    next_due: datetime | None
    items: tuple[CatalogItem, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class _EnvCatalog:
    env: str
    created_at: datetime
    imports: tuple[str, ...]
    rotation: Mapping[str, Any]


def _parse_time(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _from_cache(compiled: str) -> tuple[tuple[str, ...], Mapping[str, Any]] | None:
    """(imports, rotation) straight from a compiled cache of this version; ``None`` for another version."""
    from strongroom.language.compiler import CACHE_VERSION

    try:
        raw = json.loads(compiled)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("v") != CACHE_VERSION:
        return None
    return tuple(i[0] for i in raw.get("imports", ())), raw.get("rotation") or {}


def _env_catalogs(service: Service, env: EnvRef | None) -> list[_EnvCatalog]:
    from strongroom.language import compile_definition

    records = service.list_environments(project=None if env is None else env.project)
    if env is not None:
        records = [r for r in records if r.ref == env]
        if not records:
            service.store.get_environment(env)  # raises EnvironmentNotFoundError
    out = []
    for rec in records:
        rev = service.store.get_revision(rec.ref, rec.latest_revision)
        cached = _from_cache(rev.compiled)
        if cached is None:  # a cache from another version: compile afresh (never stored back here)
            compiled = compile_definition(rev.definition, str(rec.ref))
            cached = tuple(i.name for i in compiled.imports), compiled.rotation or {}
        out.append(_EnvCatalog(str(rec.ref), _parse_time(rec.created_at), cached[0], cached[1]))
    return out


def _write_times(service: Service, env: EnvRef | None) -> dict[str, dict[Path, datetime]]:
    """Per environment, the newest write time of each path written with ``env set``/``rm`` (one query)."""
    newest: dict[str, dict[Path, datetime]] = {}
    parsed: dict[str, Path | None] = {}
    records = service.store.list_audit(environment=None if env is None else str(env), action="write")
    for rec in records:
        ev = rec.event
        if ev.outcome != "ok" or ev.environment is None:
            continue
        text = dict(ev.details).get("path")
        if text is None:
            continue
        if text not in parsed:
            try:
                full = parse_path(text)
                parsed[text] = full[1:] if full[:1] == ("values",) else full
            except PathError:
                parsed[text] = None
        path = parsed[text]
        if path is None:
            continue
        per_env = newest.setdefault(ev.environment, {})
        at = _parse_time(ev.at)
        if path not in per_env or per_env[path] < at:
            per_env[path] = at
    return newest


def _last_write(writes: Mapping[Path, datetime], path: Path) -> datetime | None:
    """The newest write of ``path`` or of any parent of it (setting a parent replaces the value)."""
    found: datetime | None = None
    for n in range(1, len(path) + 1):
        at = writes.get(path[:n])
        if at is not None and (found is None or at > found):
            found = at
    return found


def read_catalog(service: Service, env: EnvRef | None = None) -> list[CatalogItem]:
    """Every catalogued secret (of ``env``, or of every environment the caller may read), dated.

    Last rotated = the newest of ``lastRotated`` and the newest audited write of the path
    (or of a parent of it); the environment's creation when there is neither.
    """
    catalogs = _env_catalogs(service, env)
    if not any(c.rotation for c in catalogs):
        return []
    writes = _write_times(service, env)
    items: list[CatalogItem] = []
    for cat in catalogs:
        env_writes = writes.get(cat.env, {})
        for path_text, data in cat.rotation.items():
            entry = CatalogEntry.from_json(cat.env, path_text, data)
            candidates = [] if entry.declared_last_rotated is None else [entry.declared_last_rotated]
            written = _last_write(env_writes, parse_path(path_text)) if env_writes else None
            if written is not None:
                candidates.append(written)
            last = max(candidates) if candidates else cat.created_at
            items.append(CatalogItem(entry, last, next_due(entry.schedule, last)))
    return items


def importers(service: Service) -> dict[str, tuple[str, ...]]:
    """For each environment, the environments that import it (directly or not), from the compiled caches."""
    from strongroom.service import DEFAULT_PROJECT

    direct: dict[str, set[str]] = {}
    for cat in _env_catalogs(service, None):
        for written in cat.imports:
            name = written.split("@", 1)[0]
            if "/" not in name:  # a bare name is in the default project, as the evaluator resolves it
                name = f"{DEFAULT_PROJECT}/{name}"
            direct.setdefault(name, set()).add(cat.env)
    closed: dict[str, tuple[str, ...]] = {}
    for start in direct:
        seen: set[str] = set()
        todo = list(direct[start])
        while todo:
            nxt = todo.pop()
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(direct.get(nxt, ()))
        closed[start] = tuple(sorted(seen - {start}))
    return closed


def collapse(items: Iterable[CatalogItem], imported_by: Mapping[str, Sequence[str]] | None = None) -> list[CatalogRow]:
    """One row per (path, purpose, schedule); the earliest due date and oldest rotation across environments."""
    groups: dict[tuple[str, str, str, str], list[CatalogItem]] = {}
    for item in items:
        e = item.entry
        groups.setdefault((e.path, e.name, e.purpose, e.schedule.text), []).append(item)
    rows = []
    for (path, name, purpose, _), group in groups.items():
        envs = tuple(sorted({i.entry.env for i in group}))
        importing = sorted({x for env in envs for x in (imported_by or {}).get(env, ())} - set(envs))
        dues = [i.next_due for i in group if i.next_due is not None]
        used: list[str] = []
        for i in group:
            used.extend(u for u in i.entry.used_by if u not in used)
        first = group[0].entry
        rows.append(
            CatalogRow(
                name=name,
                path=path,
                environments=envs,
                imported_by=tuple(importing),
                purpose=purpose,
                owner=", ".join(sorted({i.entry.owner for i in group if i.entry.owner})),
                schedule=first.schedule.display(),
                used_by=tuple(used),
                rotator=first.rotator_name,
                last_rotated=min(i.last_rotated for i in group),
                next_due=min(dues) if dues else None,
                items=tuple(group),
            )
        )
    rows.sort(key=lambda r: (r.environments, r.path))
    return rows


# -- due dates ------------------------------------------------------------------------------------

OVERDUE = "overdue"
DUE_SOON = "due soon"
ON_EVENT = "on event"
OK = "ok"


@dataclass(frozen=True, slots=True)
class StatusItem:
    """One catalogued secret's state at ``now``: overdue, due soon, on event or ok."""

    item: CatalogItem
    state: str

    @property
    def env(self) -> str:
        return self.item.entry.env

    @property
    def path(self) -> str:
        return self.item.entry.path


def rotation_status(items: Iterable[CatalogItem], now: datetime, within: timedelta) -> list[StatusItem]:
    """Each item's state; overdue first, then by due date. ``never`` and events are ``on event``, never overdue."""
    out = []
    for item in items:
        if item.next_due is None:
            state = ON_EVENT
        elif item.next_due <= now:
            state = OVERDUE
        elif item.next_due <= now + within:
            state = DUE_SOON
        else:
            state = OK
        out.append(StatusItem(item, state))
    order = {OVERDUE: 0, DUE_SOON: 1, OK: 2, ON_EVENT: 3}
    far = datetime.max.replace(tzinfo=UTC)
    out.sort(key=lambda s: (order[s.state], s.item.next_due or far, s.env, s.path))
    return out
