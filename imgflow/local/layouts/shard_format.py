"""What a shard file format is (`ShardFormat`, `ShardWriter`), what it holds (`Sample`,
`ShardContents`), and which format a shard file's name says (`format_of`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from imgflow.engine.samples import sample_row

SHARDS_DIR = "shards"
_SHARD_NAME = re.compile(r"^(\d{5,})\.(tar|parquet)$")


def shard_number(name: str) -> int | None:
    """The number of a shard file's name (`00012.tar` -> 12); None for any other name."""
    found = _SHARD_NAME.match(name)
    return int(found.group(1)) if found else None


@dataclass
class Sample:
    """One image with what a shard says of it."""

    url: str
    key: str
    data: bytes | None  # the bytes, or None when they are in `part`
    part: str | None  # a part file's name in the run's tmp folder
    size: int
    sha256: str
    content_type: str | None
    etag: str | None
    last_modified: str | None
    meta: Mapping[str, Any]
    width: int | None = None
    height: int | None = None
    _row: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def skey(self) -> str:
        return str(self._columns()["sample_key"])

    @property
    def caption(self) -> str | None:
        caption = self.meta.get("caption")
        return None if caption is None else str(caption)

    def row(self) -> dict[str, Any]:
        """The metadata columns (the `.json` member, a metadata table's row): a new dict
        each call (a caller may add to it), the columns made once a sample."""
        return dict(self._columns())

    def _columns(self) -> dict[str, Any]:
        if self._row is not None:
            return self._row
        self._row = sample_row(
            self.url,
            self.key,
            size=self.size,
            sha256=self.sha256,
            content_type=self.content_type,
            width=self.width,
            height=self.height,
            etag=self.etag,
            last_modified=self.last_modified,
            meta=self.meta,
        )
        return self._row


class ShardWriter(Protocol):
    """One shard being written into a temporary file."""

    def add(self, sample: Sample, stream: BinaryIO) -> str:
        """Append the sample (its image read from `stream`); its member name."""
        ...

    def flush(self) -> None:
        """Write out what is held (a Parquet row group)."""
        ...

    def close(self) -> None:
        """Finish the format (a tar's end blocks, a Parquet footer); the file stays open."""
        ...


class ShardFormat(Protocol):
    """A shard file format."""

    suffix: str  # ".tar", ".parquet"
    sidecar: bool  # a metadata table is written beside the shard

    def start(self, stream: BinaryIO) -> ShardWriter:
        """A writer of a new shard into `stream`."""
        ...

    def locate(self, stream: BinaryIO) -> ShardContents:
        """What a committed shard holds (raises on a shard that cannot be read)."""
        ...

    def copy(self, source: BinaryIO, out: BinaryIO, keep: Collection[str]) -> int:
        """Write into `out` a shard of the samples of `source` whose members are in `keep`
        (the rewrite of a shard without superseded samples); how many it holds."""
        ...


@dataclass
class ShardContents:
    """A readable shard: key -> (member, size, sha256), and how to read a member's bytes."""

    samples: dict[str, tuple[str, int, str]]
    read: Callable[[str], bytes]


def have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def format_of(name: str) -> ShardFormat:
    """The format of a shard file by its name's suffix."""
    if name.endswith(".tar"):
        from imgflow.local.layouts.webdataset import WebDatasetFormat

        return WebDatasetFormat()
    from imgflow.local.layouts.parquet import ParquetFormat

    return ParquetFormat()
