"""Small valid GIF, PNG and JPEG images, made deterministically from a name.

Pure Python and dependency-free. Every image is a flag-like pattern of 2-4 colours chosen
from a hash of the name, so the same name always gives the same bytes. ``padded`` grows an
image to an exact size with a comment (GIF comment extension, PNG ``tEXt`` chunk, JPEG
``COM`` segment) without changing its pixels.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from pathlib import PurePosixPath

RGB = tuple[int, int, int]

MAX_SIZE = 4096
_FILLER = b"imgflow sample padding. "
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_gif(name: str, size: int = 16, *, target_bytes: int = 0) -> bytes:
    """A ``size`` x ``size`` GIF89a with a 4-colour palette and LZW-compressed pixels."""
    palette, pixels = flag_pattern(name, size)
    screen = struct.pack("<HHBBB", size, size, 0xF1, 0, 0)
    image = struct.pack("<BHHHHB", 0x2C, 0, 0, size, size, 0)
    data = _sub_blocks(lzw_encode(pixels, min_code_size=2))
    body = b"GIF89a" + screen + _rgb_bytes(palette) + image + b"\x02" + data + b"\x3b"
    return padded(body, target_bytes)


def make_png(name: str, size: int = 16, *, target_bytes: int = 0) -> bytes:
    """A ``size`` x ``size`` 8-bit palette PNG."""
    palette, pixels = flag_pattern(name, size)
    rows = b"".join(b"\x00" + bytes(pixels[y * size : (y + 1) * size]) for y in range(size))
    body = (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 3, 0, 0, 0))
        + _png_chunk(b"PLTE", _rgb_bytes(palette))
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )
    return padded(body, target_bytes)


def make_jpeg(name: str, target_bytes: int = 0, *, size: int = 16) -> bytes:
    """A ``size`` x ``size`` baseline JPEG: one flat colour per 8x8 block."""
    blocks = -(-_checked_size(size) // 8)
    palette, pixels = flag_pattern(name, blocks)
    body = (
        b"\xff\xd8"
        + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + _segment(0xDB, b"\x00" + b"\x01" * 64)
        + _segment(0xC0, struct.pack(">BHHB", 8, size, size, 3) + _COMPONENTS)
        + _segment(0xC4, b"\x00" + bytes(_DC_BITS) + _DC_VALUES)
        + _segment(0xC4, b"\x10" + bytes(_AC_BITS) + _AC_VALUES)
        + _segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
        + _jpeg_scan([_ycbcr(palette[index]) for index in pixels])
        + b"\xff\xd9"
    )
    return padded(body, target_bytes)


def make_image(path: str, target_bytes: int = 0, size: int = 16) -> bytes:
    """An image for ``path``, its format chosen by the suffix (.gif, .png, .jpg or .jpeg)."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".gif":
        return make_gif(path, size, target_bytes=target_bytes)
    if suffix == ".png":
        return make_png(path, size, target_bytes=target_bytes)
    if suffix in (".jpg", ".jpeg"):
        return make_jpeg(path, target_bytes, size=size)
    raise ValueError(f"no sample encoder for {suffix or 'a path without a suffix'}: {path}")


def padded(data: bytes, target_bytes: int) -> bytes:
    """``data`` grown to exactly ``target_bytes`` with a comment; unchanged if already as big.

    Raises ValueError for an unknown format or a gap smaller than the format's smallest
    comment (GIF 5 bytes, PNG 20, JPEG 4).
    """
    gap = target_bytes - len(data)
    if gap <= 0:
        return data
    if data.startswith(b"GIF8"):
        return data[:-1] + _gif_comment(gap) + data[-1:]
    if data.startswith(_PNG_SIGNATURE):
        return data[:-12] + _png_comment(gap) + data[-12:]
    if data.startswith(b"\xff\xd8"):
        at = _after_jfif(data)
        return data[:at] + _jpeg_comments(gap) + data[at:]
    raise ValueError("padded() needs a GIF, PNG or JPEG image")


