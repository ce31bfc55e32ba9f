"""Scheduled rotation: what is due, and rotating what can be rotated without a person.

Shared by ``strongroom rotation run-due`` (cron, Kubernetes CronJob) and the loop inside
``strongroom serve``.
"""

from __future__ import annotations

__all__ = ["UNATTENDED_ROTATORS", "DueOutcome", "DuePlan", "plan_due", "rotate_due"]

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from strongroom.model import EnvRef

if TYPE_CHECKING:
    from strongroom.rotation.engine import RotationEngine, RotationResult
    from strongroom.service import Service

#: Rotators that need nobody at a keyboard.
UNATTENDED_ROTATORS = frozenset({"random", "postgresql"})


@dataclass
class DuePlan:
    """What a scheduled run found: rotations it resumed, secrets to rotate, and those that need a person."""

    resumed: list[RotationResult] = field(default_factory=list)
    to_rotate: list[tuple[EnvRef, str, str]] = field(default_factory=list)  # (env, path, "overdue" | "retry")
    needs_person: list[tuple[str, str, str]] = field(default_factory=list)  # (env, path, rotator or "no rotator")


@dataclass(frozen=True)
class DueOutcome:
    env: EnvRef
    path: str
    why: str
    result: RotationResult | None  # None: still waiting out the backoff of an earlier failure
    retry_at: str | None = None


def plan_due(service: Service, engine: RotationEngine, ref: EnvRef | None, now: datetime) -> DuePlan:
    """Resume interrupted rotations, then list overdue secrets (and failed ones to retry)."""
    from strongroom.rotation.catalog import OVERDUE, read_catalog, rotation_status

    plan = DuePlan(resumed=list(engine.resume(ref)))
    for s in rotation_status(read_catalog(service, ref), now, timedelta(0)):
        name = s.item.entry.rotator_name
        state = engine.state(EnvRef.parse(s.env), s.path) or {}
        if s.state == OVERDUE and name not in UNATTENDED_ROTATORS:
            plan.needs_person.append((s.env, s.path, name or "no rotator"))
        elif name in UNATTENDED_ROTATORS and (s.state == OVERDUE or state.get("status") == "failed"):
            plan.to_rotate.append((EnvRef.parse(s.env), s.path, "overdue" if s.state == OVERDUE else "retry"))
    return plan


def rotate_due(engine: RotationEngine, targets: Iterable[tuple[EnvRef, str, str]]) -> list[DueOutcome]:
    """Rotate each target whose backoff (after an earlier failure) is over."""
    outcomes: list[DueOutcome] = []
    for env, path, why in targets:
        if not engine.retry_due(env, path):
            retry_at = str((engine.state(env, path) or {}).get("retry_at", "?"))
            outcomes.append(DueOutcome(env, path, why, None, retry_at))
            continue
        outcomes.append(DueOutcome(env, path, why, engine.rotate(env, path)))
    return outcomes
