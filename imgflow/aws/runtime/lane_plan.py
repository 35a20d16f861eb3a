"""Plan a ``urls`` job in lanes (one per host), streamed: memory flat in the number of rows.

The entries are read as they arrive (a job object written in lines, job_lines.py) and go
through /tmp twice, as the paths of a seed job do (unique.py):

1. repeated URLs are dropped, the first one (with its meta) kept: each item is a line
   ``<url>\\t<item JSON>`` deduplicated on its URL through `UniquePaths`;
2. the survivors are grouped by host, hosts in order of their first item and each host's
   items in order: each line gets ``<host rank>\\t<sequence>`` in front and goes to the
   partition file of its host's hash; each partition is sorted on its own (memory: one
   partition) and the partitions are merged (heapq.merge, a line per file in memory).

Each host's items are then cut into batches (plan.split_batches) whose specs are spooled
until the host's last batch number is known (every spec of a lane names it); then the
batch objects are written (at most WRITE_AHEAD PutObjects queued) and the manifest row
of each spec is yielded. What memory holds besides one partition: a rank per host and a
LaneRef per lane (so it grows with the number of hosts, not of rows), and the rejected
entries (each a failed record written by the plan).
"""

from __future__ import annotations

import heapq
import itertools
import json
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from imgflow.aws.runtime import jobs
from imgflow.aws.runtime.jobs import (
    BatchSpec,
    LaneRef,
    batch_key,
    item_from_json,
    item_json,
    put_json,
)
from imgflow.aws.runtime.unique import UniquePaths
from imgflow.engine.plan import Item
from imgflow.errors import JobError
from imgflow.sources.job_json import URLS_FIELD, Rejected, url_item, urls_from_document
from imgflow.sources.job_json import _given as given_text

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

WRITE_THREADS = 16  # PutObjects of batch objects at once
WRITE_AHEAD = 4 * WRITE_THREADS  # batch objects queued for writing at most
BUFFER = 1 << 13


def stream_concurrency(header: dict[str, Any], label: str) -> int | None:
    """The lambdaConcur of a streamed ``urls`` job, its other fields checked as a body's."""
    # The body parser checks the fields; one placeholder entry stands for the list.
    return urls_from_document(
        {**header, URLS_FIELD: ["https://placeholder.invalid/"]}, label
    ).concurrency


def entries_of(entries: Iterable[Any], label: str) -> Iterator[Item | Rejected]:
    """Each ``urls`` entry as an item, or as Rejected (with the body parser's message)."""
    empty = True
    for index, entry in enumerate(entries):
        empty = False
        try:
            yield url_item(entry, f"{label} urls[{index}]")
        except JobError as exc:
            yield Rejected(index, given_text(entry), str(exc), entry)
    if empty:
        raise JobError(f"{label}: urls is empty")


class UniqueItems:
    """The items of `entries` without repeated URLs (the first kept), in order; the
    rejected entries aside; the counts once iterated."""

    def __init__(self, entries: Iterable[Item | Rejected], partitions: int) -> None:
        self._entries = entries
        self._partitions = partitions
        self.rejected: list[Rejected] = []
        self.unique = 0
        self.total = 0  # items read (rejected entries not counted)

    def _lines(self) -> Iterator[str]:
        for entry in self._entries:
            if isinstance(entry, Rejected):
                self.rejected.append(entry)
                continue
            self.total += 1
            yield f"{entry.url}\t{json.dumps(item_json(entry), separators=(',', ':'))}"

    def __iter__(self) -> Iterator[Item]:
        unique = UniquePaths(self._lines(), self._partitions, key=_url_of)
        for line in unique:
            self.unique += 1
            yield item_from_json(json.loads(line.split("\t", 1)[1]))


def _url_of(line: str) -> str:
    return line.split("\t", 1)[0]


def by_host(
    items: Iterable[Item], host_of: Callable[[str], str], partitions: int
) -> Iterator[Iterator[Item]]:
    """Each host's items as an iterator, hosts in order of their first item."""
    ranks: dict[str, int] = {}
    rows = ((ranks.setdefault(host_of(item.url), len(ranks)), item) for item in items)
    grouped = _sorted_rows(rows, partitions)
    for _, group in itertools.groupby(grouped, key=lambda row: row[0]):
        yield (item for _, item in group)


def _sorted_rows(rows: Iterable[tuple[int, Item]], partitions: int) -> Iterator[tuple[int, Item]]:
    """`rows` stably sorted on their rank: in memory, or through `partitions` files."""
    if partitions <= 1:
        yield from sorted(rows, key=lambda row: row[0])
        return
    with tempfile.TemporaryDirectory(prefix="imgflow-lanes-") as folder:
        names = [Path(folder) / f"part-{n}" for n in range(partitions)]
        with ExitStack() as stack:
            files = [stack.enter_context(_open(name, "w")) for name in names]
            for sequence, (rank, item) in enumerate(rows):
                line = json.dumps(item_json(item), separators=(",", ":"))
                files[zlib.crc32(str(rank).encode()) % partitions].write(
                    f"{rank}\t{sequence}\t{line}\n"
                )
        for name in names:
            _sort_file(name)
        with ExitStack() as stack:
            opened = [stack.enter_context(_open(name, "r")) for name in names]
            for rank, _, line in heapq.merge(*(_rows(f) for f in opened)):
                yield rank, item_from_json(json.loads(line))


def _open(name: Path, mode: str) -> IO[str]:
    return open(name, mode, encoding="utf-8", buffering=BUFFER)


def _rows(lines: IO[str]) -> Iterator[tuple[int, int, str]]:
    for line in lines:
        rank, sequence, data = line.rstrip("\n").split("\t", 2)
        yield int(rank), int(sequence), data


def _sort_file(name: Path) -> None:
    with _open(name, "r") as lines:
        rows = sorted(_rows(lines))
    with _open(name, "w") as out:
        for rank, sequence, data in rows:
            out.write(f"{rank}\t{sequence}\t{data}\n")


class LaneWriter:
    """Writes each lane's batch objects (with the lane's last batch number) and yields the
    manifest rows; keeps a LaneRef per lane."""

    def __init__(self, s3: S3Client, bucket: str, job_id: str) -> None:
        self._s3, self._bucket, self._job_id = s3, bucket, job_id
        self.refs: list[LaneRef] = []
        self._pending: list[Future[None]] = []

    def rows(self, pool: ThreadPoolExecutor, lanes: Iterable[Iterable[BatchSpec]]) -> Iterator[Any]:
        """The manifest rows of every lane's specs, each batch object written."""
        for lane in lanes:
            with tempfile.SpooledTemporaryFile(max_size=jobs.SPOOL_BYTES, mode="w+") as spool:
                first = last = -1
                for spec in lane:
                    first = spec.batch if first < 0 else first
                    last = spec.batch
                    spool.write(json.dumps(spec.to_json(), separators=(",", ":")) + "\n")
                spool.seek(0)
                for line in spool:
                    row = {**json.loads(line), "last": last}
                    self._put(pool, row)
                    yield row
            self.refs.append(LaneRef(self._job_id, first, last))
        for future in self._pending:
            future.result()

    def _put(self, pool: ThreadPoolExecutor, row: dict[str, Any]) -> None:
        if len(self._pending) >= WRITE_AHEAD:
            self._pending.pop(0).result()
        key = batch_key(self._job_id, int(row["batch"]))
        self._pending.append(pool.submit(put_json, self._s3, self._bucket, key, row))
