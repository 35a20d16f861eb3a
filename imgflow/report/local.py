"""Reports of local runs: read the run from `<data-dir>/imgflow.db`, link its files.

Thumbnails are made from the stored bytes, read through the files layout
(imgflow/local/layouts/files.py). The page links each image relative to where the report
is written, so the report, the images folder and the thumbnails folder can be moved
together. `render_local` renders for the report's default place,
`<data-dir>/runs/<run-id>/report.html`, whose links (``../../images/<key>``) also resolve
when the page is served at ``/runs/<id>/report`` next to ``/images/`` and ``/thumbs/``.
"""

from __future__ import annotations

import io
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.request import pathname2url

from imgflow.engine.records import Outcome, Summary
from imgflow.errors import BackendError, UsageError
from imgflow.local.folder import DataFolder
from imgflow.local.index import has_runs
from imgflow.local.index import report as data
from imgflow.local.layouts.base import StoredReader
from imgflow.local.layouts.files import IMAGES_DIR
from imgflow.local.layouts.shard_format import SHARDS_DIR
from imgflow.local.layouts.stored import stored_reader
from imgflow.report import thumbs
from imgflow.report.model import (
    Gallery,
    GalleryItem,
    Report,
    group_exclusions,
    group_failures,
)
from imgflow.report.page import PAGE_SIZE, write_file, write_page

DB_NAME = "imgflow.db"
REPORT_NAME = "report.html"

SHARDED = (
    "Images in shards (--layout webdataset or parquet) have no file of their own: their"
    " tiles show the thumbnail and link nowhere."
)
PILLOW_MISSING = (
    "Thumbnails need Pillow (pip install 'imgflow[report]'): the gallery shows the "
    "original images, scaled by the browser, so a page of them loads more slowly."
)


def default_output(data_dir: Path, run_id: str) -> Path:
    """Where a local run's report goes unless told otherwise."""
    return data_dir / "runs" / run_id / REPORT_NAME


def file_check(data_dir: Path) -> Callable[[str], bool] | None:
    """Whether a key's image is a file under `images/`, when the folder also holds shards
    (a shard's sample has no file of its own to link to); None: every image is a file."""
    if not (data_dir / SHARDS_DIR).is_dir():
        return None
    images = data_dir / IMAGES_DIR

    def is_file(key: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(images / key).st_mode)
        except (OSError, ValueError):
            return False

    return is_file


def _link(is_file: Callable[[str], bool] | None, key: str) -> str | None:
    """A gallery item's link: None for the gallery's base + the key, "" for none."""
    return None if is_file is None or is_file(key) else ""


def _link_base(target: Path, report_dir: Path) -> str:
    """`target` (a folder) as a URL relative to the report's folder, ending in '/'."""
    try:
        relative = os.path.relpath(target.absolute(), report_dir.absolute())
    except ValueError:  # another drive: an absolute file URL
        return target.absolute().as_uri() + "/"
    return pathname2url(relative) + "/"


def resolve_run(data_dir: Path, run_id: str | None) -> str:
    """The run to report: `run_id`, or the newest run in the data folder."""
    db_path = data_dir / DB_NAME
    if not has_runs(db_path):
        raise UsageError(f"no runs yet in {data_dir}")
    conn = data.connect(db_path)
    try:
        found = run_id if run_id is not None else data.latest_run(conn)
        if found is None:
            raise UsageError(f"no runs yet in {data_dir}")
        if data.run_row(conn, found) is None:
            raise UsageError(f"run {found!r} not found in {db_path}")
        return found
    finally:
        conn.close()


def make_thumbnails(
    data_dir: Path, run_id: str, on_made: Callable[[int], None] | None = None
) -> int:
    """Make the missing thumbnails of a run's images (Pillow needed); how many were made."""
    if not thumbs.pillow_available():
        return 0
    conn = data.connect(data_dir / DB_NAME, data_dir / thumbs.THUMBS_DIR / thumbs.INDEX_NAME)
    try:
        todo = (
            (row.sha256, row.key)
            for row in data.stored(conn, run_id)
            if row.sha256 is not None and row.thumb is None and row.width == 0
        )
        with _stored(data_dir) as reader:
            return thumbs.make_missing(data_dir, todo, reader.open_stored, on_made=on_made)
    finally:
        conn.close()


@contextmanager
def _stored(data_dir: Path) -> Iterator[StoredReader]:
    """The data folder's stored images, read through its layout."""
    folder = DataFolder(data_dir, create=False)
    try:
        reader = stored_reader(folder)
        try:
            yield reader
        finally:
            reader.close()
    finally:
        folder.close()


