"""The sample image encoders make valid, deterministic images of the sizes asked for."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest

from imgflow.demo import FLAGS_DIR, PATHS_FILE
from imgflow.demo.generate import FLAG_SIZE, MISSING, flag_paths, read_paths, write_flags
from imgflow.demo.images import (
    flag_pattern,
    lzw_encode,
    make_gif,
    make_image,
    make_jpeg,
    make_png,
    padded,
)

NAMES = ["ad/ad.gif", "br/br.gif", "zz/zz.gif", "a", "sample-42"]
TARGETS = [2_000, 10_000, 30_000, 70_000, 140_000]


# --- minimal independent readers ------------------------------------------------------------


def gif_pixels(data: bytes) -> tuple[int, int, list[int]]:
    """Width, height and palette indexes of a single-image GIF with a global palette."""
    assert data[:6] == b"GIF89a"
    width, height, packed = struct.unpack("<HHB", data[6:11])
    assert packed & 0x80, "global colour table expected"
    pos = 13 + 3 * (2 << (packed & 7))
    image: list[int] | None = None
    while data[pos] != 0x3B:
        if data[pos] == 0x21:
            _, pos = read_sub_blocks(data, pos + 2)
        else:
            assert data[pos] == 0x2C
            assert struct.unpack("<HHHH", data[pos + 1 : pos + 9]) == (0, 0, width, height)
            min_code_size = data[pos + 10]
            lzw, pos = read_sub_blocks(data, pos + 11)
            image = lzw_decode(lzw, min_code_size)
    assert pos == len(data) - 1, "trailer must be the last byte"
    assert image is not None
    return width, height, image


def read_sub_blocks(data: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while data[pos]:
        out += data[pos + 1 : pos + 1 + data[pos]]
        pos += 1 + data[pos]
    return bytes(out), pos + 1


def lzw_decode(data: bytes, min_code_size: int) -> list[int]:
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    bits = int.from_bytes(data, "little")
    pos, width = 0, min_code_size + 1
    table: list[bytes] = []
    previous: bytes | None = None
    out: list[int] = []
    while True:
        code = (bits >> pos) & ((1 << width) - 1)
        pos += width
        assert pos <= 8 * len(data), "ran out of data before the end code"
        if code == clear:
            table = [bytes((i,)) for i in range(clear)] + [b"", b""]
            width, previous = min_code_size + 1, None
            continue
        if code == end:
            return out
        if previous is None:
            entry = table[code]
        else:
            entry = table[code] if code < len(table) else previous + previous[:1]
            table.append(previous + entry[:1])
        out.extend(entry)
        previous = entry
        if len(table) == 1 << width and width < 12:
            width += 1


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """Markers and payloads up to SOS; checks the scan is properly stuffed and ends in EOI."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    segments, pos = [], 2
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:
            break
    scan = data[pos:-2]
    assert scan and all(scan[i + 1] == 0 for i in range(len(scan) - 1) if scan[i] == 0xFF)
    assert scan[-1] != 0xFF
    return segments


# --- GIF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_gif_decodes_to_the_flag_pattern(name: str) -> None:
    width, height, pixels = gif_pixels(make_gif(name, 16))
    assert (width, height) == (16, 16)
    assert pixels == flag_pattern(name, 16)[1]
    assert 2 <= len(set(pixels)) <= 4


def test_lzw_round_trips_through_full_code_tables() -> None:
    noise = random.Random(7)
    pixels = [noise.randrange(4) for _ in range(30_000)]
    assert lzw_decode(lzw_encode(pixels, 2), 2) == pixels


# --- PNG ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_png_chunks_and_pixels(name: str) -> None:
    chunks = png_chunks(make_png(name, 12))
    kinds = [kind for kind, _ in chunks]
    assert kinds == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (12, 12, 8, 3, 0, 0, 0)
    rows = zlib.decompress(chunks[2][1])
    assert len(rows) == 12 * 13 and all(rows[y * 13] == 0 for y in range(12))
    pixels = [b for y in range(12) for b in rows[y * 13 + 1 : (y + 1) * 13]]
    assert pixels == flag_pattern(name, 12)[1]


# --- JPEG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 16, 37])
def test_jpeg_is_a_baseline_jfif(size: int) -> None:
    segments = dict(jpeg_segments(make_jpeg("ad/ad.gif", size=size)))
    assert segments[0xE0].startswith(b"JFIF\x00")
    precision, height, width, components = struct.unpack(">BHHB", segments[0xC0][:6])
    assert (precision, height, width, components) == (8, size, size, 3)
    assert len(segments[0xDB]) == 65


# --- sizes, padding, determinism ----------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_padded_images_hit_the_target_and_stay_valid(target: int) -> None:
    gif = make_gif("ad/ad.gif", target_bytes=target)
    png = make_png("ad/ad.gif", target_bytes=target)
    jpeg = make_jpeg("ad/ad.gif", target)
    assert (len(gif), len(png), len(jpeg)) == (target, target, target)
    assert gif_pixels(gif)[2] == gif_pixels(make_gif("ad/ad.gif"))[2]
    assert [kind for kind, _ in png_chunks(png)][-2:] == [b"tEXt", b"IEND"]
    assert [marker for marker, _ in jpeg_segments(jpeg)][:2] == [0xE0, 0xFE]


def test_padding_never_shrinks_and_refuses_tiny_gaps() -> None:
    gif = make_gif("x")
    assert padded(gif, 10) == gif
    assert len(padded(gif, len(gif) + 5)) == len(gif) + 5
    with pytest.raises(ValueError):
        padded(gif, len(gif) + 4)
    with pytest.raises(ValueError):
        padded(make_png("x"), len(make_png("x")) + 19)
    with pytest.raises(ValueError):
        padded(b"not an image", 100)


def test_same_name_same_bytes_other_name_other_bytes() -> None:
    for make in (make_gif, make_png, make_jpeg):
        assert make("ad/ad.gif") == make("ad/ad.gif")
    assert make_gif("ad/ad.gif") != make_gif("ae/ae.gif")


def test_make_image_picks_the_format_by_suffix() -> None:
    assert make_image("a/b.gif").startswith(b"GIF89a")
    assert make_image("a/b.PNG").startswith(b"\x89PNG")
    assert make_image("a/b.jpeg", 5_000)[:2] == b"\xff\xd8"
    assert len(make_image("a/b.jpg", 5_000)) == 5_000
    with pytest.raises(ValueError):
        make_image("a/b.bmp")
    with pytest.raises(ValueError):
        make_gif("a", 0)


# --- the bundled flag set -----------------------------------------------------------------------


def test_paths_file_lists_the_demo_job() -> None:
    paths = read_paths(PATHS_FILE)
    assert len(paths) == 103 and paths[-1] == "zz/zz.gif"
    assert paths.count("ht/ht.gif") == 2


def test_bundled_flags_match_the_generator(tmp_path: Path) -> None:
    expected = flag_paths(read_paths(PATHS_FILE))
    bundled = sorted(p.relative_to(FLAGS_DIR).as_posix() for p in FLAGS_DIR.glob("*/*.gif"))
    assert bundled == expected
    assert {"us/us.gif", "mx/mx.gif"} <= set(bundled) and not MISSING & set(bundled)
    write_flags(tmp_path / "flags")
    for path in expected:
        data = (FLAGS_DIR / path).read_bytes()
        assert len(data) < 1024
        assert data == (tmp_path / "flags" / path).read_bytes() == make_gif(path, FLAG_SIZE)
