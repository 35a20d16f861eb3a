"""Requests in flight sized to the file descriptors the process may open (RLIMIT_NOFILE).

Each request in flight holds a connection and, while its body is written, a part file; the
rest of a run (the index and its WAL, the data folder's folders, the lock, DNS, the
terminal) needs a few dozen more. The soft limit is raised to the hard one where the
system allows (as servers do); when even that is too low for the requests asked, fewer are
sent at once and the caller warns, once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable
from typing import TypeVar

PER_REQUEST = 2  # its connection and its part file
RESERVE = 64  # the index, its WAL, folders, the lock, DNS, the terminal
# Opening a file or a connection that meets EMFILE/ENFILE waits for another to close.
FULL_ERRNOS = (errno.EMFILE, errno.ENFILE)
WAIT_SECONDS = 30.0

T = TypeVar("T")


def soft_limit() -> int | None:
    """RLIMIT_NOFILE's soft limit, raised to the hard one when allowed; None if unlimited."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return None if soft == resource.RLIM_INFINITY else soft


def _open_now() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def fit(wanted: int) -> tuple[int, str]:
    """(requests in flight that fit the descriptor limit, the warning when fewer than
    `wanted`; empty when all fit)."""
    limit = soft_limit()
    if limit is None:
        return wanted, ""
    allowed = max(1, (limit - _open_now() - RESERVE) // PER_REQUEST)
    if wanted <= allowed:
        return wanted, ""
    return allowed, (
        f"only {limit} file descriptors may be open (ulimit -n): {allowed} requests in"
        f" flight instead of {wanted}; raise the limit for more"
    )


def waiting_for_descriptors(call: Callable[[], T], seconds: float = WAIT_SECONDS) -> T:
    """`call()`, tried again while it fails for want of a file descriptor (EMFILE,
    ENFILE), for about `seconds`: others close theirs as their requests finish."""
    deadline = time.monotonic() + seconds
    pause = 0.005
    while True:
        try:
            return call()
        except OSError as exc:
            if exc.errno not in FULL_ERRNOS or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.2)
