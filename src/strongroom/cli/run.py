"""``strongroom run ENV -- CMD ARGS...``: run a command inside an environment."""

from __future__ import annotations

__all__ = ["run_command"]

from typing import Any

import click

from strongroom.errors import UsageError
from strongroom.model import RevisionRef


def run_command(service: Any, name: str, command: list[str], *, interactive: bool) -> int:
    """Open NAME (locally or on the server), then run COMMAND with its variables and files."""
    from strongroom.runner import RunPlan, run

    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command to run", hint="put it after --, e.g. strongroom run ENV -- env")
    data = service.run_plan(RevisionRef.parse(name), list(command[1:]))
    for diag in data.diagnostics:
        click.echo(f"{diag.severity}: {diag}", err=True)
    plan = RunPlan(
        argv=[command[0], *data.args],
        variables=data.variables,
        files={k: v.encode("utf-8") for k, v in data.files.items()},
        secrets=data.secrets,
        mask=not interactive,
    )
    return run(plan)
