"""The parquet layout: shards `<data-dir>/shards/<NNNNN>.parquet`, one row per sample.

The columns are those of a webdataset sample's `.json` (imgflow/local/layouts/shards.py,
`Sample.row`; `meta` as JSON text) plus the image's bytes (`image`, binary). Rows are
written a row group per flush of the run's records, so a shard's bytes go to its
temporary file as the run goes, not into memory. Needs pyarrow (`imgflow[parquet]`);
`write_table` and `read_rows` also serve the metadata table beside a tar shard.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from imgflow.errors import ConfigError
from imgflow.local.layouts.shard_format import Sample, ShardContents
from imgflow.local.layouts.shards import DEFAULT_SHARD_SIZE, ShardLayout
from imgflow.local.memory import release


def _schema(image: bool) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("url", pa.string()),
        pa.field("key", pa.string()),
        pa.field("sample_key", pa.string()),
        pa.field("member", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("content_type", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("etag", pa.string()),
        pa.field("last_modified", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("meta", pa.string()),
    ]
    if image:
        fields.append(pa.field("image", pa.binary()))
    return pa.schema(fields)


def _columns(rows: Sequence[Mapping[str, Any]], image: bool) -> dict[str, list[Any]]:
    names = [f.name for f in _schema(image)]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        for name in names:
            value = row.get(name)
            if name == "meta":
                value = json.dumps(value, sort_keys=True) if value else None
            columns[name].append(value)
    return columns


def _write_group(writer: Any, columns: dict[str, list[Any]], image: bool, pool: Any) -> None:
    """`columns` (`_columns`, emptied here) as one row group of `writer`: each column is
    dropped as it becomes an array in `pool` (the caller hands the freed memory back)."""
    import pyarrow as pa

    schema = _schema(image)
    arrays = [pa.array(columns.pop(f.name), f.type, memory_pool=pool) for f in schema]
    writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


# The metadata table is written TABLE_ROWS rows (a row group) at a time, in the system
# allocator's memory, handed back after: a 10,000-row table converted whole peaked 36 MB
# over its rows (mimalloc keeping what it freed), 15 MB this way.
TABLE_ROWS = 1_000


def write_table(rows: Iterable[Mapping[str, Any]], out: BinaryIO) -> None:
    """The metadata rows (no image) as one Parquet file, a row group per TABLE_ROWS rows,
    made from `rows` a group at a time (so only one group's rows are ever in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(False)
    pool = pa.system_memory_pool()
    rows = iter(rows)
    with pq.ParquetWriter(out, schema, memory_pool=pool) as writer:
        group = list(itertools.islice(rows, TABLE_ROWS))
        while True:
            _write_group(writer, _columns(group, False), False, pool)
            group = list(itertools.islice(rows, TABLE_ROWS))
            if not group:
                break
    release()


def read_rows(stream: BinaryIO, *, full: bool = False) -> Iterator[dict[str, Any]]:
    """A Parquet file's metadata rows (the image column left unread): every other column
    with `full` (`meta` decoded), else those a skip needs."""
    import pyarrow.parquet as pq

    names = ["key", "bytes", "sha256", "member", "sample_key"]
    if full:
        names = [f.name for f in _schema(False)]
    table = pq.read_table(stream, columns=names)
    for row in table.to_pylist():
        if full and row["meta"]:
            row["meta"] = json.loads(row["meta"])
        yield row


# A row group is written once this many image bytes are held (or at each flush of the
# run's records): a large image is a row group of its own.
GROUP_BYTES = 1 << 20
# A group's buffers (its rows, their arrays, the writer's pages) are freed once it is
# written; the heap they leave is handed back (`release`) once this many image bytes have
# been written since the last time, not after every group: a `malloc_trim` after each
# cost 14% of a parquet run's CPU (its pages faulted in again by the next group), never
# trimming let a 10,000-sample shard's heap grow by 27 MB, and a trim every 32 MB bounds
# that to about 12 MB at 1.005x the CPU of none (docs/architecture.md).
TRIM_BYTES = 32 << 20


class ParquetWriter:
    """One Parquet shard: rows held until the next flush, written as a row group."""

    def __init__(self, stream: BinaryIO) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema(True)
        plain = [f.name for f in schema if f.name != "image"]
        # The image column is neither dictionary-encoded nor given min/max statistics,
        # which would hold (and copy into the footer) whole images.
        # Images (already compressed formats) are stored as they are.
        compression = dict.fromkeys(plain, "snappy") | {"image": "none"}
        self.pool = pa.system_memory_pool()  # freed at once, not kept by an arena
        pa.set_memory_pool(self.pool)
        self.writer = pq.ParquetWriter(
            stream,
            schema,
            use_dictionary=plain,
            write_statistics=plain,
            compression=compression,
            memory_pool=self.pool,
        )
        self.rows: list[dict[str, Any]] = []
        self.held = 0
        self.untrimmed = 0  # image bytes written since the heap was last handed back

    def add(self, sample: Sample, stream: BinaryIO) -> str:
        row = sample.row()
        row["member"] = sample.skey
        row["image"] = stream.read()
        self.rows.append(row)
        self.held += len(row["image"])
        if self.held >= GROUP_BYTES:
            self.flush()
        return sample.skey

    def flush(self) -> None:
        self.untrimmed += self.held
        self.held = 0
        if self.rows:
            rows, self.rows = self.rows, []
            columns = _columns(rows, True)
            del rows
            _write_group(self.writer, columns, True, self.pool)
        if self.untrimmed >= TRIM_BYTES:
            self.untrimmed = 0
            release()  # the groups' rows and columns, freed mid-heap: RSS stays flat

    def close(self) -> None:
        self.flush()
        self.writer.close()


class ParquetFormat:
    """Parquet shards: the shard is its own metadata table."""

    suffix = ".parquet"
    sidecar = False

    def __init__(self) -> None:
        require_pyarrow()

    def start(self, stream: BinaryIO) -> ParquetWriter:
        return ParquetWriter(stream)

    def locate(self, stream: BinaryIO) -> ShardContents:
        """The samples of a Parquet shard (raises when unreadable)."""
        import pyarrow.parquet as pq

        table = pq.read_table(stream, columns=["key", "member", "sha256", "image"])
        keys = table.column("key").to_pylist()
        members = table.column("member").to_pylist()
        digests = table.column("sha256").to_pylist()
        import pyarrow.compute as pc

        images = table.column("image")
        sizes = pc.binary_length(images).to_pylist()
        at = {member: i for i, member in enumerate(members)}
        samples = {
            str(key): (str(member), int(size or 0), str(digest))
            for key, member, digest, size in zip(keys, members, digests, sizes, strict=True)
        }

        def read_member(member: str) -> bytes:
            data = images[at[member]].as_py()
            return bytes(data or b"")

        return ShardContents(samples, read_member)

    def copy(self, source: BinaryIO, out: BinaryIO, keep: Collection[str]) -> int:
        """The rows whose member is in `keep`, a row group at a time (a shard's bytes never
        all in memory), with the writer's settings."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        wanted = pa.array(sorted(keep), pa.string())
        reader = pq.ParquetFile(source)
        writer = ParquetWriter(out)
        count = 0
        for group in range(reader.num_row_groups):
            table = reader.read_row_group(group)
            table = table.filter(pc.is_in(table.column("member"), value_set=wanted))
            if table.num_rows:
                writer.writer.write_table(table.cast(_schema(True)))
                count += table.num_rows
        writer.close()
        return count


def require_pyarrow() -> None:
    """ConfigError (one line) when pyarrow is not installed."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the parquet layout needs pyarrow: pip install 'imgflow[parquet]'"
        ) from None


def parquet_layout(shard_size: int = DEFAULT_SHARD_SIZE) -> ShardLayout:
    """The parquet layout, `shard_size` samples a shard (ConfigError without pyarrow)."""
    return ShardLayout(ParquetFormat(), shard_size)
