"""Read a response body as it arrives: decoded within the size cap, sniffed, hashed, stored.

Memory per body is bounded by a few chunks whatever the image's size: decoded bytes go to
a `Sink` as they come, and a `StoreSink` hands them to the store's writer in pieces of
`FLUSH_BYTES` (in a worker thread unless the store is `inline`). The first `SNIFF_BYTES`
are held back until the content check has passed, so a body that is not an image never
reaches the store. A small image is written, hashed and committed in one step, as one put.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import struct
from collections.abc import AsyncIterable, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from imgflow.engine.decode import DecodeError, Decoder, TruncatedStream
from imgflow.engine.failures import FailureKind
from imgflow.engine.handoff import handoff
from imgflow.engine.ports import ObjectStore, ObjectWriter
from imgflow.engine.sniff import SNIFF_BYTES, sniff

DECODE_BYTES = 64 * 1024
FLUSH_BYTES = 128 * 1024
# A body with at least this much still to come, once checked, is read in a worker thread.
DIRECT_BYTES = 256 * 1024
# The first bytes of a body kept for its dimensions (a JPEG's size follows its EXIF).
HEAD_BYTES = 64 * 1024


class StoreError(Exception):
    """The store failed to take or publish a body (its detail)."""


class DirectBody(Protocol):
    """A response body whose rest can be read straight from its connection in a worker
    thread (imgflow/engine/transport/direct.py): a Content-Length body over plain TCP."""

    def left(self) -> int | None:
        """The bytes still to come, when `pump` can read them; else None."""
        ...

    async def pump(self, write: Callable[[memoryview], None], first: list[bytes]) -> int | None:
        """In a thread: `first`, then the rest of the body into `write`; the rest's size,
        or None when it cannot start (nothing written)."""
        ...


class Sink(Protocol):
    """Where one body's bytes go; nothing is published before `commit`."""

    size: int

    async def write(self, chunk: bytes) -> None:
        """Append `chunk` (may raise StoreError)."""
        ...

    async def write_rest(self, first: bytes, body: DirectBody) -> int | None:
        """Append `first`, then the rest of `body` read in a worker thread: the rest's size,
        or None when this sink cannot (nothing appended). May raise StoreError, or the
        body's network errors."""
        ...

    async def commit(self, content_type: str | None) -> str:
        """Publish the body; its sha256 hex digest (may raise StoreError)."""
        ...

    async def abort(self) -> None:
        """Discard the body (never raises for a store problem)."""
        ...


