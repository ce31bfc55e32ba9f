"""The ``strongroom`` command line. ``main`` maps every Strongroom error to an exit code."""

from __future__ import annotations

__all__ = ["main"]

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``strongroom`` console script and ``python -m strongroom``."""
    from strongroom.cli.app import cli

    try:
        cli.main(args=argv, prog_name="strongroom", standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug, not a user's mistake: say so without a traceback
        if os.environ.get("STRONGROOM_DEBUG") == "1":
            raise
        sys.stderr.write(
            f"internal error ({type(exc).__name__}); this is a bug in Strongroom. "
            "Re-run with STRONGROOM_DEBUG=1 to see the traceback when reporting it.\n"
        )
        sys.exit(70)
