"""Messages between the coordinator and a worker: tuples, over a socket pair both ends
read with asyncio (writes never block a loop).

Messages sent in one turn of the event loop leave together (`Outbox`): one pickled list,
length-prefixed, in one write (one pickle shares its classes' names and repeated strings
among the messages: a turn's records cost one pickling, not one each); each read takes
every whole frame that arrived (`messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import struct
from collections.abc import AsyncIterator
from typing import Any

_HEAD = struct.Struct("!I")
READ_SIZE = 256 * 1024


class Outbox:
    """The messages to one peer, written together at the end of the loop's turn."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._queued: list[tuple[Any, ...]] = []

    def send(self, *message: Any) -> None:
        """Queue one message (nothing happens once the other end is gone)."""
        if self.writer.is_closing():
            return
        self._queued.append(message)
        if len(self._queued) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand the queued messages to the transport, as one frame."""
        if self._queued:
            data = frame(self._queued)
            self._queued = []
            if not self.writer.is_closing():
                self.writer.write(data)

    async def close(self, drain: bool = True) -> None:
        """Flush, wait for every byte to leave (`drain`), and close.

        A transport's own drain returns once its buffer is below its low-water mark
        (16 KB), and what is still in it when the process ends is lost: a worker's last
        shard, sent while the coordinator was busy, was. So the marks are set to 0 first.
        """
        self.flush()
        if drain and not self.writer.is_closing():
            self.writer.transport.set_write_buffer_limits(high=0)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()
        self.writer.close()


async def messages(reader: asyncio.StreamReader) -> AsyncIterator[tuple[Any, ...]]:
    """Every message from the other end, until it is gone (closed, killed)."""
    buffer = bytearray()
    while True:
        try:
            chunk = await reader.read(READ_SIZE)
        except ConnectionError:
            return
        if not chunk:
            return
        buffer += chunk
        found, taken = frames(buffer)
        del buffer[:taken]
        for message in found:
            yield message


def frame(messages: list[tuple[Any, ...]]) -> bytes:
    """One frame of `messages`: their pickled list, length-prefixed."""
    data = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(data)) + data


def frames(data: bytes | bytearray) -> tuple[list[tuple[Any, ...]], int]:
    """The messages of every whole frame at the start of `data`, and the bytes they took
    (a frame cut at the end is left for the next read)."""
    found: list[tuple[Any, ...]] = []
    offset = 0
    with memoryview(data) as view:
        while len(data) - offset >= _HEAD.size:
            (size,) = _HEAD.unpack_from(data, offset)
            end = offset + _HEAD.size + size
            if end > len(data):
                break
            frame = pickle.loads(view[offset + _HEAD.size : end])
            offset = end
            assert isinstance(frame, list)
            found.extend(frame)
    return found, offset
