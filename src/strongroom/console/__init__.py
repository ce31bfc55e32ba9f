"""The web console: browse, edit, compare, roll back, rotate and audit from a browser (``strongroom serve`` at ``/``).

Server-rendered Jinja2 pages over the same :class:`~strongroom.service.Service` and roles as
the API, one service per request acting as the signed-in token's principal. Loaded only by
:func:`strongroom.server.app.create_app`, never by the CLI. See ``docs/console/console.md``.
"""

from __future__ import annotations

__all__ = ["mount_console"]

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from strongroom.server.config import ServerConfig


def mount_console(app: FastAPI, config: ServerConfig) -> None:
    """Add the console's routes to ``app`` (unless ``STRONGROOM_CONSOLE=off``); a bad setting fails the start."""
    from strongroom.console.routes import console_router, console_settings

    console = console_settings(config.environ)
    if console is None:
        return
    app.state.strongroom_console = console
    app.include_router(console_router())
