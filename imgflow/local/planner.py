"""Planning a source's items into the index in a thread of its own, while the run fetches."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgflow.engine.plan import Item
from imgflow.local.index import Database, sqlite_errors
from imgflow.local.index.results import FIRST_CHUNK

STOP_WAIT = 2.0  # how long an ending run waits for its planner thread to stop
# The planner pauses after its first chunk until the first image is done (at most this
# long), so the run's start is not slowed by reading the rest (they share one GIL).
FIRST_WAIT = 1.0


class Planner:
    """Plans a source's items into the index in a thread of its own (its own connection),
    chunk by chunk, so the run fetches the first items while the rest is still read.

    `read` counts the items read so far (for the progress line). A planner stopped before
    the end of its items leaves the run unplanned (no total): a retry reads the source
    again for the items it never planned."""

    def __init__(self, path: Path, run_id: str, items: Iterable[Item]) -> None:
        self.done = threading.Event()
        self.fetching = threading.Event()  # set by the run once its first image is done
        self.duplicates = 0
        self.read = 0
        self._cut = False  # stopped before the end of the items
        self._halt = threading.Event()
        self._total = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._plan, args=(path, run_id, items), name="imgflow-plan", daemon=True
        )
        self._thread.start()

    def _plan(self, path: Path, run_id: str, items: Iterable[Item]) -> None:
        try:
            db = Database(path)
            try:
                with sqlite_errors(db.path):
                    self._total, self.duplicates = db.plan(
                        run_id, self._until_halted(items), whole=lambda: not self._cut
                    )
            finally:
                db.close()
        except BaseException as exc:  # handed to the fetching side, raised there
            self._error = exc
        finally:
            self.done.set()

    def _until_halted(self, items: Iterable[Item]) -> Iterator[Item]:
        halt = self._halt
        for n, item in enumerate(items):
            if n == FIRST_CHUNK:  # the first chunk is in the index: let the run start
                self.fetching.wait(FIRST_WAIT)
            if halt.is_set():
                self._cut = True
                return
            self.read = n + 1
            yield item

    def result(self) -> int:
        """The planned total (unique items), or the error that stopped the planning."""
        self.done.wait()
        if self._error is not None:
            raise self._error
        return self._total

    def stop(self) -> None:
        """Stop reading (a run that ends early) and wait a moment for the thread (one
        blocked on a pipe's next line is a daemon: it ends with the process)."""
        self._halt.set()
        self._thread.join(STOP_WAIT)
