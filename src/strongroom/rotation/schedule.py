"""Rotation schedules: parsing (``annually``, ``every 30d``, cron, ``never``, ``when: ...``) and next-due dates.

Everything here is pure: the caller passes the time of the last rotation and gets the
due date back, so tests need no clock at all.
"""

from __future__ import annotations

__all__ = ["Schedule", "ScheduleError", "next_due", "parse_duration", "parse_schedule"]

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

_EVERY = re.compile(r"every\s+([0-9]{1,5})\s*([dwh])\Z")
_DURATION = re.compile(r"([0-9]{1,5})\s*([dwh])\Z")
_UNITS = {"d": "days", "w": "weeks", "h": "hours"}
_CALENDAR = {"annually": 12, "yearly": 12, "quarterly": 3, "monthly": 1}
#: (low, high) of each cron field: minute, hour, day of month, month, day of week (0 or 7 = Sunday).
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
#: How far ahead a cron expression is searched before it is declared to never fire (e.g. 31 February).
_CRON_HORIZON_DAYS = 366 * 5


class ScheduleError(ValueError):
    """A schedule that cannot be read; the message says what is wrong (no secret is ever in it)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule. ``kind`` is ``calendar`` (``months``), ``interval`` (``interval``), ``cron``,
    ``never`` or ``event`` (``text`` holds the event)."""

    kind: str
    text: str
    months: int = 0
    interval: timedelta | None = None
    cron: tuple[frozenset[int], ...] | None = None
    cron_dom_any: bool = True
    cron_dow_any: bool = True

    @property
    def is_periodic(self) -> bool:
        return self.kind in ("calendar", "interval", "cron")

    def display(self) -> str:
        """How a runbook writes it: ``Annually``, ``Quarterly``, ``N/A``, ``When OAuth app is rotated``."""
        if self.kind == "never":
            return "N/A"
        if self.kind == "calendar":
            return self.text.capitalize()
        if self.kind == "event":
            return "When " + self.text if not self.text.lower().startswith("when") else self.text
        return self.text


def parse_duration(text: str) -> timedelta:
    """``30d``, ``2w`` or ``12h``."""
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None:
        raise ScheduleError(f"{text!r} is not a duration; write it as 30d, 2w or 12h")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _cron_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"bad step {step_text!r} in cron field {text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()):
                raise ScheduleError(f"bad range {part!r} in cron field {text!r}")
            start, end = int(a), int(b)
        elif part.isdigit():
            start = end = int(part)
            if step != 1:
                end = high
        else:
            raise ScheduleError(f"bad cron field {text!r} (names such as MON are not supported; use numbers)")
        if start < low or end > high or start > end:
            raise ScheduleError(f"cron field {text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _parse_cron(text: str) -> Schedule:
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"a cron expression has 5 fields (minute hour day month weekday), not {len(fields)}")
    parsed = tuple(_cron_field(f, lo, hi) for f, (lo, hi) in zip(fields, _CRON_RANGES, strict=True))
    dow = frozenset(7 if d == 0 else d for d in parsed[4])  # ISO weekday: Monday 1 ... Sunday 7
    return Schedule(
        "cron",
        " ".join(fields),
        cron=(parsed[0], parsed[1], parsed[2], parsed[3], dow),
        cron_dom_any=fields[2] == "*",
        cron_dow_any=fields[4] == "*",
    )


def parse_schedule(value: Any) -> Schedule:
    """A schedule as written in a ``rotation:`` entry; ``ScheduleError`` if it is none of the known forms.

    Text schedules are parsed once per process (a catalog of thousands repeats a handful).
    """
    if isinstance(value, str):
        return _parse_schedule_text(value)
    return _parse_schedule(value)


@functools.lru_cache(maxsize=1024)
def _parse_schedule_text(value: str) -> Schedule:
    return _parse_schedule(value)


def _parse_schedule(value: Any) -> Schedule:
    if isinstance(value, dict):
        if set(value) == {"when"} and isinstance(value["when"], str) and value["when"].strip():
            return Schedule("event", value["when"].strip())
        raise ScheduleError("a schedule object must be {when: EVENT TEXT}")
    if not isinstance(value, str):
        raise ScheduleError("a schedule must be a string such as annually, every 30d or a cron expression")
    text = " ".join(value.split())
    lower = text.lower()
    if lower in _CALENDAR:
        return Schedule("calendar", lower, months=_CALENDAR[lower])
    if lower in ("never", "n/a"):
        return Schedule("never", "never")
    if lower.startswith("when:"):
        event = text[5:].strip()
        if not event:
            raise ScheduleError("write the event after when:, e.g. when: the OAuth app is rotated")
        return Schedule("event", event)
    m = _EVERY.fullmatch(lower)
    if m is not None:
        amount = int(m.group(1))
        if amount == 0:
            raise ScheduleError("an interval must be at least 1")
        return Schedule("interval", f"every {amount}{m.group(2)}", interval=timedelta(**{_UNITS[m.group(2)]: amount}))
    if len(text.split()) == 5:
        return _parse_cron(text)
    raise ScheduleError(
        f"unknown schedule {text!r}; use annually, quarterly, monthly, every 30d, "
        "a 5-field cron expression, never, or when: EVENT"
    )


def _add_months(moment: datetime, months: int) -> datetime:
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    for day in (moment.day, 30, 29, 28):  # 31 January + 1 month = 28/29 February
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _cron_next(schedule: Schedule, after: datetime) -> datetime | None:
    assert schedule.cron is not None
    minutes, hours, doms, months, dows = schedule.cron
    start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for offset in range(_CRON_HORIZON_DAYS):
        current = day + timedelta(days=offset)
        if current.month not in months:
            continue
        dom_ok, dow_ok = current.day in doms, current.isoweekday() in dows
        # When both day fields are restricted, cron fires when either matches.
        both = not (schedule.cron_dom_any or schedule.cron_dow_any)
        matches = (dom_ok or dow_ok) if both else (dom_ok and dow_ok)
        if not matches:
            continue
        for hour in sorted(hours):
            for minute in sorted(minutes):
                candidate = current.replace(hour=hour, minute=minute)
                if candidate >= start:
                    return candidate
    return None


def next_due(schedule: Schedule, last_rotated: datetime) -> datetime | None:
    """When a secret last rotated at ``last_rotated`` is next due; ``None`` for ``never`` and events.

    Calendar schedules add months (31 January + 1 month = end of February); a cron
    schedule is due at its first firing after the last rotation.
    """
    if schedule.kind == "calendar":
        return _add_months(last_rotated, schedule.months)
    if schedule.kind == "interval":
        assert schedule.interval is not None
        return last_rotated + schedule.interval
    if schedule.kind == "cron":
        return _cron_next(schedule, last_rotated)
    return None
