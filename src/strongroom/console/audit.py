"""Audit pages (admins): the log filtered by environment, actor, action and time, and chain verification."""

from __future__ import annotations

__all__ = ["audit_log", "audit_verify"]

import re
from datetime import timedelta

from starlette.responses import Response

from strongroom.console.web import Ctx, FormError

#: Records on one page of the log.
AUDIT_PAGE = 100
_SINCE = re.compile(r"(\d{1,6})([hd])")


def _since(ctx: Ctx, text: str) -> str | None:
    """``24h``, ``7d`` or an ISO date/time, as the store's timestamp text; empty means no bound."""
    from strongroom.service import format_time

    text = text.strip()
    if not text:
        return None
    match = _SINCE.fullmatch(text)
    if match:
        amount = int(match.group(1))
        delta = timedelta(hours=amount) if match.group(2) == "h" else timedelta(days=amount)
        return format_time(ctx.state.clock() - delta)
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FormError(f"cannot read the time {text!r}", hint="use 24h, 7d or a date such as 2025-01-31") from None
    return format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def audit_log(ctx: Ctx) -> Response:
    """GET /audit?environment=&actor=&action=&since=&after=: oldest first, a page at a time."""
    ctx.require("admin")
    filters = {k: ctx.query.get(k, "").strip() for k in ("environment", "actor", "action", "since")}
    after_text = ctx.query.get("after", "0").strip() or "0"
    if not after_text.isdigit():
        raise FormError("after must be a record number")
    records = list(
        ctx.service.audit_log(
            environment=filters["environment"] or None,
            actor=filters["actor"] or None,
            action=filters["action"] or None,
            since=_since(ctx, filters["since"]),
            after_seq=int(after_text),
            limit=AUDIT_PAGE + 1,
        )
    )
    more = len(records) > AUDIT_PAGE
    records = records[:AUDIT_PAGE]
    return ctx.render(
        "audit.html",
        records=records,
        filters=filters,
        next_after=records[-1].seq if more and records else None,
    )


def audit_verify(ctx: Ctx) -> Response:
    """GET /audit/verify: walk the whole hash chain."""
    ctx.require("admin")
    checked, first_break = ctx.service.verify_audit()
    return ctx.render("audit_verify.html", checked=checked, first_break=first_break)
