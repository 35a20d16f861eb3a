"""The content check against the headers real image files start with (made here, byte for byte)."""

from __future__ import annotations

import struct

import pytest

from imgflow.demo.images import make_gif, make_png
from imgflow.engine.sniff import SNIFF_BYTES, sniff

SVG_BODY = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>\n'

ILLUSTRATOR = (
    b'<?xml version="1.0" encoding="utf-8"?>\r\n'
    b"<!-- Generator: Adobe Illustrator 16.0.0, SVG Export Plug-In . SVG Version: 6.00 -->\r\n"
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [\r\n'
    b'\t<!ENTITY ns_extend "http://ns.adobe.com/Extensibility/1.0/">\r\n'
    b'\t<!ENTITY ns_ai "http://ns.adobe.com/AdobeIllustrator/10.0/">\r\n'
    b'\t<!ENTITY ns_graphs "http://ns.adobe.com/Graphs/1.0/">\r\n'
    b'\t<!ENTITY ns_vars "http://ns.adobe.com/Variables/1.0/">\r\n'
    b'\t<!ENTITY st0 "fill:#FFFFFF;stroke:#000000;">\r\n'
    b"]>\r\n"
    b'<svg version="1.1" id="Layer_1" xmlns:x="&ns_extend;" xmlns:i="&ns_ai;" '
    b'xmlns="http://www.w3.org/2000/svg" x="0px" y="0px" width="10px" height="10px">\r\n'
    b"<rect/></svg>\r\n"
)

SVGS = {
    "plain": SVG_BODY,
    "bom": b"\xef\xbb\xbf" + SVG_BODY,
    "prolog": b'<?xml version="1.0" standalone="no"?>\n' + SVG_BODY,
    "comment": b"<!-- drawn by hand -->\n" + SVG_BODY,
    "doctype": (
        b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n' + SVG_BODY
    ),
    "illustrator": ILLUSTRATOR,
    # A licence comment longer than the old 512-byte look-ahead.
    "long comment": b"<?xml version='1.0'?>\n<!--\n"
    + b"Licensed under CC-BY. " * 300
    + b"\n-->\n"
    + SVG_BODY,
    "prefixed": b'<svg:svg xmlns:svg="http://www.w3.org/2000/svg"></svg:svg>',
    "stylesheet pi": b'<?xml-stylesheet type="text/css" href="a.css"?>\n' + SVG_BODY,
    "utf-16": "\ufeff<?xml version='1.0' encoding='UTF-16'?>\n<svg/>".encode("utf-16-le"),
}

NOT_IMAGES = {
    "html with inline svg": b"<!DOCTYPE html>\n<html><body><svg></svg></body></html>",
    "xml feed": b'<?xml version="1.0"?>\n<rss><item>&lt;svg&gt;</item></rss>',
    "svg after the window": b"<?xml version='1.0'?>\n<!--" + b"x" * SNIFF_BYTES + b"-->" + SVG_BODY,
    "unterminated doctype": b"<!DOCTYPE svg [ <!ENTITY a 'b'> " + b" " * 100,
    "text starting BM": b"BMW owners club newsletter\n" + b"." * 100,
    "mp4 video": struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2",
    "json": b'{"svg": "<svg>"}',
    "empty": b"",
}


def jp2() -> bytes:
    """The JP2 signature box, then a File Type box with brand 'jp2 '."""
    signature = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
    ftyp = struct.pack(">I", 20) + b"ftyp" + b"jp2 " + b"\x00\x00\x00\x00" + b"jp2 "
    return signature + ftyp + struct.pack(">I", 45) + b"jp2h" + b"\x00" * 37


def j2k_codestream() -> bytes:
    """A raw JPEG 2000 codestream: SOC then SIZ."""
    return b"\xff\x4f\xff\x51\x00\x29\x00\x00" + b"\x00" * 40


def jxl_codestream() -> bytes:
    return b"\xff\x0a\xfa\x3f\x80\x0c" + b"\x00" * 20


def jxl_container() -> bytes:
    return (
        b"\x00\x00\x00\x0cJXL \r\n\x87\n" + struct.pack(">I", 20) + b"ftypjxl \x00\x00\x00\x00jxl "
    )


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF File Type box, then the start of a meta box."""
    box = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(box)) + b"ftyp" + box + struct.pack(">I", 33) + b"meta"


def ico() -> bytes:
    """An ICONDIR with one 16x16 entry holding a PNG."""
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, 68, 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + make_png("ad")[:68]


def bmp() -> bytes:
    """BITMAPFILEHEADER + BITMAPINFOHEADER of a 1x1, 24-bit image."""
    header = struct.pack("<2sIHHI", b"BM", 58, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, 4, 2835, 2835, 0, 0)
    return header + info + b"\x00\x00\xff\x00"


def tiff(order: bytes) -> bytes:
    """A TIFF header in either byte order, pointing at its first IFD."""
    if order == b"II":
        return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0)
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 0)


BINARIES = {
    "gif": (make_gif("ad"), "image/gif"),
    "png": (make_png("ad"), "image/png"),
    "jp2 box": (jp2(), "image/jp2"),
    "jpx box": (jp2().replace(b"ftypjp2 ", b"ftypjpx "), "image/jpx"),
    "j2k codestream": (j2k_codestream(), "image/jp2"),
    "jxl codestream": (jxl_codestream(), "image/jxl"),
    "jxl container": (jxl_container(), "image/jxl"),
    "avif": (ftyp(b"avif", b"mif1", b"miaf"), "image/avif"),
    "avif by compatible brand": (ftyp(b"mif1", b"avif", b"miaf"), "image/avif"),
    "heic": (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
    "heif": (ftyp(b"mif1", b"mif1"), "image/heif"),
    "ico": (ico(), "image/x-icon"),
    "bmp": (bmp(), "image/bmp"),
    "tiff le": (tiff(b"II"), "image/tiff"),
    "tiff be": (tiff(b"MM"), "image/tiff"),
    "webp": (b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "image/webp"),
}


@pytest.mark.parametrize("name", sorted(SVGS))
def test_real_world_svgs_are_images(name: str) -> None:
    assert sniff(SVGS[name]) == "image/svg+xml"


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_image_formats_are_recognised(name: str) -> None:
    body, kind = BINARIES[name]
    assert sniff(body) == kind


@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_other_content_is_not_an_image(name: str) -> None:
    assert sniff(NOT_IMAGES[name]) is None


def test_the_look_ahead_is_bounded() -> None:
    """Whatever follows the window is never read: a huge prolog is not an image."""
    prolog = b"<!--" + b"-" * (10 * SNIFF_BYTES)
    assert sniff(prolog + b"-->" + SVG_BODY) is None
