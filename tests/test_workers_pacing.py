"""The coordinator's grants for a host with a rate (no process, no socket, a fake clock):
one grant at a time, and the next token spaced from when the last grant reached its
worker, so requests leave at least 1/rate apart as the server sees them, however late a
grant's message arrives."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace

from imgflow.engine.politeness import Politeness
from imgflow.local.workers.coordinator import Coordinator, SharedGate, _Peer
from imgflow.local.workers.permits import PACED


class _Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []

    def send(self, *message: object) -> None:
        self.sent.append(message)


def test_a_paced_grant_spaces_the_next_token_from_its_arrival() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    async def scenario() -> None:
        c = Coordinator.__new__(Coordinator)
        c.politeness = Politeness(
            functools.partial(SharedGate, ceiling=4, rate=10.0, clock=lambda: now[0], sleep=sleep)
        )
        c._total, c.peers, c.pacers = asyncio.Semaphore(4), [], {}
        c.start = SimpleNamespace(in_flight=4)  # type: ignore[assignment]
        outbox = _Sent()
        peer = _Peer(None, None, outbox)  # type: ignore[arg-type]
        first = asyncio.create_task(c._answer(peer, "acquire", 1, "h"))
        second = asyncio.create_task(c._answer(peer, "acquire", 2, "h"))
        for _ in range(5):
            await asyncio.sleep(0)
        # one grant at a time: the second waits until the first has left
        assert outbox.sent == [("granted", 1, 0.0, PACED)] and slept == []
        now[0] = 0.05  # the first grant reached its worker late
        peer.leaving.pop(1).set_result(0.05)
        await first
        for _ in range(5):
            await asyncio.sleep(0)
        assert outbox.sent[-1] == ("granted", 2, 0.0, PACED)
        # the next token is 1/rate after the first request left, not after its grant
        assert abs(now[0] - 0.15) < 0.0015 and slept[0] == 0.1, (now, slept)
        peer.leaving.pop(2).set_result(now[0])
        await second

    asyncio.run(asyncio.wait_for(scenario(), 5))
