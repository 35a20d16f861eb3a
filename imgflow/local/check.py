"""`imgflow check [--repair]`: the index against what is stored, byte for byte.

Every index row's object must be stored (in the files layout: a regular file under
`images/`; in a shard layout: a sample of a shard under `shards/`), with the row's size
and sha256; every stored object must have a row. With
`repair`, rows whose object is gone or wrong are forgotten (and wrong objects removed: a
shard is rewritten without the sample, imgflow/local/layouts/shard_rewrite.py), so the next
run fetches those images again; orphans (objects the layout made, without a row)
are removed; an object whose bytes are right but whose modification time changed gets its
new time recorded. Links and other things imgflow never makes are listed, never touched.
The stored bytes are read through the layout (imgflow/local/layouts/). The check holds the
folder's lock, so it never sees a run between a file's rename and its index row (plain check
reads a folder on a read-only file system without it: no run can write there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgflow.local.digest import sha256_of
from imgflow.local.folder import DataFolder
from imgflow.local.index import sqlite_errors
from imgflow.local.layouts.base import Layout, StoredReader
from imgflow.local.layouts.shard_rewrite import mend_folder
from imgflow.local.layouts.stored import stored_reader
from imgflow.local.safefs import StorageError


@dataclass
class CheckReport:
    """What `check` found (and, with repair, fixed)."""

    data_dir: Path
    checked: int = 0
    intact: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    restamped: int = 0  # rows whose file's new time was recorded (--repair)
    would_restamp: int = 0  # rows a plain check found touched but unchanged
    repaired: bool = False

    @property
    def problems(self) -> int:
        """Rows without their file, files unlike their row, files without a row."""
        return len(self.missing) + len(self.mismatched) + len(self.orphans)

    def to_json(self) -> dict[str, Any]:
        """The report as `--output json` prints it."""
        return {
            "dataDir": str(self.data_dir),
            "checked": self.checked,
            "intact": self.intact,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "orphans": self.orphans,
            "foreign": self.foreign,
            "restamped": self.restamped,
            "wouldRestamp": self.would_restamp,
            "repaired": self.repaired,
        }


def check(
    data_dir: Path,
    *,
    repair: bool = False,
    on_wait: Callable[[str], None] | None = None,
    layout: Layout | None = None,
) -> CheckReport:
    """Verify (and with `repair`, mend) the data folder's index against what `layout`
    (unless given: its files and its shards, imgflow/local/layouts/stored.py) stores."""
    if not (data_dir / "imgflow.db").is_file():
        raise StorageError(f"{data_dir} has no index (imgflow.db): nothing to check")
    folder = DataFolder(data_dir, create=False)
    try:
        db = folder.database(readonly=not repair)
        try:
            with (
                sqlite_errors(db.path),
                folder.locked("imgflow check", on_wait, reading=not repair),
            ):
                reader = stored_reader(folder) if layout is None else layout.open_reader(folder)
                try:
                    report = _check(db, reader, data_dir, repair)
                finally:
                    reader.close()
                if repair:  # the shards that lost samples (a bad one, an orphan) cut
                    mend_folder(folder, db, fsync=True)
                return report
        finally:
            db.close()
    finally:
        folder.close()


def _check(db: Any, reader: StoredReader, data_dir: Path, repair: bool) -> CheckReport:
    report = CheckReport(data_dir, repaired=repair)
    keys: set[str] = set()
    forget: list[str] = []
    restamp: list[tuple[int, str]] = []
    for url, key, size, digest, mtime in list(db.index_rows()):
        report.checked += 1
        keys.add(key)
        found = reader.stat(key)
        if found is None:
            report.missing.append(url)
            forget.append(url)
        elif found.bytes != size or _sha256(reader, key) != digest:
            report.mismatched.append(url)
            forget.append(url)
            if repair:
                reader.remove(key)
        else:
            report.intact += 1
            if mtime != found.mtime_ns:
                restamp.append((found.mtime_ns, url))
    unknown = [(key, is_file) for key, is_file in reader.iter_stored() if key not in keys]
    # an orphan is a file some run wrote; any other file is the user's, listed, never removed
    written = db.written_keys([key for key, is_file in unknown if is_file])
    for key, _ in unknown:
        if key in written:
            report.orphans.append(key)
            if repair:
                reader.remove(key)
        else:
            report.foreign.append(key)
    if repair:
        report.restamped = len(restamp)
        with db.transaction():
            db.forget(forget)  # (a shard that lost a sample is marked to be rewritten)
            db.restamp(restamp)
    else:
        report.would_restamp = len(restamp)
    return report


def _sha256(reader: StoredReader, key: str) -> str:
    with reader.open_stored(key) as stored:
        return sha256_of(stored)
