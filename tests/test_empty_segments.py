"""A path with an empty segment (``a//b/x.png``) is requested as written and stored as an
item of its own: on S3 and GCS, ``a//b/x.png`` and ``a/b/x.png`` are different objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import imgflow_run
from support.rawserver import RawServer, ok

from imgflow.demo.images import make_gif

DOUBLE = make_gif("dd")
SINGLE = make_gif("ss")


@pytest.fixture
def raw() -> Iterator[RawServer]:
    with RawServer() as server:
        yield server


def test_a_double_slash_is_requested_and_stored_as_its_own_image(
    raw: RawServer, tmp_path: Path
) -> None:
    raw.set("/base/a//b/x.png", ok(DOUBLE, "image/gif"))
    raw.set("/base/a/b/x.png", ok(SINGLE, "image/gif"))
    doc = imgflow_run(tmp_path, raw.url("/base"), ["a//b/x.png", "a/b/x.png"])
    assert doc["summary"] == {"total": 2, "stored": 2, "skipped": 0, "failed": 0}, doc
    images = sorted(path for _, path in raw.requests if path != "/robots.txt")
    assert images == ["/base/a//b/x.png", "/base/a/b/x.png"]
    host = tmp_path / "imgflow-data" / "images" / f"127.0.0.1:{raw.port}" / "base" / "a"
    assert (host / "%" / "b" / "x.png").read_bytes() == DOUBLE
    assert (host / "b" / "x.png").read_bytes() == SINGLE
    # Run again: both are in the index, each under its own URL, and neither is fetched.
    again = imgflow_run(tmp_path, raw.url("/base"), ["a//b/x.png", "a/b/x.png"])
    assert again["summary"] == {"total": 2, "stored": 0, "skipped": 2, "failed": 0}, again
