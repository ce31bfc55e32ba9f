"""``env edit`` without a file: hand the definition to ``$EDITOR`` in a private temp file."""

from __future__ import annotations

__all__ = ["edit_in_editor"]

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping

from strongroom.errors import InvalidInputError, UsageError


def edit_in_editor(text: str, environ: Mapping[str, str]) -> str | None:
    """Return the edited text, or ``None`` if the editor failed. The temp file never outlives this call."""
    editor = environ.get("VISUAL") or environ.get("EDITOR")
    if not editor:
        raise UsageError("no editor: set $EDITOR, or pass the definition with -f FILE")
    folder = tempfile.mkdtemp(prefix="strongroom-edit-")
    path = os.path.join(folder, "definition.yaml")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        result = subprocess.run([*shlex.split(editor), path], check=False)  # noqa: S603
        if result.returncode != 0:
            raise UsageError(f"the editor exited with status {result.returncode}; nothing was saved")
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("the edited definition is not valid UTF-8; nothing was saved") from None
    finally:
        # Editors leave backup and swap files beside the one they edit: remove the whole folder.
        shutil.rmtree(folder, ignore_errors=True)
