"""Storage: untrusted, sees only ciphertext. A Protocol and its backends.

Backends are chosen by URL through :func:`open_store`; nothing heavy is imported
until a backend is actually opened.
"""

from __future__ import annotations

__all__ = ["Store", "open_store"]

from strongroom.storage.base import Store, open_store