def flag_pattern(name: str, size: int) -> tuple[list[RGB], list[int]]:
    """A 4-colour palette and ``size * size`` palette indexes (row-major) drawn from ``name``."""
    _checked_size(size)
    digest = hashlib.sha256(name.encode()).digest()
    palette = [_colour(digest[i : i + 3]) for i in range(0, 12, 3)]
    bands = 2 + digest[13] % 2
    layout = digest[12] % 4
    pixels = [_flag_index(layout, bands, x, y, size) for y in range(size) for x in range(size)]
    return palette, pixels


def _flag_index(layout: int, bands: int, x: int, y: int, size: int) -> int:
    """The palette index of pixel (x, y) for one of four flag layouts."""
    if layout == 0:
        return y * bands // size
    if layout == 1:
        return x * bands // size
    bar = max(1, size // 6)
    if layout == 2:
        in_cross = abs(2 * x - (3 * size) // 4) < bar or abs(2 * y - size) < bar
        return 1 if in_cross else 0
    if x < size // 2 and y < size // 2:
        return 3
    return (y * 4 // max(size, 1)) % 2


def _colour(three: bytes) -> RGB:
    """A saturated flag colour from three hash bytes."""
    red, green, blue = (min(255, (b // 64) * 85) for b in three)
    return red, green, blue


def _checked_size(size: int) -> int:
    if not 1 <= size <= MAX_SIZE:
        raise ValueError(f"image size must be 1-{MAX_SIZE} pixels, got {size}")
    return size


def _rgb_bytes(palette: Sequence[RGB]) -> bytes:
    return bytes(channel for rgb in palette for channel in rgb)


def _split(total: int, lowest: int, highest: int) -> list[int]:
    """Sizes in [lowest, highest] that add up to ``total`` (as few as possible)."""
    if total == 0:
        return []
    count = -(-total // highest)
    if total < lowest * count:
        raise ValueError(f"cannot pad by {total} bytes with this format; pad by more")
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)


def _filler(length: int) -> bytes:
    return (_FILLER * (length // len(_FILLER) + 1))[:length]


# --- GIF ------------------------------------------------------------------------------------


def lzw_encode(indexes: Sequence[int], min_code_size: int) -> bytes:
    """GIF-flavoured variable-width LZW, starting with a clear code."""
    clear = 1 << min_code_size
    writer = _LsbBitWriter()
    table, next_code, width = _lzw_reset(clear)
    writer.write(clear, width)
    word = bytes(indexes[:1])
    for index in indexes[1:]:
        extended = word + bytes((index,))
        if extended in table:
            word = extended
            continue
        writer.write(table[word], width)
        if next_code == 4096:
            writer.write(clear, width)
            table, next_code, width = _lzw_reset(clear)
        else:
            table[extended] = next_code
            next_code += 1
            if next_code > (1 << width) and width < 12:
                width += 1
        word = bytes((index,))
    writer.write(table[word], width)
    writer.write(clear + 1, width)
    return writer.getvalue()


def _lzw_reset(clear: int) -> tuple[dict[bytes, int], int, int]:
    """A fresh table, the next free code and the code width."""
    return {bytes((i,)): i for i in range(clear)}, clear + 2, clear.bit_length()


class _LsbBitWriter:
    """Packs codes least-significant bit first, as GIF wants."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._bits = 0
        self._count = 0

    def write(self, code: int, width: int) -> None:
        self._bits |= code << self._count
        self._count += width
        while self._count >= 8:
            self._out.append(self._bits & 0xFF)
            self._bits >>= 8
            self._count -= 8

    def getvalue(self) -> bytes:
        tail = bytes((self._bits,)) if self._count else b""
        return bytes(self._out) + tail


def _sub_blocks(data: bytes) -> bytes:
    """GIF data sub-blocks (at most 255 bytes each) and the block terminator."""
    blocks = (bytes((len(part),)) + part for part in _chunks(data, 255))
    return b"".join(blocks) + b"\x00"


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _gif_comment(length: int) -> bytes:
    """A comment extension of exactly ``length`` bytes."""
    blocks = [_filler(cost - 1) for cost in _split(length - 3, 2, 256)]
    return b"\x21\xfe" + b"".join(bytes((len(b),)) + b for b in blocks) + b"\x00"


# --- PNG ------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_comment(length: int) -> bytes:
    """A ``tEXt`` chunk of exactly ``length`` bytes."""
    header = b"Comment\x00"
    if length < 12 + len(header):
        raise ValueError(f"cannot pad a PNG by {length} bytes; pad by 20 or more")
    return _png_chunk(b"tEXt", header + _filler(length - 12 - len(header)))


# --- JPEG -----------------------------------------------------------------------------------

_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = bytes(range(12))
_AC_BITS = (0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_AC_VALUES = b"\x00\x01"
_END_OF_BLOCK = 0x00
_COMPONENTS = b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"  # Y, Cb, Cr: 1x1 sampling, table 0


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _huffman_codes(bits: Sequence[int], values: bytes) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes: symbol -> (code, length)."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    symbols = iter(values)
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[next(symbols)] = (code, length)
            code += 1
        code <<= 1
    return codes


_DC_CODES = _huffman_codes(_DC_BITS, _DC_VALUES)
_AC_CODES = _huffman_codes(_AC_BITS, _AC_VALUES)


def _ycbcr(rgb: RGB) -> RGB:
    red, green, blue = rgb
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    blue_diff = 128 - 0.168736 * red - 0.331264 * green + 0.5 * blue
    red_diff = 128 + 0.5 * red - 0.418688 * green - 0.081312 * blue
    y, cb, cr = (max(0, min(255, round(v))) for v in (luma, blue_diff, red_diff))
    return y, cb, cr


def _jpeg_scan(blocks: Sequence[RGB]) -> bytes:
    """Entropy-coded data for flat 8x8 blocks (DC only; quantisation table of ones)."""
    writer = _MsbBitWriter()
    previous = [0, 0, 0]
    for block in blocks:
        for component, level in enumerate(block):
            dc = 8 * (level - 128)
            diff = dc - previous[component]
            previous[component] = dc
            category = abs(diff).bit_length()
            writer.write(*_DC_CODES[category])
            if category:
                writer.write(diff if diff > 0 else diff + (1 << category) - 1, category)
            writer.write(*_AC_CODES[_END_OF_BLOCK])
    return writer.getvalue()


class _MsbBitWriter:
    """Packs bits most-significant first with JPEG's 0xFF byte stuffing."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._bits = 0
        self._count = 0

    def write(self, code: int, width: int) -> None:
        self._bits = (self._bits << width) | code
        self._count += width
        while self._count >= 8:
            self._count -= 8
            self._emit((self._bits >> self._count) & 0xFF)
        self._bits &= (1 << self._count) - 1

    def getvalue(self) -> bytes:
        if self._count:
            pad = 8 - self._count
            self._emit(((self._bits << pad) | ((1 << pad) - 1)) & 0xFF)
            self._count = 0
            self._bits = 0
        return bytes(self._out)

    def _emit(self, byte: int) -> None:
        self._out.append(byte)
        if byte == 0xFF:
            self._out.append(0x00)


def _after_jfif(data: bytes) -> int:
    """The offset just past SOI and, if present, the JFIF APP0 segment."""
    if data[2:4] != b"\xff\xe0":
        return 2
    (length,) = struct.unpack(">H", data[4:6])
    return 4 + int(length)


def _jpeg_comments(length: int) -> bytes:
    """COM segments adding up to exactly ``length`` bytes."""
    return b"".join(_segment(0xFE, _filler(cost - 4)) for cost in _split(length, 4, 65537))
