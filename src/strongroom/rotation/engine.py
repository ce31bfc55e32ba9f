"""The rotation engine: staged, write-ahead steps ``create -> set -> test -> finish -> propagate``.

Durable state lives in store meta ``rotation:state:<env>:<path>`` (JSON). Before each step
acts, the state says so; after a crash, :meth:`RotationEngine.resume` continues the rotation
or rolls it back. The state never holds plaintext: the pending and previous values are
sealed with the environment's data key (the ciphertext format of ``fn::secret``), so they
are never part of a definition, an evaluation, the catalog or a tier sync. See ``docs/rotation.md``.
"""

from __future__ import annotations

__all__ = [
    "STEPS",
    "Propagator",
    "RotationEngine",
    "RotationInProgressError",
    "RotationResult",
]

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from strongroom.errors import ConflictError, InvalidInputError, NotFoundError, PathError, StrongroomError
from strongroom.language.paths import Path, format_path, parse_path
from strongroom.model import EnvRef, RevisionRef, Secret
from strongroom.rotation.rotators import AnnouncesFinish, Rotated, Rotator, RotatorIO, load_rotator

if TYPE_CHECKING:
    from strongroom.rotation.verifiers import Verifier
    from strongroom.service import Service

STEPS = ("create", "set", "test", "finish", "propagate")
STATE_PREFIX = "rotation:state:"
LOCK_PREFIX = "rotation:lock:"
#: A propagation callback: (environment, path, new revision) -> a line saying what it did (or None).
#: Must be idempotent (repeated after a crash); it should report a failed re-sync rather than raise.
Propagator = Callable[[EnvRef, Path, int], "str | None"]
#: Called at ``before:<step>`` (state written, side effect not yet done) and ``after:<step>``; for tests.
StepObserver = Callable[[str], None]


class RotationInProgressError(ConflictError):
    """Another process holds the rotation lock of this secret."""

    code = "rotation_in_progress"


