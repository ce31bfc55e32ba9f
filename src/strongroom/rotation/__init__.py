"""Secret rotation: the catalog of rotation metadata, due dates and reminders.

The engine and rotators come later; this package holds only what they will read.
"""

from __future__ import annotations

__all__: list[str] = []
