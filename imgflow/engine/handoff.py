"""Store calls run in worker threads, their completions carried back to the loop in groups.

`loop.run_in_executor` wakes the loop once per call (a callback, a write to its self-pipe,
a second future). With many images committing at once (64 in flight, fsync on) the loop
is woken by one completion while others are landing: here a completion that finds others
still waiting for the loop joins them, and one wake-up settles the whole group.
A cancelled wait cancels the call if it has not started, as `run_in_executor` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

_Done = tuple["asyncio.Future[Any]", BaseException | None, Any]


class Handoff:
    """Runs calls in an executor for one event loop, settling their futures in groups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._done: deque[_Done] = deque()
        self.wakeups = 0  # times the loop was woken to settle completions

    async def run(self, executor: Executor, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)` in `executor`; its result, or its exception raised here."""
        future: asyncio.Future[Any] = self._loop.create_future()
        submitted = executor.submit(self._call, future, call, args)
        try:
            return await future
        except asyncio.CancelledError:
            submitted.cancel()  # not started: it never runs
            raise

    def submit(
        self, executor: Executor, future: asyncio.Future[Any], call: Callable[..., Any], *args: Any
    ) -> None:
        """`call(*args)` in `executor`, settling `future` (of this loop) with its result or
        its exception, in a group with the other completions; nothing here waits for it."""
        executor.submit(self._call, future, call, args)

    def waiting(self) -> int:
        """Completions not yet settled on the loop."""
        with self._lock:
            return len(self._done)

    def _call(self, future: asyncio.Future[Any], call: Callable[..., Any], args: Any) -> None:
        try:
            done: _Done = (future, None, call(*args))
        except BaseException as exc:  # carried to the awaiting task, as run_in_executor does
            done = (future, exc, None)
        with self._lock:
            wake = not self._done  # otherwise a wake-up is already on its way
            self._done.append(done)
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        self.wakeups += 1
        with self._lock:
            done, self._done = self._done, deque()
        for future, exc, value in done:
            if future.done():  # cancelled meanwhile
                continue
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)


_handoffs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Handoff] = (
    weakref.WeakKeyDictionary()
)


def handoff() -> Handoff:
    """The running loop's Handoff."""
    loop = asyncio.get_running_loop()
    found = _handoffs.get(loop)
    if found is None:
        found = _handoffs[loop] = Handoff(loop)
    return found
