"""``strongroom audit``: list, export and verify the audit log, and trace a leaked value."""

from __future__ import annotations

__all__ = ["audit"]

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from strongroom.errors import InvalidInputError, StrongroomError
from strongroom.model import AuditRecord

if TYPE_CHECKING:
    from strongroom.service import Service

_RELATIVE = re.compile(r"([0-9]{1,12})\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> str:
    """``24h``, ``7d``, ``2w`` ago, or an ISO date/time; returned as a stored timestamp."""
    from strongroom.service import format_time

    now = now or datetime.now(UTC)
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        try:
            return format_time(now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}))
        except (OverflowError, ValueError):
            raise InvalidInputError(
                f"the time {text!r} is too far back", hint="use for example 7d or 2026-11-01"
            ) from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"cannot read the time {text!r}", hint="use a duration like 24h or 7d, or a date like 2026-11-01"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_time(moment)


def record_json(rec: AuditRecord) -> dict[str, Any]:
    ev = rec.event
    return {
        "seq": rec.seq,
        "at": ev.at,
        "actor": ev.actor,
        "action": ev.action,
        "outcome": ev.outcome,
        "environment": ev.environment,
        "revision": ev.revision,
        "client": ev.client,
        "details": dict(ev.details),
        "prev_hash": rec.prev_hash,
        "hash": rec.hash,
    }


def _summary(rec: AuditRecord) -> str:
    details = dict(rec.event.details)
    parts = [f"{k}={v}" for k, v in details.items() if not k.startswith("hmac:") and k != "value_hmac"]
    secrets = sum(1 for k in details if k.startswith("hmac:"))
    if secrets:
        parts.append(f"{secrets} secret(s)")
    return " ".join(parts)


def _print_records(records: list[AuditRecord]) -> None:
    from strongroom.cli.tables import print_table, short_time

    print_table(
        ("seq", "time", "actor", "action", "outcome", "environment", "rev", "client", "details"),
        [
            (
                str(r.seq),
                short_time(r.event.at),
                r.event.actor,
                r.event.action,
                r.event.outcome,
                r.event.environment or "",
                "" if r.event.revision is None else str(r.event.revision),
                r.event.client or "",
                _summary(r),
            )
            for r in records
        ],
    )


def _service(ctx: click.Context) -> Service:
    from strongroom.cli.app import _app

    return _app(ctx).service()


@click.group()
def audit() -> None:
    """Inspect the tamper-evident audit log."""


@audit.command("ls")
@click.option("--env", "environment", help="Only records about this environment.")
@click.option("--actor", help="Only records by this actor.")
@click.option("--action", help="Only this action (read, decrypt, open, write, create, delete, tag.set, ...).")
@click.option("--since", help="Only records since a time: 24h, 7d, or 2026-11-01.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many records.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def audit_ls(
    ctx: click.Context,
    environment: str | None,
    actor: str | None,
    action: str | None,
    since: str | None,
    limit: int | None,
    fmt: str,
) -> None:
    """List audit records, oldest first."""
    records = list(
        _service(ctx).audit_log(
            environment=environment,
            actor=actor,
            action=action,
            since=parse_since(since) if since else None,
            limit=limit,
        )
    )
    if fmt == "json":
        click.echo(json.dumps([record_json(r) for r in records], indent=2, ensure_ascii=False))
    else:
        _print_records(records)


@audit.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="File to write (default stdout).")
@click.pass_context
def audit_export(ctx: click.Context, output: str | None) -> None:
    """Write every record as JSON lines, with its hash and the hash before it."""
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        count = 0
        for rec in _service(ctx).audit_log():
            out.write(json.dumps(record_json(rec), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"Wrote {count} record(s) to {output}.", err=True)


@audit.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the hash chain; name the first edited, deleted or reordered record."""
    count, broken = _service(ctx).verify_audit()
    if broken is not None:
        raise StrongroomError(
            f"the audit log is broken at record {broken.seq}: {broken.reason} ({count} record(s) before it are intact)",
            hint="restore the store from a backup and investigate who had write access to the database",
        )
    click.echo(f"Audit log intact: {count} record(s), hash chain unbroken.")


@audit.command("hash")
@click.argument("value", required=False)
@click.option("-f", "--file", "source", metavar="FILE|-", help="Read the value from a file or stdin.")
@click.pass_context
def audit_hash(ctx: click.Context, value: str | None, source: str | None) -> None:
    """Was VALUE (say, a leaked token) ever read or written, and by whom?"""
    from strongroom.cli.app import _read_input

    if (value is None) == (source is None):
        raise click.UsageError("give either VALUE or --file")
    if source is not None:
        value = _read_input(source, "value")
        value = value[:-1] if value.endswith("\n") else value
    assert value is not None
    records = _service(ctx).search_value(value)
    if not records:
        click.echo("No audit record carries this value: it was never read or written through Strongroom.")
        return
    click.echo(f"{len(records)} record(s) carry this value:")
    _print_records(records)
