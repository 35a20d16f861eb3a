"""Content checks: the declared content type and the first bytes must both say "image"."""

from __future__ import annotations

from fnmatch import fnmatchcase

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\xff\x0a", "image/jxl"),
    (b"\x00\x00\x00\x0cJXL ", "image/jxl"),
)
_NEUTRAL_TYPES = ("application/octet-stream", "binary/octet-stream", "")
SNIFF_BYTES = 512


def sniff(head: bytes) -> str | None:
    """The image type the first bytes show, or None when they are not a known image."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        return "image/avif" if head[8:11] == b"avi" else "image/heic"
    text = head.lstrip()[:SNIFF_BYTES].lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in head.lower()):
        return "image/svg+xml"
    return None


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header value, lower-cased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def type_allowed(content_type: str | None, allowed: tuple[str, ...]) -> bool:
    """True when the declared type matches the allow-list, or is neutral (checked by sniff)."""
    kind = media_type(content_type)
    return kind in _NEUTRAL_TYPES or any(fnmatchcase(kind, pattern) for pattern in allowed)
