"""``strongroom catalog ls``: the rotation catalog as the runbook's tables (Rich, JSON or Markdown)."""

from __future__ import annotations

__all__ = ["catalog", "catalog_json", "catalog_markdown"]

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from strongroom.model import EnvRef

if TYPE_CHECKING:
    from strongroom.rotation.catalog import CatalogRow
    from strongroom.service import Service

HEADERS = ("Name", "Environments", "Purpose", "Schedule", "Used by", "Last rotated", "Next due")


def _service(ctx: click.Context) -> Service:
    from strongroom.cli.app import _app

    return _app(ctx).service()


def _day(moment: datetime | None) -> str:
    return "-" if moment is None else moment.date().isoformat()


def _environments(row: CatalogRow) -> str:
    text = ", ".join(row.environments)
    if row.imported_by:
        text += " (imported by " + ", ".join(row.imported_by) + ")"
    return text


def _cells(row: CatalogRow) -> list[str]:
    return [
        row.name,
        _environments(row),
        row.purpose,
        row.schedule,
        ", ".join(row.used_by) or "-",
        _day(row.last_rotated),
        _day(row.next_due) if row.next_due is not None else "on event",
    ]


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def catalog_markdown(rows: Sequence[CatalogRow]) -> str:
    """A GitHub-flavoured Markdown table that pastes into documentation."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def catalog_json(rows: Sequence[CatalogRow]) -> str:
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(
            {
                "name": row.name,
                "path": row.path,
                "environments": list(row.environments),
                "importedBy": list(row.imported_by),
                "purpose": row.purpose,
                "owner": row.owner,
                "schedule": row.schedule,
                "usedBy": list(row.used_by),
                "rotator": row.rotator,
                "lastRotated": None if row.last_rotated is None else row.last_rotated.isoformat(),
                "nextDue": None if row.next_due is None else row.next_due.isoformat(),
            }
        )
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def catalog_rows(service: Service, env: EnvRef | None) -> list[CatalogRow]:
    from strongroom.rotation.catalog import collapse, importers, read_catalog

    return collapse(read_catalog(service, env), importers(service))


@click.group()
def catalog() -> None:
    """The rotation catalog: every secret with its purpose, schedule and due date."""


@catalog.command("ls")
@click.argument("env", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@click.pass_context
def catalog_ls(ctx: click.Context, env: str | None, fmt: str) -> None:
    """List catalogued secrets (of ENV, or of every environment); one row per path across environments."""
    rows = catalog_rows(_service(ctx), None if env is None else EnvRef.parse(env))
    if fmt == "json":
        click.echo(catalog_json(rows), nl=False)
    elif fmt == "markdown":
        click.echo(catalog_markdown(rows), nl=False)
    elif not rows:
        click.echo("no catalogued secrets; add a rotation: block to an environment (docs/rotation.md)")
    else:
        from strongroom.cli.tables import print_table

        print_table(HEADERS, [_cells(r) for r in rows])
