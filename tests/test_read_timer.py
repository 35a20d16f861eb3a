"""The read timeout of a connection's waits: one timer per connection, re-armed, that ends
each wait at its own deadline, never at an earlier wait's (engine/transport/connection.py)."""

from __future__ import annotations

import asyncio

from imgflow.engine import loop as engine_loop
from imgflow.engine.transport.connection import Connection

TIMEOUT = 0.5  # long enough that a loaded machine's loop stalls do not reorder its wake-ups
GUARD = 3.0  # a wait still pending after this long never ends: its timer was lost


async def _outcome(conn: Connection, timeout: float) -> tuple[str, float]:
    """How a wait of `conn` ended ("woken", "timed out" or "hung") and after how long."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(conn.wait(timeout))
    done, _ = await asyncio.wait({task}, timeout=GUARD)
    if not done:
        task.cancel()
        return "hung", loop.time() - started
    ended = "timed out" if isinstance(task.exception(), TimeoutError) else "woken"
    return ended, loop.time() - started


async def _waits_after_a_woken_one() -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    conn = Connection()
    loop.call_later(TIMEOUT / 2, conn._wake)
    first = await _outcome(conn, TIMEOUT)  # woken early: its timer stays armed
    await asyncio.sleep(TIMEOUT / 4)
    # Begun at about 0.75 TIMEOUT, woken at about 1.5 TIMEOUT: the first wait's timer
    # fires in the middle of it, before its own deadline.
    loop.call_later(TIMEOUT * 0.75, conn._wake)
    second = await _outcome(conn, TIMEOUT)
    third = await _outcome(conn, TIMEOUT)  # nothing comes: it times out
    conn.close()
    return [first, second, third]


def test_a_wait_ends_at_its_own_deadline_not_at_an_earlier_wait_s_timer() -> None:
    (first, _), (second, _), (third, waited) = engine_loop.run(_waits_after_a_woken_one())
    assert (first, second, third) == ("woken", "woken", "timed out")
    assert waited >= TIMEOUT - 0.01  # never before its deadline


async def _quiet_wait_under_an_earlier_timer() -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    conn = Connection()
    loop.call_later(TIMEOUT / 2, conn._wake)
    first = await _outcome(conn, TIMEOUT)  # woken early: its timer stays armed
    # Begun at about TIMEOUT / 2, nothing comes: the first wait's timer fires half-way,
    # and must be armed again for this wait's own deadline.
    second = await _outcome(conn, TIMEOUT)
    conn.close()
    return [first, second]


def test_a_quiet_wait_times_out_when_an_earlier_wait_s_timer_fires_first() -> None:
    (first, _), (second, waited) = engine_loop.run(_quiet_wait_under_an_earlier_timer())
    assert (first, second) == ("woken", "timed out")
    assert waited >= TIMEOUT - 0.01  # at its own deadline, not the earlier one


async def _shorter_after_longer() -> tuple[str, float]:
    """A longer timeout's timer is armed; a later wait with a shorter one keeps its own."""
    loop = asyncio.get_running_loop()
    conn = Connection()
    loop.call_later(0.01, conn._wake)
    await conn.wait(60)  # its timer, 60 s away, stays armed
    outcome = await _outcome(conn, TIMEOUT)
    conn.close()
    return outcome


def test_a_shorter_timeout_after_a_longer_one_still_fires() -> None:
    ended, waited = engine_loop.run(_shorter_after_longer())
    assert ended == "timed out" and waited >= TIMEOUT - 0.01
