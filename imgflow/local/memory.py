"""Handing freed heap memory back to the system (glibc's `malloc_trim`).

A shard layout frees many short-lived buffers (a row group's columns, a metadata table's,
images staged between two flushes) in the middle of the heap, where glibc's `free` keeps
them: the process's RSS then stays at its high-water mark. `release()` returns the free
pages (`malloc_trim(0)`: `madvise(MADV_DONTNEED)` on free chunks of every arena); a no-op
where the C library is not glibc. It costs a walk of the free chunks (well under a
millisecond for a heap of tens of MB) and the pages it returns fault in again when used:
callers use it once per metadata table (a shard) and once per 32 MB of a Parquet shard,
not per row group (that cost 14% of a parquet run's CPU) nor per image.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from imgflow.local.libc import libc


@functools.cache
def _trim() -> Callable[[int], int] | None:
    trim: Callable[[int], int] | None = getattr(libc(), "malloc_trim", None)
    return trim  # None: not glibc (musl, macOS, Windows)


def release() -> bool:
    """Return the heap's free pages to the system; False where that is not possible."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
