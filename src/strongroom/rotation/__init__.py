"""Secret rotation: the catalog of rotation metadata, due dates, reminders, the crash-safe
engine and its rotators (``random`` and ``manual`` built in; plug-ins by entry point)."""

from __future__ import annotations

__all__: list[str] = []
