"""Content decoding with bounded output: a compressed body can never outgrow the size cap.

Each decoder takes raw body bytes and returns at most about `max_length` decoded bytes per
call (zlib and zstd exactly; brotli's limit is loose by up to its 32 KB output block),
keeping the rest of its input for the next call, so the memory a body needs is a chunk,
whatever its compression ratio. At most one content coding is applied: a stacked
coding (``gzip, gzip``) is refused, as browsers and curl's defaults never send one.
gzip and deflate come from zlib; br and zstd when the brotli and backports.zstd (or, from
Python 3.14, compression.zstd) packages are installed, and only those are advertised.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol


class DecodeError(Exception):
    """A body that cannot be decoded, or a coding that is not supported (the detail)."""


class TruncatedStream(DecodeError):
    """The body ended before its compressed stream did: what was decoded is not the image."""


_GZIP_MAGIC = b"\x1f\x8b"


class Decoder(Protocol):
    """Turns raw body bytes into decoded bytes, at most about `max_length` per call."""

    def decode(self, data: bytes, max_length: int) -> bytes:
        """Take `data` (may be empty) and return up to about `max_length` decoded bytes."""
        ...

    def pending(self) -> bool:
        """True when more output can come without more input (call `decode(b"", n)`)."""
        ...

    def finish(self) -> None:
        """The body has ended: raise TruncatedStream unless its compressed stream did too."""
        ...


def _optional(name: str) -> ModuleType | None:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


_brotli = _optional("brotli")
_zstd = _optional("compression.zstd") or _optional("backports.zstd")
if _brotli is not None and not hasattr(_brotli.Decompressor(), "can_accept_more_data"):
    _brotli = None  # brotli before 1.2 cannot bound its output

# RFC 9659: a zstd content coding needs no window over 8 MB; a larger one is refused.
_ZSTD_WINDOW_LOG_MAX = 23

SUPPORTED: tuple[str, ...] = (
    "gzip",
    "deflate",
    *(("br",) if _brotli is not None else ()),
    *(("zstd",) if _zstd is not None else ()),
)
ACCEPT_ENCODING = ", ".join(SUPPORTED)


class _Identity:
    def decode(self, data: bytes, max_length: int) -> bytes:
        return data

    def pending(self) -> bool:
        return False

    def finish(self) -> None:
        return None


def is_identity(decoder: Decoder) -> bool:
    """True for the decoder of a body with no content coding (its bytes pass unchanged)."""
    return isinstance(decoder, _Identity)


class _Zlib:
    """gzip (also x-gzip) or deflate, zlib-wrapped or raw as servers send it.

    A gzip body may hold several members (RFC 1952 2.2), each decoded in turn as gzip -d
    does; other bytes after the end of the stream are ignored, as by browsers.
    """

    def __init__(self, coding: str) -> None:
        self._gzip = coding != "deflate"
        self._raw_fallback = not self._gzip
        self._d = self._new()
        self._started = False
        self._full = False
        self._after = b""  # bytes after the end of a gzip member: maybe the next one

    def _new(self) -> Any:
        wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def decode(self, data: bytes, max_length: int) -> bytes:
        d = self._d
        if d.eof:
            data = self._next_member(data)
            if not data:
                return b""  # bytes after the end of the stream are ignored, as by browsers
            d = self._d
        if d.unconsumed_tail:
            data = d.unconsumed_tail + data
        try:
            out: bytes = d.decompress(data, max_length)
        except zlib.error as exc:
            if not (self._raw_fallback and not self._started):
                raise DecodeError(f"cannot decode the body: {exc}") from None
            self._d = d = zlib.decompressobj(-zlib.MAX_WBITS)
            self._raw_fallback = False
            try:
                out = d.decompress(data, max_length)
            except zlib.error as exc2:
                raise DecodeError(f"cannot decode the body: {exc2}") from None
        self._started = self._started or bool(data)
        self._full = len(out) >= max_length
        if d.eof and self._gzip:
            self._after = d.unused_data
        return out

    def _next_member(self, data: bytes) -> bytes:
        """The input of the gzip member that follows the one ended (b"" when none does)."""
        if not self._gzip:
            return b""
        rest = self._after + data
        if rest.startswith(_GZIP_MAGIC):
            self._after = b""
            self._d = self._new()
            return rest
        # Keep a lone first magic byte until the next one arrives; drop anything else.
        self._after = rest if rest == _GZIP_MAGIC[:1] else b""
        return b""

    def pending(self) -> bool:
        d = self._d
        if d.eof:
            return self._after.startswith(_GZIP_MAGIC)
        return bool(d.unconsumed_tail) or self._full

    def finish(self) -> None:
        if self._started and not self._d.eof:
            coding = "gzip" if self._gzip else "deflate"
            raise TruncatedStream(f"the {coding} stream ends early")


class _Brotli:
    def __init__(self) -> None:
        assert _brotli is not None
        self._d: Any = _brotli.Decompressor()
        self._error: type[Exception] = _brotli.error
        self._started = False

    def decode(self, data: bytes, max_length: int) -> bytes:
        d = self._d
        if data and d.is_finished():
            return b""
        if data and not d.can_accept_more_data():
            raise AssertionError("brotli input fed before its output was drained")
        self._started = self._started or bool(data)
        try:
            out: bytes = d.process(data, output_buffer_limit=max_length)
        except self._error as exc:
            raise DecodeError(f"cannot decode the br body: {exc}") from None
        return out

    def pending(self) -> bool:
        return not self._d.is_finished() and not self._d.can_accept_more_data()

    def finish(self) -> None:
        if self._started and not self._d.is_finished():
            raise TruncatedStream("the br stream ends early")


class _Zstd:
    """zstd frames, one after another (a stream may hold several)."""

    def __init__(self) -> None:
        assert _zstd is not None
        self._error: type[Exception] = _zstd.ZstdError
        self._d: Any = self._new()
        self._started = False

    @staticmethod
    def _new() -> Any:
        assert _zstd is not None
        window = {_zstd.DecompressionParameter.window_log_max: _ZSTD_WINDOW_LOG_MAX}
        return _zstd.ZstdDecompressor(options=window)

    def decode(self, data: bytes, max_length: int) -> bytes:
        d = self._d
        try:
            if d.eof:
                rest = d.unused_data + data
                if not rest:
                    return b""
                self._d = d = self._new()
                data = rest
            self._started = self._started or bool(data)
            out: bytes = d.decompress(data, max_length)
        except self._error as exc:
            raise DecodeError(f"cannot decode the zstd body: {exc}") from None
        return out

    def pending(self) -> bool:
        d = self._d
        return (not d.eof and not d.needs_input) or (d.eof and bool(d.unused_data))

    def finish(self) -> None:
        if self._started and not self._d.eof:
            raise TruncatedStream("the zstd stream ends early")


def decoder_for(codings: Sequence[str]) -> Decoder:
    """The decoder of a Content-Encoding's codings (its comma-separated values, in order).

    Raises DecodeError for a stacked or unsupported coding.
    """
    names = [c.strip().lower() for c in codings if c.strip().lower() not in ("", "identity")]
    if not names:
        return _Identity()
    if len(names) > 1:
        raise DecodeError(f"stacked content codings {', '.join(names)}")
    name = "gzip" if names[0] == "x-gzip" else names[0]
    if name not in SUPPORTED:
        raise DecodeError(f"unsupported content coding {name!r}")
    if name == "br":
        return _Brotli()
    if name == "zstd":
        return _Zstd()
    return _Zlib(name)
