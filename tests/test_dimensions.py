"""An image's width and height read from its first bytes (engine/body.py `dimensions`):
GIF, PNG and JPEG are read without imagesize's general reader, and must say exactly what
imagesize says, for whole, cut and damaged headers alike."""

from __future__ import annotations

import io
import random
import struct

import imagesize
import pytest

from imgflow.demo.images import make_gif, make_jpeg, make_png
from imgflow.engine.body import dimensions


def _imagesize(data: bytes) -> tuple[int, int] | None:
    width, height = imagesize.get(io.BytesIO(data), exif_rotation=False)
    return (width, height) if width > 0 and height > 0 else None


def _sized(kind: str, width: int, height: int) -> bytes:
    """A demo image whose header says width x height (its pixels are not read)."""
    if kind == "gif":
        data = bytearray(make_gif("fr", target_bytes=3000))
        data[6:10] = struct.pack("<HH", width, height)
    elif kind == "png":
        data = bytearray(make_png("fr", target_bytes=3000))
        data[16:24] = struct.pack(">II", width, height)
    else:
        data = bytearray(make_jpeg("fr", target_bytes=3000))  # comments before the frame
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("kind", ["gif", "png", "jpeg"])
def test_width_and_height_are_what_imagesize_reads(kind: str) -> None:
    data = _sized(kind, 50, 30)
    assert dimensions(data) == (50, 30) == _imagesize(data)
    shuffle = random.Random(kind)
    for cut in [0, 1, 2, 9, 10, 25, 26, *shuffle.sample(range(len(data)), 40)]:
        assert dimensions(data[:cut]) == _imagesize(data[:cut]), cut
    for _ in range(150):  # one byte of the header changed
        damaged = bytearray(data)
        damaged[shuffle.randrange(min(len(data), 400))] = shuffle.randrange(256)
        assert dimensions(bytes(damaged)) == _imagesize(bytes(damaged))


def test_other_formats_go_to_imagesize() -> None:
    bmp = b"BM" + b"\x00" * 16 + struct.pack("<ll", 7, -5) + b"\x00" * 30
    assert dimensions(bmp) == (7, 5) == _imagesize(bmp)
    assert dimensions(b"not an image at all") is None
