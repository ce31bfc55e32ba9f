"""Environment pages: the list, one environment (definition, values, imports), reveal, mark as secret, edit."""

from __future__ import annotations

__all__ = [
    "PAGE_SIZE",
    "edit_form",
    "edit_submit",
    "environment_list",
    "environment_view",
    "mark_secret",
    "mask_definition",
    "reveal",
]

import difflib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import RedirectResponse, Response

from strongroom.console.web import Ctx, FormError
from strongroom.errors import ConflictError, DefinitionError, Diagnostic, InvalidInputError
from strongroom.model import EnvRef, RevisionRef

if TYPE_CHECKING:
    from strongroom.language import EvalValue

#: Environments on one page of the list.
PAGE_SIZE = 100
_CIPHERTEXT = re.compile(r"""(\bciphertext["']?\s*:\s*)(["']?)[A-Za-z0-9+/=_-]{8,}\2""")


def mask_definition(text: str) -> str:
    """A stored definition for display: each ciphertext shown as ``[secret]``."""
    return _CIPHERTEXT.sub(r"\1[secret]", text)


def env_ref(project: str, name: str) -> EnvRef:
    return EnvRef.parse(f"{project}/{name}")


@dataclass(frozen=True, slots=True)
class Leaf:
    """One evaluated leaf for the values table."""

    path: str
    shown: str
    secret: bool
    where: str
    local: bool
    kind: str


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def leaves(value: EvalValue, env: str) -> list[Leaf]:
    """The leaves of an evaluated value in document order, secrets masked, with where each is defined."""
    from strongroom.language import format_path

    out: list[Leaf] = []

    def walk(node: EvalValue, path: tuple[str | int, ...], inherited: bool) -> None:
        secret = node.secret or inherited
        if isinstance(node.value, dict) and node.value:
            for key, child in node.value.items():
                walk(child, (*path, key), secret)
            return
        if isinstance(node.value, list) and node.value:
            for i, child in enumerate(node.value):
                walk(child, (*path, i), secret)
            return
        if secret:
            shown = "[secret]"
        elif node.unknown:
            shown = "[unknown]"
        elif isinstance(node.value, dict | list):
            shown = "{}" if isinstance(node.value, dict) else "[]"
        else:
            shown = _text(node.value)
        kind = "string" if isinstance(node.value, str) else type(node.value).__name__
        out.append(Leaf(format_path(path), shown, secret, node.where, (node.env or "") == env, kind))

    walk(value, (), False)
    return out


def environment_list(ctx: Ctx) -> Response:
    """GET /environments?q=&project=&after=: a page of environments, searchable, by project."""
    q = ctx.query.get("q", "").strip()
    project = ctx.query.get("project", "").strip()
    after = ctx.query.get("after", "").strip()
    records = ctx.service.list_environments()
    projects = sorted({r.ref.project for r in records})
    needle = q.lower()
    matching = [
        r for r in records if (not project or r.ref.project == project) and (not needle or needle in str(r.ref).lower())
    ]
    start = 0
    if after:
        start = next((i for i, r in enumerate(matching) if str(r.ref) > after), len(matching))
    shown = matching[start : start + PAGE_SIZE]
    more = start + PAGE_SIZE < len(matching)
    return ctx.render(
        "environments.html",
        rows=shown,
        total=len(matching),
        first=start + 1,
        q=q,
        project=project,
        projects=projects,
        next_after=str(shown[-1].ref) if more and shown else None,
        paged=bool(after),
    )


def _imports(compiled_json: str, definition: str, env: str) -> list[str]:
    from strongroom.language import Compiled, compile_definition

    try:
        compiled = Compiled.from_json(compiled_json)
    except (ValueError, KeyError, TypeError):
        compiled = compile_definition(definition, env)
    return [i.name for i in compiled.imports]


def _selector(ctx: Ctx, ref: EnvRef) -> RevisionRef:
    rev = ctx.query.get("rev", "").strip() or ctx.form.get("rev", "").strip()
    return RevisionRef.parse(f"{ref}@{rev}") if rev else RevisionRef(ref)


def environment_view(ctx: Ctx, project: str, name: str) -> Response:
    """GET /environments/{project}/{name}: definition (masked), values with where they are defined, imports."""
    ref = env_ref(project, name)
    target = _selector(ctx, ref)
    record = ctx.service.definition(target)
    value, evaluation = ctx.service.read_value(RevisionRef(ref, record.number))
    latest = ctx.service.store.get_environment(ref).latest_revision
    return ctx.render(
        "environment.html",
        env=ref,
        revision=record,
        latest=latest,
        definition=mask_definition(record.definition),
        leaves=leaves(value, str(ref)),
        imports=_imports(record.compiled, record.definition, str(ref)),
        diagnostics=[d.to_diagnostic() for d in evaluation.diagnostics],
        tags=[t for t in ctx.service.list_tags(ref) if t.revision == record.number],
        message=ctx.query.get("message", ""),
    )


