"""SIGTERM and SIGINT on the command line: one line and exit 130, at any moment.

Before a command starts working and after it has reported, a signal ends the process at
once (`exit_now`: there is nothing to save). While it works, the first signal unwinds it
as KeyboardInterrupt (`unwind`), so a run saves what it finished; later signals are
ignored, so the saving is not cut short. The local runner's event loop handles both
signals itself (imgflow/local/runner.py).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

Handler = Callable[[int, FrameType | None], None]


def exit_now(signum: int, frame: FrameType | None) -> None:
    """End the process with the one line and exit 130."""
    os.write(2, b"imgflow: error: interrupted\n")
    os._exit(130)


def unwind(signum: int, frame: FrameType | None) -> None:
    """Raise KeyboardInterrupt once; ignore the signals that follow."""
    on_signals(signal.SIG_IGN)
    raise KeyboardInterrupt


def on_signals(handler: Handler | signal.Handlers) -> None:
    """Handle SIGTERM and SIGINT with `handler` (only the main thread can)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
