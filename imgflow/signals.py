"""SIGTERM and SIGINT on the command line: one line and exit 130, at any moment.

Before a command starts working and after it has reported, a signal ends the process at
once (`exit_now`: there is nothing to save). While it works, the first signal unwinds it
as KeyboardInterrupt (`unwind`), so a run saves what it finished; later signals are
ignored, so the saving is not cut short. The local runner's event loop handles both
signals itself (imgflow/local/stopping.py).

Python runs a handler in whatever the main thread runs, which can be a weakref callback
(the import system's module locks use them) or a `__del__`, where an exception is printed
as "Exception ignored in ..." and dropped. So while unwinding, such a dropped
KeyboardInterrupt is not printed: the signal is sent again a moment later, to unwind the
command from where it is then (`_raise_again`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

Handler = Callable[[int, FrameType | None], None]

# How soon a dropped KeyboardInterrupt's signal comes again (the callback has ended by then).
AGAIN_SECONDS = 0.01
_unwinding: list[int] = []  # the signal being unwound, while its KeyboardInterrupt is raised
_previous_hook: list[Callable[[sys.UnraisableHookArgs], object]] = [sys.unraisablehook]


def exit_now(signum: int, frame: FrameType | None) -> None:
    """End the process with the one line and exit 130."""
    os.write(2, b"imgflow: error: interrupted\n")
    os._exit(130)


def unwind(signum: int, frame: FrameType | None) -> None:
    """Raise KeyboardInterrupt once; ignore the signals that follow."""
    on_signals(signal.SIG_IGN)
    if sys.unraisablehook is not _take_back:
        _previous_hook[:] = [sys.unraisablehook]
        sys.unraisablehook = _take_back
    _unwinding[:] = [signum]
    raise KeyboardInterrupt


def unwinding() -> bool:
    """Whether `unwind` has raised its KeyboardInterrupt (and the command still unwinds)."""
    return bool(_unwinding)


def _take_back(unraisable: sys.UnraisableHookArgs) -> None:
    """Take back a KeyboardInterrupt `unwind` raised where Python drops exceptions; hand
    everything else to the hook there was before."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _unwinding:
        signum, delay = _unwinding[0], AGAIN_SECONDS
        while True:
            try:
                _raise_again(signum, delay)
                return
            except KeyboardInterrupt:
                # The signal sent again came while this hook still ran (a loaded machine
                # can keep it here longer than the delay): raised in here, it would be
                # dropped too, and the command would end as if never signalled. Again,
                # later.
                delay = max(2 * delay, 0.01)
    else:
        _previous_hook[0](unraisable)


def _raise_again(signum: int, delay: float) -> None:
    """Handle `signum` with `unwind` again and send it `delay` seconds later, once the
    dropping place is left. The timer is not a daemon: a command that ends sooner waits for
    it at exit, so the signal still ends it (by then with `exit_now`)."""
    on_signals(unwind)
    threading.Timer(delay, os.kill, (os.getpid(), signum)).start()


def on_signals(handler: Handler | signal.Handlers) -> None:
    """Handle SIGTERM and SIGINT with `handler` (only the main thread can)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if handler is not signal.SIG_IGN:  # no KeyboardInterrupt of `unwind` is on its way
        _unwinding.clear()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