def local_report(
    conn: sqlite3.Connection,
    data_dir: Path,
    run_id: str,
    report_dir: Path,
    embed_thumbnails: bool = False,
) -> Report:
    """The report of a local run; its gallery reads `conn` again when the page is written."""
    row = data.run_row(conn, run_id)
    if row is None:
        raise UsageError(f"run {run_id!r} not found in {data_dir / DB_NAME}")
    counts = data.counts(conn, run_id)
    n = counts.records
    summary = Summary.of_counts(n)
    pending = n.get(data.PENDING, 0)
    notes: list[str] = []
    if pending:
        have = "1 path has" if pending == 1 else f"{pending:,} paths have"
        notes.append(f"This run has not finished ({row.state}): {have} no result yet.")
    pillow = thumbs.pillow_available()
    gallery_notes: list[str] = []
    if not pillow:
        gallery_notes.append(PILLOW_MISSING)
    ext = thumbs.thumb_format()[0] if pillow else "webp"

    is_file = file_check(data_dir)
    if is_file is not None:
        gallery_notes.append(SHARDED)

    def items() -> Iterator[GalleryItem]:
        rows = data.stored(conn, run_id)
        if embed_thumbnails and pillow:
            with _stored(data_dir) as reader:
                yield from _embedded(rows, reader, is_file)
            return
        for r in rows:
            link = _link(is_file, r.key)
            yield GalleryItem(r.key, r.bytes, r.width, r.height, r.thumb, link, r.caption)

    gallery = Gallery(
        count=summary.stored + summary.skipped,
        items=items,
        base=_link_base(data_dir / IMAGES_DIR, report_dir),
        thumb_base=_link_base(data_dir / thumbs.THUMBS_DIR, report_dir),
        thumb_ext=ext,
        notes=tuple(gallery_notes),
    )
    return Report(
        run_id=row.id,
        backend=row.backend,
        base_url=row.base_url,
        state=row.state,
        started_at=row.started_at,
        finished_at=row.finished_at,
        summary=summary,
        pending=pending,
        duplicates=row.duplicates,
        stored_bytes=_bytes_of(counts.bytes, Outcome.STORED),
        skipped_bytes=_bytes_of(counts.bytes, Outcome.SKIPPED),
        timeline=data.timeline(conn, run_id, row.started_at),
        hosts=data.hosts(conn, run_id, row.base_url),
        failures=group_failures(data.failures(conn, run_id)),
        retry_command=f"imgflow retry {run_id}",
        gallery=gallery,
        notes=tuple(notes),
        excluded=group_exclusions(data.exclusions(conn, run_id)),
    )


def _embedded(
    rows: Iterator[data.StoredRow],
    reader: StoredReader,
    is_file: Callable[[str], bool] | None,
) -> Iterator[GalleryItem]:
    """Gallery items with their thumbnails made now and embedded, a few threads at once."""

    def embed(row: data.StoredRow) -> GalleryItem:
        made = thumbs.stored_thumbnail(reader.open_stored, row.key, thumbs.EMBED_SIZE, 70)
        uri = thumbs.data_uri(made)
        link = _link(is_file, row.key)
        return GalleryItem(row.key, row.bytes, made.width, made.height, uri, link, row.caption)

    yield from thumbs.in_threads(embed, rows)


def _connect(data_dir: Path) -> sqlite3.Connection:
    return data.connect(data_dir / DB_NAME, data_dir / thumbs.THUMBS_DIR / thumbs.INDEX_NAME)


def render_local(data_dir: Path, run_id: str) -> str:
    """The HTML of a local run's report, linked as if at `<data-dir>/runs/<id>/report.html`.

    Thumbnails already made are used; none are made here (see `make_thumbnails`).
    """
    conn = _connect(data_dir)
    try:
        report = local_report(conn, data_dir, run_id, default_output(data_dir, run_id).parent)
        buffer = io.StringIO()
        write_page(report, buffer)
        return buffer.getvalue()
    finally:
        conn.close()


def write_local(
    data_dir: Path,
    run_id: str,
    output: Path | None = None,
    *,
    thumbnails: bool = True,
    embed_thumbnails: bool = False,
    page_size: int | None = None,
) -> Path:
    """Write a local run's report (making missing thumbnails first); the file written."""
    target = (output or default_output(data_dir, run_id)).absolute()
    if thumbnails and not embed_thumbnails:
        try:
            make_thumbnails(data_dir, run_id)
        except (OSError, sqlite3.Error) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise BackendError(
                f"cannot write thumbnails in {data_dir / thumbs.THUMBS_DIR}: {detail}"
            ) from None
    conn = _connect(data_dir)
    try:
        report = local_report(conn, data_dir, run_id, target.parent, embed_thumbnails)
        return write_file(report, target, page_size or PAGE_SIZE)
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read {data_dir / DB_NAME}: {exc}") from None
    finally:
        conn.close()


def _bytes_of(by_outcome: Mapping[str, int], counted: Outcome) -> int:
    """Bytes of the records a summary counts as `counted` (updated ones are stored...)."""
    return sum(size for value, size in by_outcome.items() if _counted(value) is counted)


def _counted(value: str) -> Outcome | None:
    try:
        return Outcome(value).counted_as
    except ValueError:  # pending
        return None
