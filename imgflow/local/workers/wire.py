"""Messages between the coordinator and a worker: pickled tuples, length-prefixed, over a
socket pair both ends read with asyncio (writes never block a loop)."""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

_HEAD = struct.Struct("!I")


def send(writer: asyncio.StreamWriter, *message: Any) -> None:
    """Queue one message (nothing happens once the other end is gone)."""
    if writer.is_closing():
        return
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_HEAD.pack(len(data)) + data)


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None when the other end is gone (closed, killed)."""
    try:
        head = await reader.readexactly(_HEAD.size)
        (size,) = _HEAD.unpack(head)
        message = pickle.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    assert isinstance(message, tuple)
    return message