@dataclass(frozen=True, slots=True)
class RotationResult:
    """What happened, step by step. Never holds a value."""

    env: EnvRef
    path: str
    outcome: str  # "done", "failed", "rolled-back" or "nothing"
    steps: tuple[tuple[str, str], ...]
    revision: int | None = None
    error: str | None = None
    retry_at: datetime | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class RotationEngine:
    """Rotates secrets of one store through ``service`` (the only path to plaintext).

    ``propagators`` run after ``finish``; with none, the state records that propagation is
    pending (tier re-syncs plug in here later). ``grace`` is how long the previous value is
    kept (sealed) before ``retire``; ``lock_ttl`` bounds how long a crashed holder blocks others.
    """

    def __init__(
        self,
        service: Service,
        *,
        clock: Callable[[], datetime],
        io: RotatorIO | None = None,
        rotators: Mapping[str, Rotator] | None = None,
        propagators: Sequence[Propagator] = (),
        grace: timedelta = timedelta(days=1),
        lock_ttl: timedelta = timedelta(minutes=15),
        backoff: timedelta = timedelta(hours=1),
        max_backoff: timedelta = timedelta(days=1),
        observe: StepObserver | None = None,
        verifiers: Mapping[str, Verifier] | None = None,
    ) -> None:
        self._service = service
        self._clock = clock
        self._io = io
        self._rotators = dict(rotators or {})
        self._propagators = tuple(propagators)
        self._grace = grace
        self._lock_ttl = lock_ttl
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._observe = observe or (lambda _point: None)
        self._owner = secrets.token_hex(16)
        self._verifiers = dict(verifiers) if verifiers is not None else None

    def __repr__(self) -> str:
        return f"RotationEngine(service={self._service!r})"

    # -- state, sealing and locking -----------------------------------------------------------

    @staticmethod
    def _key(prefix: str, env: EnvRef, path_text: str) -> str:
        return f"{prefix}{env}:{path_text}"

    def state(self, env: EnvRef, path_text: str) -> dict[str, Any] | None:
        """The durable state of a secret's rotation (no plaintext in it), or ``None``."""
        raw = self._service.store.get_meta(self._key(STATE_PREFIX, env, path_text))
        if not raw:
            return None
        found = json.loads(raw)
        return found if isinstance(found, dict) and found else None

    def _save(self, env: EnvRef, path_text: str, state: Mapping[str, Any] | None) -> None:
        data = {} if state is None else {**state, "updated": _iso(self._clock())}
        self._service.store.set_meta(self._key(STATE_PREFIX, env, path_text), json.dumps(data, sort_keys=True))

    def _seal(self, env: EnvRef, value: str) -> str:
        return self._service.seal(env, value)

    def _unseal(self, env: EnvRef, token: str) -> str:
        return self._service.unseal(env, token)

    def _acquire(self, env: EnvRef, path_text: str) -> None:
        """Take the lock record with a compare-and-set: refused while another owner's unexpired lock stands.

        ``Store.swap_meta`` writes only if the record is still what was read, so of several
        processes (or servers on one PostgreSQL) racing for a free or expired lock, one wins.
        """
        key = self._key(LOCK_PREFIX, env, path_text)
        now = self._clock()
        raw = self._service.store.get_meta(key)
        held = json.loads(raw) if raw else {}
        if held and held.get("owner") != self._owner and datetime.fromisoformat(held["expires"]) > now:
            raise RotationInProgressError(
                f"{path_text} in {env} is being rotated by another process",
                hint=f"wait for it to finish; a crashed holder's lock expires at {held['expires']}",
            )
        mine = json.dumps({"owner": self._owner, "expires": _iso(now + self._lock_ttl)}, sort_keys=True)
        if not self._service.store.swap_meta(key, raw, mine):
            raise RotationInProgressError(
                f"{path_text} in {env} is being rotated by another process", hint="wait for it to finish"
            )

    def _release(self, env: EnvRef, path_text: str) -> None:
        key = self._key(LOCK_PREFIX, env, path_text)
        raw = self._service.store.get_meta(key)
        if raw and json.loads(raw).get("owner") == self._owner:
            self._service.store.swap_meta(key, raw, "")

    # -- reading --------------------------------------------------------------------------------

    def _entry(self, env: EnvRef, path_text: str) -> tuple[str, dict[str, Any]]:
        """(rotator name, inputs incl. ``procedure``) from the catalog of the newest revision."""
        from strongroom.rotation.catalog import read_catalog

        for item in read_catalog(self._service, env):
            if item.entry.path == path_text:
                name = item.entry.rotator_name
                if not name:
                    break
                inputs = dict(item.entry.rotator.get(name) or {})
                inputs["procedure"] = dict(item.entry.procedure)
                inputs["verify"] = dict(item.entry.verify)
                return name, inputs
        raise InvalidInputError(
            f"{path_text} in {env} has no rotator in the catalog",
            hint="add a rotation: entry with rotator: {random: {}} or {manual: {}}",
        )

    def _current(self, env: EnvRef, path: Path) -> str | None:
        try:
            value = self._service.read(RevisionRef(env), path, show_secrets=True)
        except (PathError, NotFoundError):
            return None
        if isinstance(value, Secret):
            return value.reveal()
        return value if isinstance(value, str) else None

    def _rotator(self, name: str) -> Rotator:
        if name not in self._rotators:
            self._rotators[name] = load_rotator(name, self._io)
        return self._rotators[name]

    # -- the steps --------------------------------------------------------------------------------

    def rotate(self, env: EnvRef, path_text: str) -> RotationResult:
        """Rotate one secret now (finishing first any rotation of it that a crash interrupted)."""
        path = parse_path(path_text)
        path_text = format_path(path)
        self._acquire(env, path_text)
        try:
            state = self.state(env, path_text)
            if state is not None and state.get("status") == "running":
                return self._run(env, path, path_text, state, resumed=True)
            name, inputs = self._entry(env, path_text)
            if state and state.get("previous"):  # one previous value at a time: retire it before making another
                self._retire(env, path_text, state)
            attempts = int(state.get("attempts", 0)) if state and state.get("status") == "failed" else 0
            fresh = {
                "v": 1,
                "id": secrets.token_hex(8),
                "env": str(env),
                "path": path_text,
                "rotator": name,
                "status": "running",
                "step": "create",
                "phase": "started",
                "attempts": attempts,
                "started": _iso(self._clock()),
                "memo": dict(state.get("memo") or {}) if state else {},
            }
            self._audit("rotation.started", env, fresh)  # first: resume() finds states through it
            self._save(env, path_text, fresh)
            return self._run(env, path, path_text, fresh, resumed=False, inputs=inputs)
        finally:
            self._release(env, path_text)

    def resume(self, env: EnvRef | None = None) -> list[RotationResult]:
        """Finish or roll back every interrupted rotation (of ``env``, or all); retire due previous values."""
        results = []
        prefix = STATE_PREFIX if env is None else f"{STATE_PREFIX}{env}:"
        for key in self._state_keys(prefix):
            env_text, _, path_text = key[len(STATE_PREFIX) :].partition(":")
            ref = EnvRef.parse(env_text)
            state = self.state(ref, path_text)
            if state is None:
                continue
            if state.get("status") == "running":
                self._acquire(ref, path_text)
                try:
                    state = self.state(ref, path_text) or {}
                    if state.get("status") == "running":
                        results.append(self._run(ref, parse_path(path_text), path_text, state, resumed=True))
                finally:
                    self._release(ref, path_text)
            self._retire_due(ref, path_text)
        return results

    def _state_keys(self, prefix: str) -> list[str]:
        """State keys are listed from the audit log's rotation starts (store meta cannot be listed)."""
        keys = set()
        for rec in self._service.store.list_audit(action="rotation.started"):
            ev = rec.event
            path = dict(ev.details).get("path")
            if ev.environment and path:
                keys.add(f"{STATE_PREFIX}{ev.environment}:{path}")
        return sorted(k for k in keys if k.startswith(prefix))

    def _audit(self, action: str, env: EnvRef, state: Mapping[str, Any], **extra: str) -> None:
        details = [("path", str(state["path"])), ("rotation", str(state["id"])), ("rotator", str(state["rotator"]))]
        details.extend(extra.items())
        outcome = "error" if action == "rotation.failed" else "ok"
        revision = state.get("revision")
        self._service.record(self._service.event(action, env=env, revision=revision, outcome=outcome, details=details))

    def _begin(self, env: EnvRef, path_text: str, state: dict[str, Any], step: str) -> None:
        state["step"], state["phase"] = step, "started"
        self._save(env, path_text, state)
        self._observe(f"before:{step}")

    def _end(self, step: str) -> None:
        self._observe(f"after:{step}")

    def _run(
        self,
        env: EnvRef,
        path: Path,
        path_text: str,
        state: dict[str, Any],
        *,
        resumed: bool,
        inputs: dict[str, Any] | None = None,
    ) -> RotationResult:
        steps: list[tuple[str, str]] = [("resume", f"from {state['step']}")] if resumed else []
        name = str(state["rotator"])
        if inputs is None:
            inputs = self._entry_or_empty(env, path_text, name)[1]
        new: str | None = None
        rotator = self._rotator(name)
        try:
            if state["step"] == "create":
                if state.get("pending") is None:
                    if resumed:  # nothing was stored: nothing to finish, so roll back
                        return self._roll_back(env, path_text, state, steps)
                    self._begin(env, path_text, state, "create")
                    made = rotator.create(self._current(env, path), self._with_memo(inputs, state))
                    made = made if isinstance(made, Rotated) else Rotated(made)
                    new = made.value
                    state["prior_memo"], state["memo"] = dict(state.get("memo") or {}), dict(made.memo)
                    extra = json.dumps(dict(made.extra), sort_keys=True)
                    state["extra"] = self._seal(env, extra) if made.extra else None
                    state["pending"] = self._seal(env, new)
                    self._save(env, path_text, state)
                    self._end("create")
                steps.append(("create", "ok"))
                state["step"] = "set"
            if new is None and state.get("pending"):
                new = self._unseal(env, str(state["pending"]))
            if state["step"] == "set":
                assert new is not None
                self._begin(env, path_text, state, "set")
                rotator.set(new, self._with_memo(inputs, state))
                self._end("set")
                steps.append(("set", "ok"))
                state["step"] = "test"
            if state["step"] == "test":
                assert new is not None
                self._begin(env, path_text, state, "test")
                try:
                    rotator.test(new, self._with_memo(inputs, state))
                    verified = self._verify(new, inputs)
                except Exception as exc:
                    return self._fail(env, path_text, state, steps, "test", exc, new)
                self._end("test")
                steps.append(("test", f"ok ({verified})" if verified else "ok"))
                state["step"] = "finish"
            if state["step"] == "finish":
                self._finish(env, path, path_text, state, new)
                steps.append(("finish", f"revision {state['revision']}"))
                state["step"] = "propagate"
            if isinstance(rotator, AnnouncesFinish) and not resumed:
                rotator.finished(inputs)
            self._begin(env, path_text, state, "propagate")
            notes = [note for propagate in self._propagators if (note := propagate(env, path, int(state["revision"])))]
            state["propagation"] = "done" if self._propagators else "pending"
            state["status"], state["phase"], state["attempts"] = "done", "done", 0
            state.pop("prior_memo", None)
            self._save(env, path_text, state)
            self._end("propagate")
            if not self._propagators:
                notes = ["pending (no targets configured)"]
            steps.append(("propagate", "; ".join(notes) or "done"))
            return RotationResult(env, path_text, "done", tuple(steps), revision=int(state["revision"]))
        except Exception as exc:
            if state["step"] in ("finish", "propagate"):
                raise  # promoted, or about to be: leave the state for resume
            return self._fail(env, path_text, state, steps, str(state["step"]), exc, new)

    @staticmethod
    def _with_memo(inputs: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        return {**inputs, "memo": dict(state.get("memo") or {})}

    def _verify(self, new: str, inputs: Mapping[str, Any]) -> str:
        """Run the catalog's ``verify:`` check on the new value; raise if it does not pass. '' when none."""
        spec = inputs.get("verify") or {}
        if not spec:
            return ""
        ((name, settings),) = spec.items()
        if self._verifiers is None:
            from strongroom.rotation.verifiers import builtin_verifiers

            self._verifiers = dict(builtin_verifiers())
        verifier = self._verifiers.get(name)
        if verifier is None:
            raise InvalidInputError(
                f"verifier {name!r} is not available", hint="use http, postgresql, smtp or registry"
            )
        found = verifier.verify(new, settings)
        if not found.ok:
            raise InvalidInputError(f"the {name} verifier refused the new value: {found.detail}")
        return found.detail

    def _entry_or_empty(self, env: EnvRef, path_text: str, name: str) -> tuple[str, dict[str, Any]]:
        try:
            return self._entry(env, path_text)
        except InvalidInputError:  # the entry was removed mid-rotation: finish with no inputs
            return name, {}

    def _finish(self, env: EnvRef, path: Path, path_text: str, state: dict[str, Any], new: str | None) -> None:
        """Promote pending to current (a new revision), keep the old value sealed as ``previous``."""
        if state.get("phase") != "promoted":
            assert new is not None
            current = self._current(env, path)
            state["value_hmac"] = self._service.value_hmac(new)
            if "previous_pending" not in state:
                state["previous_pending"] = None if current is None else self._seal(env, current)
            self._begin(env, path_text, state, "finish")
            if current != new:  # after a crash the write may already have happened
                extra = json.loads(self._unseal(env, str(state["extra"]))) if state.get("extra") else {}
                also = [(parse_path(p), str(v)) for p, v in sorted(extra.items())]
                written = self._service.set_value(env, path, new, secret=True, also=also)
                state["revision"] = written.number
            else:
                state["revision"] = self._service.store.get_environment(env).latest_revision
            state["phase"] = "promoted"
            state["previous"] = state.pop("previous_pending")
            state["retire_after"] = _iso(self._clock() + self._grace)
            state["pending"] = state["extra"] = None
            state["finished"] = _iso(self._clock())
            self._save(env, path_text, state)
        if not self._already_audited(env, str(state["id"])):
            self._audit("rotation.done", env, state, value_hmac=str(state.get("value_hmac", "")))
        self._end("finish")

    def _already_audited(self, env: EnvRef, rotation_id: str) -> bool:
        for rec in self._service.store.list_audit(environment=str(env), action="rotation.done"):
            if dict(rec.event.details).get("rotation") == rotation_id:
                return True
        return False

    def _fail(
        self,
        env: EnvRef,
        path_text: str,
        state: dict[str, Any],
        steps: list[tuple[str, str]],
        step: str,
        exc: Exception,
        new: str | None,
    ) -> RotationResult:
        """Current untouched; pending dropped (a retry makes a fresh value), backoff recorded."""
        message = exc.message if isinstance(exc, StrongroomError) else type(exc).__name__
        if new and new in message:
            message = type(exc).__name__
        attempts = int(state.get("attempts", 0)) + 1
        delay = min(self._backoff * 2 ** (attempts - 1), self._max_backoff)
        retry_at = self._clock() + delay
        state.update(
            status="failed",
            phase="failed",
            step=step,
            pending=None,
            extra=None,
            memo=state.get("prior_memo", state.get("memo") or {}),
            previous_pending=None,
            attempts=attempts,
            error=message,
            retry_at=_iso(retry_at),
        )
        self._save(env, path_text, state)
        self._audit("rotation.failed", env, state, step=step, error=message, retry_at=_iso(retry_at))
        steps.append((step, f"failed: {message}"))
        return RotationResult(env, path_text, "failed", tuple(steps), error=message, retry_at=retry_at)

    def _roll_back(
        self, env: EnvRef, path_text: str, state: dict[str, Any], steps: list[tuple[str, str]]
    ) -> RotationResult:
        state.update(
            status="rolled-back",
            phase="rolled-back",
            pending=None,
            extra=None,
            memo=state.get("prior_memo", state.get("memo") or {}),
        )
        self._save(env, path_text, state)
        self._audit(
            "rotation.failed", env, state, step=str(state["step"]), error="interrupted before a value was stored"
        )
        steps.append((str(state["step"]), "rolled back (interrupted before a value was stored)"))
        return RotationResult(env, path_text, "rolled-back", tuple(steps))

    def _retire_due(self, env: EnvRef, path_text: str) -> None:
        state = self.state(env, path_text)
        if not state or state.get("status") != "done" or not state.get("previous"):
            return
        if datetime.fromisoformat(str(state["retire_after"])) > self._clock():
            return
        self._retire(env, path_text, state)

    def _retire(self, env: EnvRef, path_text: str, state: dict[str, Any]) -> None:
        """``rotator.retire(previous)``, then forget the previous value (audit ``rotation.retired``)."""
        rotator = self._rotator(str(state["rotator"]))
        _name, inputs = self._entry_or_empty(env, path_text, str(state["rotator"]))
        rotator.retire(self._unseal(env, str(state["previous"])), self._with_memo(inputs, state))
        state["previous"] = None
        state["retired"] = _iso(self._clock())
        self._save(env, path_text, state)
        self._audit("rotation.retired", env, state)

    def retry_due(self, env: EnvRef, path_text: str) -> bool:
        """Whether a failed rotation's backoff is over (for scheduled runs; ``rotate`` itself ignores it)."""
        state = self.state(env, path_text)
        if not state or state.get("status") != "failed":
            return True
        return datetime.fromisoformat(str(state["retry_at"])) <= self._clock()