class MemorySink:
    """A body kept in memory (for callers that want the bytes, such as tests)."""

    def __init__(self) -> None:
        self.size = 0
        self._chunks: list[bytes] = []

    @property
    def data(self) -> bytes:
        """The body so far."""
        return b"".join(self._chunks)

    async def write(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.size += len(chunk)

    async def write_rest(self, first: bytes, body: DirectBody) -> int | None:
        return None

    async def commit(self, content_type: str | None) -> str:
        return hashlib.sha256(self.data).hexdigest()

    async def abort(self) -> None:
        self._chunks.clear()


class StoreSink:
    """A body streamed into `store.open(key)`, hashed on the way.

    The writer is opened with the first flush, so a small image costs one step at commit
    (open, write, commit), in a worker thread unless the store is inline.
    """

    def __init__(self, store: ObjectStore, key: str, executor: Executor | None) -> None:
        self.size = 0
        self._store = store
        self._key = key
        self._executor = executor
        self._writer: ObjectWriter | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._hash = hashlib.sha256()

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.size += len(chunk)
        if self._pending_size >= FLUSH_BYTES:
            chunks, self._pending, self._pending_size = self._pending, [], 0
            await self._run(self._flush, chunks)

    async def write_rest(self, first: bytes, body: DirectBody) -> int | None:
        """The bytes held, `first` and the rest of `body`, hashed and written in the worker
        thread that reads them (each piece let go once written)."""
        pieces, held = [*self._pending, first], self._pending_size
        self._pending, self._pending_size = [], 0
        try:
            rest = await body.pump(self._write_piece, pieces)
        except OSError as exc:
            raise StoreError(exc.strerror or str(exc)) from exc
        if rest is None:  # nothing taken: `pieces` is as it was
            self._pending, self._pending_size = pieces[:-1], held
            return None
        self.size += len(first) + rest
        return rest

    def _write_piece(self, piece: bytes | memoryview) -> None:
        """Hash and write one piece (the writer opened with the first)."""
        if self._writer is None:
            self._writer = self._store.open(self._key)
        self._hash.update(piece)
        try:
            self._writer.write(piece)
        except OSError:
            # A full disk: free the part's space now, not after a trip through the loop,
            # so that the index (on the same disk) can still save the run's records.
            self._writer.abort()
            raise

    async def commit(self, content_type: str | None) -> str:
        chunks, self._pending, self._pending_size = self._pending, [], 0
        if not self._store.inline:
            await self._run(self._commit, chunks, content_type, False)
            return self._hash.hexdigest()
        try:
            later = self._commit(chunks, content_type, True)
            if later is not None:
                await later
        except OSError as exc:
            raise StoreError(exc.strerror or str(exc)) from exc
        return self._hash.hexdigest()

    async def abort(self) -> None:
        self._pending = []
        writer = self._writer
        if writer is not None:
            # Nothing was published; a part left behind goes with the run's tmp folder.
            with contextlib.suppress(StoreError):
                try:
                    await self._run(writer.abort)
                except RuntimeError:  # the run's threads are gone (an interrupt): here then
                    with contextlib.suppress(OSError):
                        writer.abort()

    def _flush(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._write_piece(chunk)

    def _commit(
        self, chunks: list[bytes], content_type: str | None, on_loop: bool
    ) -> Awaitable[None] | None:
        """Write `chunks` and commit; on the loop, what to await when the writer commits
        later (its optional `commit_later`, imgflow/engine/ports.py)."""
        self._flush(chunks)
        writer = self._writer
        assert writer is not None
        try:
            later_commit = getattr(writer, "commit_later", None) if on_loop else None
            later: Awaitable[None] | None = later_commit(content_type) if later_commit else None
            if later is None:
                writer.commit(content_type)
            return later
        except BaseException:
            writer.abort()
            raise

    async def _run(self, call: Callable[..., object], *args: Any) -> None:
        try:
            if self._store.inline:
                call(*args)
            elif self._executor is None:
                await asyncio.get_running_loop().run_in_executor(None, call, *args)
            else:
                await handoff().run(self._executor, call, *args)
        except OSError as exc:
            raise StoreError(exc.strerror or str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Refused:
    """A body refused while reading: its failure kind and detail."""

    kind: FailureKind
    detail: str | None = None


async def read_body(
    chunks: AsyncIterable[bytes],
    decoder: Decoder,
    sink: Sink,
    *,
    max_bytes: int,
    check: bool,
    direct: DirectBody | None = None,
    head: list[bytes] | None = None,
) -> str | Refused | None:
    """Decode `chunks` into `sink`; the sniffed image type (None unless `check`) or Refused.

    Decoded bytes over `max_bytes` are never produced beyond one decoder step: each step
    asks for at most the remaining cap plus one byte. With `check`, the first bytes must
    look like an image before any byte reaches the sink. A zero-byte body is refused.
    `direct` (an undecoded body) lets the sink take a large body's rest in a worker thread
    once the content check has passed and the rest fits the cap. `head`, when given, gets
    the body's first `HEAD_BYTES` decoded bytes, as pieces (for `dimensions`).
    """
    reader = _Reader(sink, max_bytes, check, direct)
    reader.head = head
    try:
        async for raw in chunks:
            out = decoder.decode(raw, reader.step())
            while True:
                if out and (refused := await reader.take(out)) is not None:
                    return refused
                if not decoder.pending():
                    break
                out = decoder.decode(b"", reader.step())
        while out := decoder.decode(b"", reader.step()):
            if (refused := await reader.take(out)) is not None:
                return refused
        decoder.finish()
    except TruncatedStream as exc:
        return Refused(FailureKind.INCOMPLETE, str(exc))
    except DecodeError as exc:
        return Refused(FailureKind.BAD_RESPONSE, str(exc))
    return await reader.finish()


class _Reader:
    """The size cap and the content check over a body's decoded pieces."""

    def __init__(self, sink: Sink, max_bytes: int, check: bool, direct: DirectBody | None) -> None:
        self.size = 0
        self._sink = sink
        self._direct = direct
        self._max = max_bytes
        self._head: list[bytes] | None = [] if check else None
        self._held = 0
        self.kind: str | None = None
        self.head: list[bytes] | None = None
        self._head_size = 0

    def step(self) -> int:
        """The most decoded bytes to ask for next: a chunk, or one over the cap."""
        return min(DECODE_BYTES, self._max - self.size + 1)

    async def take(self, piece: bytes) -> Refused | None:
        if self.head is not None and self._head_size < HEAD_BYTES:
            # Kept as they come (no copy): a small image is one piece.
            room = HEAD_BYTES - self._head_size
            kept = piece[:room] if len(piece) > room else piece
            self.head.append(kept)
            self._head_size += len(kept)
        self.size += len(piece)
        if self.size > self._max:
            return Refused(FailureKind.TOO_LARGE, f"over {self._max} bytes")
        head = self._head
        if head is None:
            await self._write(piece)
            return None
        head.append(piece)
        self._held += len(piece)
        return await self._decide() if self._held >= SNIFF_BYTES else None

    async def _write(self, piece: bytes) -> None:
        """`piece` to the sink, and with it a large body's rest that fits the cap."""
        body = self._direct
        if body is not None and DIRECT_BYTES <= (body.left() or 0) <= self._max - self.size:
            rest = await self._sink.write_rest(piece, body)
            if rest is not None:
                self._direct = None
                self.size += rest
                return
        await self._sink.write(piece)

    async def _decide(self) -> Refused | None:
        assert self._head is not None
        held = b"".join(self._head)
        self._head = None
        self.kind = sniff(held)
        if self.kind is None:
            return Refused(FailureKind.NOT_AN_IMAGE, "content does not look like an image")
        await self._write(held)
        return None

    async def finish(self) -> str | Refused | None:
        if self.size == 0:
            return Refused(FailureKind.EMPTY_BODY)
        if self._head is not None and (refused := await self._decide()) is not None:
            return refused
        return self.kind


_PNG = b"\x89PNG\r\n\x1a\n"
_BIG_32 = struct.Struct(">LL")
_GIF_16 = struct.Struct("<hh")
_BIG_16 = struct.Struct(">HH")
_JPEG_NOT_SOF = (0xC4, 0xC8, 0xCC)  # in the SOF range, but tables, not a frame header


def dimensions(head: bytes | bytearray) -> tuple[int, int] | None:
    """(width, height) read from an image's first bytes (its header, never decoded), or
    None when they do not say (an unknown format, a header past `HEAD_BYTES`).

    PNG, GIF and JPEG (nearly every image) are read here as imagesize reads them, without
    its general reader's cost per image (about 20 us on the loop); others go to imagesize.
    """
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = _GIF_16.unpack_from(head, 6)  # signed, as imagesize reads them
    elif head[:8] == _PNG and head[12:16] == b"IHDR" and len(head) >= 26:
        width, height = _BIG_32.unpack_from(head, 16)
    elif head[:2] == b"\xff\xd8" and (jpeg := _jpeg(head)) is not None:
        width, height = jpeg
    else:
        width, height = _other(head)
    return (width, height) if width > 0 and height > 0 else None


def _jpeg(head: bytes | bytearray) -> tuple[int, int] | None:
    """A JPEG's size from its first frame header (SOFn), its markers walked as imagesize
    walks them: (-1, -1) when the image has none before its scan; None when `head` ends
    first (imagesize then says)."""
    end = len(head)
    position = 2
    while position < end:
        start = head.find(b"\xff", position)
        if start == -1:
            return None
        cursor = start + 1
        while cursor < end and head[cursor] == 0xFF:  # fill bytes
            cursor += 1
        if cursor >= end:
            return None
        marker = head[cursor]
        position = cursor + 1
        if marker in (0xD9, 0xDA):  # the end, or the scan: no frame header before it
            return -1, -1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        if position + 2 > end:
            return None
        length = int.from_bytes(head[position : position + 2], "big")
        if length < 2:
            return -1, -1
        if 0xC0 <= marker <= 0xCF and marker not in _JPEG_NOT_SOF:
            if length < 8:
                return -1, -1
            if position + 8 > end:
                return None
            height, width = _BIG_16.unpack_from(head, position + 3)
            return width, height
        position += length
    return None


def _other(head: bytes | bytearray) -> tuple[int, int]:
    """imagesize's reading of any format; (-1, -1) when it cannot tell."""
    try:
        import imagesize
    except ImportError:  # (a Lambda zip built before imagesize was a dependency)
        return -1, -1
    size: tuple[int, int] = imagesize.get(io.BytesIO(head), exif_rotation=False)
    return size
