"""The event loop a run's fetching turns on: uvloop's (libuv) where it is installed.

uvloop runs the same asyncio code with its loop, its sockets' transports and its timers in C;
on the bench's small images it takes a part of each image's cost that asyncio's own loop spends
in Python (docs/architecture.md, "The event loop"). Where it is not installed (a platform
without its wheels) asyncio's own loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop's loop when it is installed."""
    runner = asyncio.Runner(loop_factory=_factory())
    try:
        return runner.run(main)
    finally:
        _close(runner)


def _close(runner: asyncio.Runner) -> None:
    """Close the runner. A signal's KeyboardInterrupt raised while it shuts the loop down
    (imgflow/signals.py) leaves uvloop's loop marked running, and closing it then fails
    with RuntimeError: the interrupt is what happened, and it is raised as such."""
    try:
        runner.close()
    except RuntimeError as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise exc.__context__ from None
        raise
