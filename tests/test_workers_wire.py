"""The wire between a worker and its coordinator (imgflow/local/workers/wire.py).

A worker's last messages (its last shard, its last records) are sent as it ends. The
coordinator may be busy then (committing another worker's shard), so they wait in the
transport's buffer: closing the outbox must not end the process before they have left.
A real socket pair, its peer reading only later, on both event loops.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from support.loops import LOOPS, on_loop

from imgflow.engine.loop import run
from imgflow.local.workers.wire import Outbox, frame, frames


def _fill(sock: socket.socket) -> bytes:
    """Frames written straight into the socket until its buffers are full (the peer is
    not reading); what of the last one did not fit (for the outbox to write first)."""
    sock.setblocking(False)
    n = 0
    while True:
        data = frame([("record", n)])
        try:
            sent = sock.send(data)
        except BlockingIOError:
            return b""
        n += 1
        if sent < len(data):
            return data[sent:]


@pytest.mark.parametrize("kind", LOOPS)
def test_the_last_message_reaches_a_peer_that_reads_late(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop(kind, monkeypatch)
    ours, theirs = socket.socketpair()
    received: list[bytes] = []

    def read_late() -> None:
        time.sleep(0.5)  # the coordinator, busy with a commit
        theirs.settimeout(5)
        data = bytearray()
        try:
            while chunk := theirs.recv(1 << 16):
                data += chunk
        except TimeoutError:
            pass
        received.append(bytes(data))

    rest = _fill(ours)
    reader = threading.Thread(target=read_late)
    reader.start()

    async def worker() -> None:
        _, writer = await asyncio.open_connection(sock=ours)
        writer.write(rest)
        box = Outbox(writer)
        box.send("shard", "the last one")  # waits in the transport's buffer
        await box.close()

    try:
        run(worker())
        ours.close()
        reader.join(10)
    finally:
        theirs.close()
    messages, _ = frames(received[0])
    assert messages[0] == ("record", 0)
    assert messages[-1] == ("shard", "the last one")
