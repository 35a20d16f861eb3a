"""The image corpora: paths in a two-level tree, written once under bench/work/."""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.paths import MB, ROOT

SUFFIXES = (".gif", ".png", ".jpg")


def corpus_paths(count: int) -> list[str]:
    """`count` distinct paths in a two-level tree such as ``3f/3f9a1c2e07b4.png``."""
    paths = []
    for i in range(count):
        digest = hashlib.sha1(str(i).encode()).hexdigest()
        paths.append(f"{digest[:2]}/{digest[:12]}{SUFFIXES[i % 3]}")
    return paths


def write_images(root: Path, marker: str, images: Sequence[tuple[str, int]], what: str) -> None:
    """Write each (path, size) image under `root` once: `marker` keeps them between runs."""
    done = root / marker
    if done.exists():
        return
    sys.path.insert(0, str(ROOT))
    from imgflow.demo.images import make_image

    print(f"generating {what} under {root} ...", flush=True)
    for path, size in images:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(make_image(path, size))
    done.touch()


def make_corpus(root: Path, count: int) -> None:
    """Write `count` images of 2-30 KB under `root` (kept between runs)."""
    paths = corpus_paths(count)
    images = [(path, random.Random(i).randint(2048, 30720)) for i, path in enumerate(paths)]
    write_images(root, f".complete-v2-{count}", images, f"{count:,} images")


def large_paths(count: int) -> list[tuple[str, int]]:
    """`count` (path, size) pairs of 1-8 MB images, such as ``l/3f9a1c2e07b4.jpg``."""
    pairs = []
    for i in range(count):
        digest = hashlib.sha1(f"large-{i}".encode()).hexdigest()
        size = random.Random(f"large-{i}").randint(1 * MB, 8 * MB)
        pairs.append((f"l/{digest[:12]}{SUFFIXES[i % 3]}", size))
    return pairs


def make_large_corpus(root: Path, count: int) -> None:
    """Write `count` images of 1-8 MB under `root` (kept between runs)."""
    write_images(root, f".complete-large-{count}", large_paths(count), f"{count} large images")
