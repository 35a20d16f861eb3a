"""Thumbnails for the report's gallery, made with Pillow (the optional `imgflow[report]`).

Thumbnails are cached by content in `<data-dir>/thumbs/`: `thumbs.db` maps an image's
sha256 to a number, its dimensions and whether a thumbnail was made, and thumbnail number
n is the file `thumbs/<n // 1000>/<n>.<ext>`. An image stored twice, or reported twice,
is thumbnailed once. Without Pillow nothing is made and the gallery shows the originals.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TypeVar

T = TypeVar("T")
R = TypeVar("R")

THUMBS_DIR = "thumbs"
INDEX_NAME = "thumbs.db"
SIZE = 256
EMBED_SIZE = 160
CHUNK = 256

SCHEMA = """
CREATE TABLE IF NOT EXISTS thumbs (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    width INTEGER,
    height INTEGER,
    made INTEGER NOT NULL
);
"""


def pillow_available() -> bool:
    """True when Pillow can be imported."""
    return importlib.util.find_spec("PIL") is not None


def thumb_format() -> tuple[str, str]:
    """(file extension, Pillow format) of thumbnails: WebP where Pillow has it, else PNG."""
    from PIL import features

    return ("webp", "WEBP") if features.check("webp") else ("png", "PNG")


@dataclass(frozen=True)
class Thumbnail:
    """An image's dimensions and its thumbnail (None when Pillow could not read it)."""

    width: int
    height: int
    data: bytes | None


def make_thumbnail(source: BinaryIO, size: int = SIZE, quality: int = 80) -> Thumbnail:
    """Read an image's dimensions and make a thumbnail at most `size` pixels on each side."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            width, height = image.size
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            image.thumbnail((size, size))
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            converted = image.convert("RGBA" if has_alpha else "RGB")
            buffer = io.BytesIO()
            converted.save(buffer, thumb_format()[1], quality=quality)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return Thumbnail(0, 0, None)
    return Thumbnail(width, height, buffer.getvalue())


def stored_thumbnail(
    open_stored: Callable[[str], BinaryIO], key: str, size: int = SIZE, quality: int = 80
) -> Thumbnail:
    """`make_thumbnail` of a stored image, read with `open_stored`; none when it is gone."""
    try:
        source = open_stored(key)
    except OSError:
        return Thumbnail(0, 0, None)
    with source:
        return make_thumbnail(source, size, quality)


def data_uri(thumb: Thumbnail) -> str | None:
    """The thumbnail as a ``data:`` URI, to embed in a page."""
    if thumb.data is None:
        return None
    kind = thumb_format()[0]
    return f"data:image/{kind};base64," + base64.b64encode(thumb.data).decode("ascii")


def thumb_file(root: Path, number: int, ext: str) -> Path:
    """The file of thumbnail `number` under `root` (the thumbs folder)."""
    return root / str(number // 1000) / f"{number}.{ext}"


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """`items` in lists of at most `size`."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def in_threads(work: Callable[[T], R], items: Iterable[T], workers: int = 4) -> Iterator[R]:
    """`work` applied to each item by a few threads, in order, a chunk at a time (so at
    most a chunk of results is held)."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, 2 * (os.cpu_count() or 1)))) as pool:
        for chunk in chunks(items, 64):
            yield from pool.map(work, chunk)


def make_missing(
    data_dir: Path,
    images: Iterable[tuple[str, str]],
    open_stored: Callable[[str], BinaryIO],
    workers: int | None = None,
    on_made: Callable[[int], None] | None = None,
) -> int:
    """Make the thumbnails of (sha256, key) pairs not in the cache yet; how many were made.

    The images are read with `open_stored` a chunk at a time by a few threads; each chunk's
    rows are saved in one transaction after its files are in place, so an interrupted run
    leaves no row without its file.
    """
    root = data_dir / THUMBS_DIR
    root.mkdir(parents=True, exist_ok=True)
    ext = thumb_format()[0]
    conn = sqlite3.connect(root / INDEX_NAME, isolation_level=None)
    made = 0
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.executescript(SCHEMA)
        threads = workers or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for chunk in chunks(images):
                fresh = [(sha, key) for sha, key in chunk if not _known(conn, sha)]
                done = list(pool.map(lambda pair: stored_thumbnail(open_stored, pair[1]), fresh))
                made += _save(
                    conn, root, ext, [(sha, t) for (sha, _), t in zip(fresh, done, strict=True)]
                )
                if on_made is not None:
                    on_made(made)
    finally:
        conn.close()
    return made


def _known(conn: sqlite3.Connection, sha: str) -> bool:
    return conn.execute("SELECT 1 FROM thumbs WHERE sha256 = ?", (sha,)).fetchone() is not None


def _save(
    conn: sqlite3.Connection, root: Path, ext: str, made: Iterable[tuple[str, Thumbnail]]
) -> int:
    count = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sha, thumb in made:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO thumbs (sha256, width, height, made) VALUES (?, ?, ?, ?)",
                (sha, thumb.width, thumb.height, int(thumb.data is not None)),
            )
            if cursor.rowcount == 0 or thumb.data is None or cursor.lastrowid is None:
                continue
            target = thumb_file(root, cursor.lastrowid, ext)
            target.parent.mkdir(exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(thumb.data)
            os.replace(partial, target)
            count += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return count
