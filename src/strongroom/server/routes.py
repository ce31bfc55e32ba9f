"""The app's routes as full path templates: for metric labels and for ``Allow`` on a 405.

Newer FastAPI keeps included routers nested (a route object does not carry its
prefix); :func:`fastapi.routing.iter_route_contexts` gives each route's full template.
Older FastAPI copies included routes with their full paths, which is used as is.
"""

from __future__ import annotations

__all__ = ["RouteTable", "route_table"]

import re
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import BaseRoute, compile_path


@dataclass(frozen=True, slots=True)
class _Entry:
    route_id: int
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str]


class RouteTable:
    """Built once from an app's routes (after every router is included), then read-only."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        entries: list[_Entry] = []
        for route_id, template, methods in _flatten(routes):
            if template:
                entries.append(_Entry(route_id, template, compile_path(template)[0], methods))
        self._entries = tuple(entries)
        self._templates = {e.route_id: e.template for e in entries}

    def template(self, route: object) -> str | None:
        """The full template of a route object (from ``scope["route"]``), if it is one of the app's."""
        return self._templates.get(id(route))

    def allowed(self, path: str) -> list[str]:
        """Every method some route serves at ``path``, sorted."""
        methods: set[str] = set()
        for entry in self._entries:
            if entry.pattern.match(path):
                methods |= entry.methods
        return sorted(methods)


def _flatten(routes: list[BaseRoute]) -> list[tuple[int, str, frozenset[str]]]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before nested routers
        return [
            (id(r), str(getattr(r, "path_format", "") or ""), frozenset(getattr(r, "methods", None) or ()))
            for r in routes
        ]
    return [
        (id(c.original_route), str(c.path_format or c.path or ""), frozenset(c.methods or ()))
        for c in iter_route_contexts(routes)
    ]


def route_table(app: Starlette) -> RouteTable:
    """The app's :class:`RouteTable`, built on first use (when every router is included) and kept on the app."""
    table = getattr(app.state, "strongroom_routes", None)
    if not isinstance(table, RouteTable):
        table = RouteTable(list(app.routes))
        app.state.strongroom_routes = table
    return table