def reveal(ctx: Ctx, project: str, name: str) -> Response:
    """POST /environments/{project}/{name}/reveal (path, rev): one secret's value, audited as a decrypt."""
    from strongroom.language import parse_path

    ref = env_ref(project, name)
    path_text = ctx.field("path")
    target = _selector(ctx, ref)
    value, _ev = ctx.service.read_value(target, parse_path(path_text), show_secrets=True)
    if isinstance(value.value, dict | list):
        raise InvalidInputError(f"{path_text} is not a single value", hint="reveal its values one by one")
    shown = "[unknown]" if value.unknown else _text(value.value)
    if ctx.fragment_wanted():
        return ctx.render("reveal_fragment.html", value=shown, path_text=path_text)
    return ctx.render("reveal.html", env=ref, value=shown, path_text=path_text, rev=target.selector)


def mark_secret(ctx: Ctx, project: str, name: str) -> Response:
    """POST /environments/{project}/{name}/mark-secret (path): encrypt a plaintext string this environment defines."""
    from strongroom.definition import parse_definition
    from strongroom.language import format_path, parse_path

    ref = env_ref(project, name)
    path = parse_path(ctx.field("path"))
    current = ctx.service.definition(RevisionRef(ref))
    node = parse_definition(current.definition, str(ref)).get(path)
    if not isinstance(node, str) or "${" in node:
        raise InvalidInputError(
            f"{format_path(path)} is not a plain string written in {ref}",
            hint="only a literal string value of this environment can be marked as secret",
        )
    rev = ctx.service.set_value(ref, path, str(node), secret=True)
    return _back(ref, f"{format_path(path)} is now a secret (revision {rev.number})")


def _back(ref: EnvRef, message: str, page: str = "") -> Response:
    from urllib.parse import quote

    return RedirectResponse(f"/environments/{ref.project}/{ref.name}{page}?message={quote(message)}", status_code=303)


def edit_form(ctx: Ctx, project: str, name: str) -> Response:
    """GET /environments/{project}/{name}/edit: the definition in a text editor, with the revision it is based on."""
    ref = env_ref(project, name)
    ctx.require("write", ref)
    record = ctx.service.definition(RevisionRef(ref))
    return ctx.render(
        "edit.html", env=ref, text=record.definition, base=record.number, diagnostics=[], conflict=None, checked=False
    )


def _diagnostics_of(ctx: Ctx, ref: EnvRef, text: str) -> list[Diagnostic]:
    compiled, evaluation = ctx.service.check(ref, text)
    found = [d.to_diagnostic() for d in compiled.diagnostics]
    if evaluation is not None:
        found.extend(d.to_diagnostic() for d in evaluation.diagnostics)
    return sorted(found, key=lambda d: (d.severity != "error", d.line or 0, d.column or 0))


def _text_diff(old: str, new: str, old_label: str, new_label: str) -> list[tuple[str, str]]:
    lines = difflib.unified_diff(
        mask_definition(old).splitlines(), mask_definition(new).splitlines(), old_label, new_label, lineterm=""
    )
    out = []
    for line in lines:
        kind = (
            "add"
            if line.startswith("+") and not line.startswith("+++")
            else ("del" if line.startswith("-") and not line.startswith("---") else "ctx")
        )
        out.append((kind, line))
    return out


def edit_submit(ctx: Ctx, project: str, name: str) -> Response:
    """POST /environments/{project}/{name}/edit (definition, base, action=check|save)."""
    ref = env_ref(project, name)
    text = ctx.form.get("definition", "").replace("\r\n", "\n")
    base_text = ctx.field("base")
    if not base_text.isdigit() or int(base_text) < 1:
        raise FormError("the form's base revision is not a revision number", hint="reload the editor")
    base = int(base_text)
    action = ctx.form.get("action", "save")
    if action == "check":
        diagnostics = _diagnostics_of(ctx, ref, text)
        return ctx.render(
            "edit.html", env=ref, text=text, base=base, diagnostics=diagnostics, conflict=None, checked=True
        )
    try:
        rev = ctx.service.replace_definition(ref, text, expected_latest=base)
    except DefinitionError as exc:
        return ctx.render(
            "edit.html",
            status=400,
            env=ref,
            text=text,
            base=base,
            diagnostics=list(exc.diagnostics),
            conflict=None,
            checked=True,
        )
    except ConflictError:
        latest = ctx.service.definition(RevisionRef(ref))
        conflict = {
            "number": latest.number,
            "author": latest.author,
            "at": latest.created_at,
            "base": base,
            "diff": _text_diff(latest.definition, text, f"revision {latest.number}", "your text"),
        }
        return ctx.render(
            "edit.html",
            status=409,
            env=ref,
            text=text,
            base=latest.number,
            diagnostics=[],
            conflict=conflict,
            checked=False,
        )
    warnings = "; ".join(str(w) for w in rev.warnings)
    return _back(ref, f"saved revision {rev.number}" + (f" (warnings: {warnings})" if warnings else ""))
