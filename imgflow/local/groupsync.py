"""Group commit: one durable flush of the file system for every file written before it.

With fsync on, the files layout's store threads each wrote a part file and fsynced it.
Here a thread whose part is written and closed joins the next flush instead: while one
flush runs, the threads that arrive wait for the following one, so one `syncfs(2)` makes a
whole group's files durable (their data and their inodes, as fsync does for one file).
A waiter returns only after a flush that *started* after it joined has returned, so a
file is never renamed into place before its bytes are on disk; a failed flush fails every
file of its group (none is renamed).

`syncfs` writes back the whole file system's dirty data, in the kernel's flusher threads
(so it is not counted as the process's CPU: see docs/architecture.md, "The cost of
durability"). It reports write-back errors only since Linux 5.8: elsewhere, or where the C
library has no `syncfs`, `syncfs_of` gives None and the store fsyncs each file as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import threading
from collections import deque
from collections.abc import Callable

_Flush = Callable[[], None]


def _kernel_reports_errors(release: str) -> bool:
    """Linux 5.8 or later (syncfs returns write-back errors since then)."""
    try:
        major, minor = (int(part) for part in release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


def _load() -> Callable[[int], int] | None:
    if platform.system() != "Linux" or not _kernel_reports_errors(platform.release()):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        call: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return call


_SYNCFS = _load()


def syncfs_of(fd: int) -> _Flush | None:
    """A flush of the file system holding `fd` (raises OSError); None where unavailable."""
    call = _SYNCFS
    if call is None:
        return None

    def flush() -> None:
        if call(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return flush


class GroupFlush:
    """`wait()` returns once a flush started after the call has returned; safe from any
    thread. One caller at a time runs the flush, for everyone waiting."""

    def __init__(self, flush: _Flush) -> None:
        self._flush = flush
        self._changed = threading.Condition(threading.Lock())
        self._joined = 0  # waiters so far (each one's ticket)
        self._covered = 0  # every ticket up to this one had its flush
        # (first ticket, last ticket) of the latest groups whose flush failed, and why.
        self._failed: deque[tuple[int, int, OSError]] = deque(maxlen=64)
        self._running = False
        self.flushes = 0  # flushes run (for tests and the bench)

    @property
    def joined(self) -> int:
        """Waits started so far."""
        with self._changed:
            return self._joined

    def wait(self) -> None:
        """Block until a flush started after this call has returned (its OSError raised)."""
        with self._changed:
            self._joined += 1
            ticket = self._joined
            while self._covered < ticket:
                if self._running:
                    self._changed.wait()
                else:
                    self._lead()
            for first, last, error in self._failed:
                if first <= ticket <= last:
                    raise OSError(error.errno, error.strerror)

    def _lead(self) -> None:
        """Run one flush for every ticket given so far (the lock held on entry and exit)."""
        self._running = True
        first, last = self._covered + 1, self._joined  # taken before the flush starts
        self._changed.release()
        error: OSError | None = None
        try:
            self._flush()
        except BaseException as exc:  # every waiter of the group must fail
            error = exc if isinstance(exc, OSError) else OSError(errno.EIO, repr(exc))
        finally:
            self._changed.acquire()
            self._running = False
            self.flushes += 1
            if error is not None:
                self._failed.append((first, last, error))
            self._covered = last
            self._changed.notify_all()
