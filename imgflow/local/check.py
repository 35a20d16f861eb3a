"""`imgflow check [--repair]`: the index against the files, byte for byte.

Every index row's file must be there, a regular file, with the row's size and sha256; every
file under `images/` must have a row. With `repair`, rows whose file is gone or wrong are
forgotten (and wrong files removed), so the next run fetches those images again; orphan
files (imgflow's own regular files without a row) are removed; a file whose bytes are right
but whose modification time changed gets its new time recorded. Links and other things
imgflow never makes are listed, never touched. The check holds the folder's lock, so it
never sees a run between a file's rename and its index row.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgflow.local.folder import DataFolder
from imgflow.local.index import sqlite_errors
from imgflow.local.safefs import KeyTree, StorageError

_CHUNK = 1 << 20


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
    restamped: int = 0
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
            "repaired": self.repaired,
        }


def check(
    data_dir: Path, *, repair: bool = False, on_wait: Callable[[str], None] | None = None
) -> CheckReport:
    """Verify (and with `repair`, mend) the data folder's index against its files."""
    if not (data_dir / "imgflow.db").is_file():
        raise StorageError(f"{data_dir} has no index (imgflow.db): nothing to check")
    folder = DataFolder(data_dir, create=False)
    try:
        db = folder.database()
        try:
            with sqlite_errors(db.path), folder.locked("imgflow check", on_wait):
                tree = KeyTree(folder.folder("images"))
                try:
                    return _check(db, tree, data_dir, repair)
                finally:
                    tree.close()
        finally:
            db.close()
    finally:
        folder.close()


def _check(db: Any, tree: KeyTree, data_dir: Path, repair: bool) -> CheckReport:
    report = CheckReport(data_dir, repaired=repair)
    keys: set[str] = set()
    forget: list[str] = []
    restamp: list[tuple[int, str]] = []
    for url, key, size, digest, mtime in list(db.index_rows()):
        report.checked += 1
        keys.add(key)
        found = tree.lstat(key)
        if found is None:
            report.missing.append(url)
            forget.append(url)
        elif found.st_size != size or _sha256(tree, key) != digest:
            report.mismatched.append(url)
            forget.append(url)
            if repair:
                tree.remove(key)
        else:
            report.intact += 1
            if mtime != found.st_mtime_ns:
                restamp.append((found.st_mtime_ns, url))
    for key, is_file in _files(tree.root):
        if key in keys:
            continue
        if is_file:
            report.orphans.append(key)
            if repair:
                tree.remove(key)
        else:
            report.foreign.append(key)
    report.restamped = len(restamp)
    if repair:
        db.forget(forget)
        db.restamp(restamp)
    return report


def _sha256(tree: KeyTree, key: str) -> str:
    digest = hashlib.sha256()
    fd = tree.open_read(key)
    try:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _files(root: int) -> list[tuple[str, bool]]:
    """(key, is a regular file) of everything but folders under `root`, links not followed."""
    found = []
    for top, dirs, names, fd in os.fwalk(".", dir_fd=root):
        prefix = "" if top == "." else top[2:] + "/"
        for name in [*dirs, *names]:
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except OSError:
                continue
            if not stat.S_ISDIR(mode):
                found.append((prefix + name, stat.S_ISREG(mode)))
    return found
