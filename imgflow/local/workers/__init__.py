"""A local run on several processes (`--workers N`): one coordinator, N workers.

The coordinator (coordinator.py, in the run's own process) owns the index, the claims of
batches and every host's politeness gate; each worker (worker.py, a process of its own
with its own event loop) fetches and stores the batches it claims and asks the
coordinator for a permit before each request (permits.py). wire.py frames the messages.
"""

from __future__ import annotations

import os

MOST_WORKERS = 64
AUTO_MOST = 8


def auto_workers() -> int:
    """One worker per core this process may use, at most AUTO_MOST."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(AUTO_MOST, cores))


def worker_count(value: int | str) -> int:
    """`value` (an integer or ``auto``) as a number of workers; ValueError when it is not
    1 to MOST_WORKERS or auto."""
    if value == "auto":
        return auto_workers()
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"must be 1 to {MOST_WORKERS}, or auto, got {value!r}") from None
    if not 1 <= value <= MOST_WORKERS:
        raise ValueError(f"must be 1 to {MOST_WORKERS}, or auto, got {value}")
    return value
