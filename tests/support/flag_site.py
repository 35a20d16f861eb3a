"""A static site of some of the bundled flags, to which a test can add more later."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imgflow.demo import FLAGS_DIR
from imgflow.demo.server import StaticServer, serve_directory


def publish(root: Path, path: str) -> None:
    """Copy the bundled flag `path` (such as ``ad/ad.gif``) into the site at `root`."""
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FLAGS_DIR / path, root / path)


@contextmanager
def flag_site(root: Path, paths: Iterable[str]) -> Iterator[StaticServer]:
    """Serve `root` on 127.0.0.1 with the flags `paths` in it."""
    for path in paths:
        publish(root, path)
    with serve_directory(root) as server:
        yield server
