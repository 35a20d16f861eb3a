"""A backend's run followed on stderr (a live bar on a terminal), then shown."""

from __future__ import annotations

from collections.abc import Callable

from imgflow.backends.base import Backend, Detached, Listener, RunView
from imgflow.cli.options import Output
from imgflow.ui.console import err, note, out, say, warning
from imgflow.ui.run import show_run

Outcome = RunView | Detached | None


def follow(backend: Backend, act: Callable[[Listener], Outcome]) -> Outcome:
    """`act` on `backend`, its lines on stderr, with a live progress bar on a terminal."""
    if not err.is_terminal:
        return act(Listener(note, warning, say))
    from imgflow.ui.progress import live_progress  # (rich's progress: on a terminal only)

    with live_progress(backend.name, err) as progress:
        return act(Listener(note, warning, say, progress))


def shown(outcome: Outcome, output: Output, all_rows: bool = False) -> int:
    """Show what a run came to; its exit code (0 when nothing ran or it was not followed)."""
    if outcome is None:
        return 0
    if isinstance(outcome, Detached):
        out.print(outcome.id)
        return 0
    show_run(outcome, output is Output.json, all_rows)
    return 0 if outcome.ok else 1
