"""The command line's two consoles and the lines it writes to stderr."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

out = Console(highlight=False, soft_wrap=False)
if not out.is_terminal:
    out.width = max(out.width, 160)
# Messages never wrap: a path or URL split over two lines breaks copy-paste and grep.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    """``imgflow: error: <message>``, flushed at once."""
    err.print(f"[bold red]imgflow: error:[/] {escape(message)}")
    err.file.flush()


def warn(message: str) -> None:
    """``imgflow: warning: <message>`` (about the command's input)."""
    err.print(f"[bold yellow]imgflow: warning:[/] {escape(message)}")


def warning(message: str) -> None:
    """``warning: <message>`` (about how the work is done)."""
    err.print(f"[yellow]warning:[/] {message}")


def say(line: str) -> None:
    """``imgflow: <line>``: what the command waits for."""
    err.print(f"imgflow: {line}", markup=False)


def note(line: str) -> None:
    """A line about the work on stderr."""
    err.print(line)
