"""The event loop a run's fetching turns on: uvloop's (libuv) where it is installed.

uvloop runs the same asyncio code with its loop, its sockets' transports and its timers in C;
on the bench's small images it takes a part of each image's cost that asyncio's own loop spends
in Python (docs/architecture.md, "The event loop"). Where it is not installed (a platform
without its wheels) asyncio's own loop runs the same code.

A signal whose handler raises (the command line's, imgflow/signals.py) is held while the loop
is made, runs and is closed: raised inside the loop's own code (uvloop's run closes a socket
pair in Python after `main` returns), KeyboardInterrupt leaves the loop marked running for
good, and it can be neither run nor closed. Held, the first signal cancels `main` on the loop
(its cleanup runs there), and once the loop is closed the handler gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop's loop when it is installed; signals held (above)."""
    held = _Held()
    watched = held.watched(main)
    with held.installed():
        runner = asyncio.Runner(loop_factory=_factory())
        try:
            return runner.run(watched)
        finally:
            runner.close()
            for coroutine in (watched, main):  # never started: no "never awaited" warning
                if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
                    coroutine.close()


class _Held:
    """SIGINT and SIGTERM while a loop runs `main`: the first cancels it; the handler that
    was there gets it once the loop is closed (later ones: that one is on its way)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal held
        self.task: asyncio.Task[Any] | None = None  # the task running `main`, once it runs

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Hold the signals whose handler is Python's (only the main thread sets them)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {s: signal.getsignal(s) for s in SIGNALS}
        mine = [s for s, handler in previous.items() if callable(handler)]
        for signum in mine:
            signal.signal(signum, self._hold)
        try:
            yield
        finally:
            for signum in mine:  # (a run's own watch may have left them ignored: kept)
                if signal.getsignal(signum) == self._hold:
                    signal.signal(signum, previous[signum])
            if self.signum is not None:
                previous[self.signum](self.signum, None)

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        if self.task is not None:
            with contextlib.suppress(RuntimeError):  # (the loop is closed by now)
                self.task.get_loop().call_soon_threadsafe(self.task.cancel)

    async def watched(self, main: Coroutine[Any, Any, T]) -> T:
        self.task = asyncio.current_task()
        if self.signum is not None:  # held before `main` started: it never does (`run` closes it)
            raise asyncio.CancelledError
        return await main
