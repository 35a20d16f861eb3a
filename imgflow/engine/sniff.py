"""Content checks: the declared content type and the first bytes must both say "image".

`sniff` reads at most `SNIFF_BYTES` of a body's start: binary formats by their signatures,
SVG by its first element, after whatever an XML document may put before it (a byte order
mark, the XML declaration, comments, processing instructions, a DOCTYPE with an internal
subset of entity declarations, as Illustrator writes).
"""

from __future__ import annotations

import functools
import re
from fnmatch import fnmatchcase

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"II+\x00", "image/tiff"),  # BigTIFF
    (b"MM\x00+", "image/tiff"),
    (b"\xff\x0a", "image/jxl"),  # JPEG XL codestream
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image/jxl"),  # JPEG XL container
    (b"\xff\x4f\xff\x51", "image/jp2"),  # JPEG 2000 codestream (SOC, SIZ)
)
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_JP2_BRANDS = {b"jp2 ": "image/jp2", b"jpx ": "image/jpx", b"jpm ": "image/jpm"}
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})
# BITMAPCOREHEADER, BITMAPINFOHEADER and its later versions.
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_NEUTRAL_TYPES = ("application/octet-stream", "binary/octet-stream", "")
SNIFF_BYTES = 16 * 1024

_SPACE = re.compile(rb"\s*")
_SVG_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?svg[\s/>]")


def sniff(head: bytes) -> str | None:
    """The image type the first bytes show, or None when they are not a known image.

    `head` is the body's first `SNIFF_BYTES` (or the whole body when shorter).
    """
    head = head[:SNIFF_BYTES]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(_JP2_SIGNATURE):
        # The signature box is followed by a File Type box whose brand names the format.
        return _JP2_BRANDS.get(head[20:24], "image/jp2") if head[16:20] == b"ftyp" else "image/jp2"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _heif_kind(head)
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "image/bmp"
    if head[:4] == b"\x00\x00\x01\x00" and head[4:6] != b"\x00\x00" and len(head) >= 22:
        return "image/x-icon"
    return "image/svg+xml" if _is_svg(head) else None


def _heif_kind(head: bytes) -> str | None:
    """AVIF or HEIC/HEIF by the brands of an ISO-BMFF File Type box (not video files)."""
    size = int.from_bytes(head[:4], "big")
    end = min(max(size, 16), len(head), 256)
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "image/avif"
    if brands & _HEIC_BRANDS:
        return "image/heic"
    if brands & _HEIF_BRANDS:
        return "image/heif"
    return None


def _is_svg(head: bytes) -> bool:
    """True when the first element of this XML text is `svg` (with any namespace prefix)."""
    text = _as_utf8(head)
    pos = _SPACE.match(text).end()  # type: ignore[union-attr]
    while pos < len(text):
        if text.startswith(b"<?", pos):
            end = text.find(b"?>", pos + 2)
            pos = -1 if end < 0 else end + 2
        elif text.startswith(b"<!--", pos):
            end = text.find(b"-->", pos + 4)
            pos = -1 if end < 0 else end + 3
        elif text[pos : pos + 9].upper() == b"<!DOCTYPE":
            pos = _doctype_end(text, pos + 9)
        else:
            return _SVG_START.match(text, pos) is not None
        if pos < 0:
            return False  # the prolog runs past what was read
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    return False


def _doctype_end(text: bytes, pos: int) -> int:
    """The position after a DOCTYPE's closing `>`, skipping quoted strings, comments and
    the internal subset; -1 when it does not end within `text`."""
    depth = 0
    while pos < len(text):
        char = text[pos : pos + 1]
        if char in (b'"', b"'"):
            end = text.find(char, pos + 1)
            if end < 0:
                return -1
            pos = end + 1
            continue
        if text.startswith(b"<!--", pos):
            end = text.find(b"-->", pos + 4)
            if end < 0:
                return -1
            pos = end + 3
            continue
        if char == b"[":
            depth += 1
        elif char == b"]":
            depth -= 1
        elif char == b">" and depth <= 0:
            return pos + 1
        pos += 1
    return -1


def _as_utf8(head: bytes) -> bytes:
    """The text without a byte order mark, UTF-16 re-encoded as UTF-8."""
    if head.startswith(b"\xef\xbb\xbf"):
        return head[3:]
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            body = head[2 : len(head) - (len(head) % 2)]
            return body.decode(codec, errors="replace").encode("utf-8")
    return head


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header value, lower-cased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def type_allowed(content_type: str | None, allowed: tuple[str, ...]) -> bool:
    """True when the declared type matches the allow-list, or is neutral (checked by sniff)."""
    kind = media_type(content_type)
    return kind in _NEUTRAL_TYPES or _matches(kind, allowed)


@functools.lru_cache(maxsize=256)
def _matches(kind: str, allowed: tuple[str, ...]) -> bool:
    """True when `kind` matches a pattern of `allowed` (a run asks about a few types only)."""
    return any(fnmatchcase(kind, pattern) for pattern in allowed)
