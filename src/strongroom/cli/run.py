"""``strongroom run ENV -- CMD ARGS...``: run a command inside an environment."""

from __future__ import annotations

__all__ = ["run_command"]

import json
from typing import Any

import click

from strongroom.errors import DefinitionError, UsageError
from strongroom.model import RevisionRef


def _interpolate_args(service: Any, ref: RevisionRef, env_name: str, args: list[str]) -> list[str]:
    """Resolve ``${...}`` in ARGS against the environment (``$$`` is a literal ``$``)."""
    if not any("${" in a or "$$" in a for a in args):
        return args
    from strongroom.language import compile_definition
    from strongroom.model import EnvRef

    pinned = f"{ref.env}@{ref.selector}" if ref.selector is not None else str(ref.env)
    text = json.dumps({"imports": [pinned], "values": {"__strongroom_args": args}})
    compiled = compile_definition(text, env_name)
    evaluation = service._evaluate(EnvRef.parse(env_name), compiled, reveal=True)
    errors = [d for d in (*compiled.diagnostics, *evaluation.diagnostics) if d.is_error]
    if errors:
        raise DefinitionError(
            f"cannot interpolate the command's arguments: {errors[0].summary}",
            hint="check the ${...} references in the arguments; write $$ for a literal $",
        )
    resolved = evaluation.value.get("__strongroom_args")
    assert resolved is not None and isinstance(resolved.value, list)
    out = []
    for item in resolved.value:
        value = item.value
        out.append(value if isinstance(value, str) else json.dumps(value))
    return out


def _secret_texts(value: Any) -> list[str]:
    """Every secret leaf's plaintext in an evaluated value."""
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
            found.append(node.value if isinstance(node.value, str) else json.dumps(node.value))
    return found


def run_command(service: Any, name: str, command: list[str], *, interactive: bool) -> int:
    from strongroom.language import project_environment_variables, project_files
    from strongroom.runner import RunPlan, run

    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command to run", hint="put it after --, e.g. strongroom run ENV -- env")
    ref = RevisionRef.parse(name)
    _value, ev = service.open(ref)
    variables = project_environment_variables(ev)
    files = project_files(ev)
    for diag in (*variables.diagnostics, *files.diagnostics):
        click.echo(f"{diag.severity}: {diag.to_diagnostic()}", err=True)
    # The arguments are evaluated as a tiny environment that imports ENV (a name no user environment has).
    argv = [command[0], *_interpolate_args(service, ref, f"{ref.env.project}/.run-arguments", command[1:])]
    plan = RunPlan(
        argv=argv,
        variables={k: p.text for k, p in variables.items() if p.text is not None},
        files={k: p.text.encode("utf-8") for k, p in files.items() if p.text is not None},
        secrets=_secret_texts(ev.value),
        mask=not interactive,
    )
    return run(plan)
