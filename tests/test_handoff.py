"""Store calls in worker threads: results, errors and cancels as with run_in_executor, and
completions that land while the loop is busy settled by one wake-up (engine/handoff.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from imgflow.engine import loop as engine_loop
from imgflow.engine.handoff import handoff


def test_completions_landing_while_the_loop_is_busy_are_settled_by_one_wake_up() -> None:
    finished = threading.Barrier(4)

    def call(n: int) -> int:
        finished.wait(timeout=5)  # all three complete together, while the loop is blocked
        return n * 10

    async def main() -> tuple[list[int], int]:
        with ThreadPoolExecutor(3) as pool:
            tasks = [asyncio.ensure_future(handoff().run(pool, call, n)) for n in range(3)]
            await asyncio.sleep(0)  # every call submitted
            finished.wait(timeout=5)
            deadline = time.monotonic() + 10  # the loop stays busy until all three landed
            while handoff().waiting() < 3 and time.monotonic() < deadline:
                time.sleep(0.001)
            results = await asyncio.gather(*tasks)
            return list(results), handoff().wakeups

    results, wakeups = engine_loop.run(main())
    assert results == [0, 10, 20]
    assert wakeups == 1


def test_an_error_in_the_thread_is_raised_to_the_waiting_task() -> None:
    def fails() -> None:
        raise OSError(28, "No space left on device")

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            await handoff().run(pool, fails)

    with pytest.raises(OSError, match="No space left"):
        engine_loop.run(main())


def test_a_wait_cancelled_before_its_call_starts_never_runs_it() -> None:
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            busy = asyncio.ensure_future(handoff().run(pool, release.wait, 5))
            queued = asyncio.ensure_future(handoff().run(pool, ran.append, "queued"))
            await asyncio.sleep(0)
            queued.cancel()  # its call waits behind `busy` in the one thread
            with pytest.raises(asyncio.CancelledError):
                await queued
            release.set()
            await busy

    engine_loop.run(main())
    assert ran == []
