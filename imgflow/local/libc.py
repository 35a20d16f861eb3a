"""The C library the process runs on, loaded once (its own symbols: `malloc_trim`,
`syncfs`, `fstatfs`, `prctl`), for the few calls Python's `os` does not offer."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The process's C library (errno kept for `ctypes.get_errno`); None where it cannot
    be loaded."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
