"""The coordinator's grants for a host with a rate (no process, no socket, a fake clock):
one grant at a time, and the next token spaced from when the last grant reached its
worker, so requests leave at least 1/rate apart as the server sees them, however late a
grant's message arrives."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace

from imgflow.engine import loop as engine_loop
from imgflow.engine.politeness import Politeness, Signal
from imgflow.local.workers.coordinator import Coordinator, SharedGate, _Peer
from imgflow.local.workers.permits import PACED, RemoteGate


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

    engine_loop.run(asyncio.wait_for(scenario(), 5))


class _Link:
    """A worker's link as its gates see it: what they sent, the permits they asked for."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []
        self.asked: list[RemoteGate] = []
        self.gates: dict[str, RemoteGate] = {}
        self.ended = asyncio.Event()

    def send(self, *message: object) -> None:
        self.sent.append(message)

    def ask_permit(self, gate: RemoteGate) -> None:
        self.asked.append(gate)

    def left(self, rid: int) -> None:
        self.sent.append(("left", rid))


def test_a_leased_slot_is_kept_or_given_back_never_both() -> None:
    """A success on a leased slot keeps it (no release; the success told); the next
    request takes it without asking; a recall gives the free ones back, and a slot freed
    after it goes back too: the coordinator's count of the host is always what the worker
    holds."""

    async def scenario() -> None:
        link = _Link()
        gate = RemoteGate("h", link=link)  # type: ignore[arg-type]
        first = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        assert link.asked == [gate]
        gate.granted(0.0, keep=1)
        await first
        gate.release(Signal.OK)
        await asyncio.sleep(0)
        assert link.sent == [("ok", "h", 1)] and gate.free == 1
        await gate.acquire()  # the kept slot: no ask
        assert link.asked == [gate] and gate.free == 0 and gate.in_flight == 1
        gate.release(Signal.OK)
        gate.recall()
        assert link.sent[-1] == ("return", "h", 1) and gate.free == 0
        await asyncio.sleep(0)
        sent = len(link.sent)
        second = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.granted(0.0, keep=0)
        await second
        gate.release(Signal.OK)
        assert link.sent[sent:] == [("release", "h", Signal.OK.value, None)] and gate.free == 0

    engine_loop.run(asyncio.wait_for(scenario(), 5))


def test_a_paced_grant_is_timed_when_its_request_takes_it() -> None:
    """The coordinator waits for a paced grant's time: taken when the waiting request
    resumes with it (not when the message arrived), or at once when no request wants it."""

    async def scenario() -> None:
        link = _Link()
        gate = RemoteGate("h", link=link)  # type: ignore[arg-type]
        waiting = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        gate.granted(0.0, 0, paced=7)
        assert link.sent == []  # the request has not resumed yet
        await waiting
        assert link.sent == [("left", 7)]
        gate.granted(0.0, 0, paced=8)  # no request waits: given back, timed now
        assert link.sent[1:] == [("left", 8), ("release", "h", Signal.OTHER.value, None)]

    engine_loop.run(asyncio.wait_for(scenario(), 5))
