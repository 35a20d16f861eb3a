"""Stopping a run: SIGINT, SIGTERM or an event set from another thread cancel its task."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


class Stopper:
    """Cancels the task it watches from (first stop only), after calling `on_stop`.

    Signals are heard only in the main thread; `event` (polled) may be set from any thread.
    """

    def __init__(self, on_stop: Callable[[], None], event: threading.Event | None) -> None:
        self.on_stop = on_stop
        self.event = event
        self.stopped = False

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Watch for a stop while the block runs in the current task; restore signals after.

        Once stopped, a second signal is ignored until the run's owner restores it: the run
        is ending and must not be cut short.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        if task is not None and in_main:
            for signum in previous:
                loop.add_signal_handler(signum, self.stop, task)
        watcher = None
        if task is not None and self.event is not None:
            watcher = asyncio.create_task(self._stop_on_event(self.event, task))
        try:
            yield
        finally:
            if task is not None and in_main:
                for signum in previous:
                    loop.remove_signal_handler(signum)
                if self.stopped:
                    previous = dict.fromkeys(previous, signal.SIG_IGN)
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
            if watcher is not None:
                watcher.cancel()

    async def _stop_on_event(self, event: threading.Event, task: asyncio.Task[None]) -> None:
        """Stop like a signal once `event` is set (polled: it is set from another thread)."""
        while not event.is_set():
            await asyncio.sleep(0.1)
        self.stop(task)

    def stop(self, task: asyncio.Task[None]) -> None:
        """A signal: call `on_stop`, cancel `task` (the first time only)."""
        if not self.stopped:
            self.stopped = True
            self.on_stop()
            task.cancel()
