"""The event loop a run's fetching turns on: uvloop's (libuv) where it is installed.

uvloop runs the same asyncio code with its loop, its sockets' transports and its timers in C;
on the bench's small images it takes a part of each image's cost that asyncio's own loop spends
in Python (docs/architecture.md, "The map today"). Where it is not installed (an aws Lambda
package built without it, a platform without its wheels) asyncio's own loop runs the same code.
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
    with asyncio.Runner(loop_factory=_factory()) as runner:
        return runner.run(main)
