"""An S3 client stand-in that keeps objects in files, for measuring a handler's own memory.

moto holds every object in the test process's memory, so a handler's peak measured under
moto counts the objects it wrote. `DiskS3` answers the few calls the plan and consolidate
steps make (PutObject, GetObject with a streamed body, ListObjectsV2 through a paginator)
from a folder, streaming in both directions, so what is measured is the handler's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from botocore.response import StreamingBody

# What a PutObject body is copied by. Reads of 1 MB made the measured peak grow with the
# object up to 1 MB (the double's buffer, not the handler's): consolidate's peak on 20,000
# failures was 1.8 times that on 2,000, near the tests' bound of 2.
CHUNK = 16 * 1024


class _Paginator:
    def __init__(self, root: Path) -> None:
        self._root = root

    def paginate(self, Bucket: str, Prefix: str = "") -> Iterator[dict[str, Any]]:
        folder = self._root / Bucket
        keys = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        found = [k for k in keys if k.startswith(Prefix)]
        for start in range(0, len(found), 1000):
            yield {"Contents": [{"Key": key} for key in found[start : start + 1000]]}


class DiskS3:
    """PutObject, GetObject and list_objects_v2 pages over files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def put_object(self, Bucket: str, Key: str, Body: bytes | IO[bytes], **_: Any) -> None:
        path = self._path(Bucket, Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            if isinstance(Body, bytes):
                out.write(Body)
            else:
                shutil.copyfileobj(Body, out, CHUNK)

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        path = self._path(Bucket, Key)
        size = path.stat().st_size
        return {"Body": StreamingBody(open(path, "rb"), size), "ContentLength": size}

    def get_paginator(self, name: str) -> _Paginator:
        assert name == "list_objects_v2"
        return _Paginator(self.root)
