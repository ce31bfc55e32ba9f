"""Strongroom's HTTP server: the ESC-compatible API, administration routes, probes and metrics.

Build the app with :func:`strongroom.server.app.create_app`; run it with ``strongroom
serve``. Nothing is imported here, so importing the package costs nothing (the CLI
imports FastAPI and uvicorn only when it serves). See ``docs/server.md``.
"""

from __future__ import annotations

__all__: list[str] = []
