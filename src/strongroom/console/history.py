"""History pages: revisions with author and time, a side-by-side diff of any two, rollback and tags."""

from __future__ import annotations

__all__ = ["diff_view", "history_view", "rollback", "tag_delete", "tag_set"]

import difflib
from dataclasses import dataclass

from starlette.responses import Response

from strongroom.console.environments import _back, env_ref, mask_definition
from strongroom.console.web import Ctx, FormError
from strongroom.model import RevisionRef, Secret


def history_view(ctx: Ctx, project: str, name: str) -> Response:
    """GET /environments/{project}/{name}/history."""
    ref = env_ref(project, name)
    entries = ctx.service.history(ref)
    tags = ctx.service.list_tags(ref)
    return ctx.render(
        "history.html",
        env=ref,
        entries=entries,
        tags=tags,
        latest=max((e.number for e in entries), default=0),
        message=ctx.query.get("message", ""),
    )


@dataclass(frozen=True, slots=True)
class Row:
    """One line pair of a side-by-side diff: each side's line number and text (``None``: no line there)."""

    kind: str  # equal, replace, delete, insert
    left_no: int | None
    left: str | None
    right_no: int | None
    right: str | None


def side_by_side(old: str, new: str) -> list[Row]:
    a, b = old.splitlines(), new.splitlines()
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows.extend(Row("equal", i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k]) for k in range(i2 - i1))
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            left = a[i1 + k] if i1 + k < i2 else None
            right = b[j1 + k] if j1 + k < j2 else None
            rows.append(
                Row(
                    tag,
                    i1 + k + 1 if left is not None else None,
                    left,
                    j1 + k + 1 if right is not None else None,
                    right,
                )
            )
    return rows


def _shown(value: object) -> str:
    import json

    from strongroom.cli.render import unmask

    plain = unmask(value, False)
    if isinstance(value, Secret):
        return "[secret]"
    return plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)


def _revision_number(text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise FormError(f"{what} must be a revision number", hint="pick two revisions from the history")
    return int(text)


def diff_view(ctx: Ctx, project: str, name: str) -> Response:
    """GET /environments/{project}/{name}/diff?a=&b=: two revisions side by side (secrets masked), changed values."""
    ref = env_ref(project, name)
    a = _revision_number(ctx.query.get("a", ""), "a")
    b = _revision_number(ctx.query.get("b", ""), "b")
    old = ctx.service.definition(RevisionRef(ref, a))
    new = ctx.service.definition(RevisionRef(ref, b))
    changes = ctx.service.diff(RevisionRef(ref, a), RevisionRef(ref, b))
    return ctx.render(
        "diff.html",
        env=ref,
        a=old,
        b=new,
        rows=side_by_side(mask_definition(old.definition), mask_definition(new.definition)),
        changes=[(c.path, c.kind, _shown(c.old), _shown(c.new)) for c in changes],
    )


def rollback(ctx: Ctx, project: str, name: str) -> Response:
    """POST /environments/{project}/{name}/rollback (rev): a new revision with that revision's content."""
    ref = env_ref(project, name)
    number = _revision_number(ctx.field("rev"), "rev")
    rev = ctx.service.rollback(RevisionRef(ref, number))
    return _back(ref, f"rolled back to revision {number}: revision {rev.number} written", "/history")


def tag_set(ctx: Ctx, project: str, name: str) -> Response:
    """POST /environments/{project}/{name}/tags (tag, rev)."""
    ref = env_ref(project, name)
    tag = ctx.field("tag").strip()
    number = _revision_number(ctx.field("rev"), "rev")
    ctx.service.tag(ref, tag, number)
    return _back(ref, f"tag {tag} now points at revision {number}", "/history")


def tag_delete(ctx: Ctx, project: str, name: str) -> Response:
    """POST /environments/{project}/{name}/tags/delete (tag)."""
    ref = env_ref(project, name)
    tag = ctx.field("tag").strip()
    ctx.service.untag(ref, tag)
    return _back(ref, f"tag {tag} removed", "/history")
