"""Tables for the terminal, drawn with Rich (imported only by commands that print tables)."""

from __future__ import annotations

__all__ = ["print_table", "short_time"]

from collections.abc import Iterable, Sequence


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    import sys

    # In a terminal, fit its width; in a pipe or file, never fold a cell.
    width = None if sys.stdout.isatty() else 100_000
    Console(highlight=False, soft_wrap=False, width=width).print(table)


def short_time(stamp: str) -> str:
    """``2026-11-29T02:49:10.123456Z`` as ``2026-11-29 02:49:10``."""
    return stamp[:19].replace("T", " ") if len(stamp) >= 19 else stamp
