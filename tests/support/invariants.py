"""The local backend's guarantees, checked from the outside (files and SQLite only).

`check_local` asserts, for one run of a data folder:

- exactly one result row per unique input path, none left pending;
- every stored or skipped image is on disk, and its bytes hash to the row's sha256 and to
  what the server sent (when the server's bodies are given);
- the index (``images``) names exactly the files on disk, each with its true size and hash,
  and no url twice;
- no temporary file (``*.part``) is left anywhere in the data folder.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "imgflow.db"


@dataclass(frozen=True)
class Row:
    """One result row."""

    path: str
    url: str
    key: str
    outcome: str
    error: str | None
    sha256: str | None


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def result_rows(data_dir: Path, run_id: str) -> list[Row]:
    with sqlite3.connect(data_dir / DB_NAME) as conn:
        found = conn.execute(
            "SELECT path, url, key, outcome, error, sha256 FROM results WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    return [Row(*r) for r in found]


def files_on_disk(data_dir: Path) -> set[str]:
    root = data_dir / "images"
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def leftover_temporaries(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*.part")] if data_dir.exists() else []


def check_index(data_dir: Path) -> dict[str, tuple[str, str]]:
    """Index rows == files on disk, sizes and hashes true; url -> (key, sha256)."""
    with sqlite3.connect(data_dir / DB_NAME) as conn:
        index = conn.execute("SELECT url, key, bytes, sha256 FROM images").fetchall()
        (distinct,) = conn.execute("SELECT COUNT(DISTINCT url) FROM images").fetchone()
    assert distinct == len(index), "an url is indexed twice"
    keys = [str(key) for _, key, _, _ in index]
    assert len(set(keys)) == len(keys), "two urls share one stored key"
    on_disk = files_on_disk(data_dir)
    assert set(keys) == on_disk, (
        f"index without file: {sorted(set(keys) - on_disk)[:5]}, "
        f"file without index row: {sorted(on_disk - set(keys))[:5]}"
    )
    for _, key, size, digest in index:
        data = (data_dir / "images" / str(key)).read_bytes()
        assert len(data) == size and sha(data) == digest, f"{key}: bytes differ from its row"
    return {str(url): (str(key), str(digest)) for url, key, _, digest in index}


def check_local(
    data_dir: Path,
    run_id: str,
    paths: Iterable[str],
    server_bodies: Mapping[str, bytes] | None = None,
) -> dict[str, Row]:
    """Assert every guarantee for `run_id`; its rows by path."""
    unique = set(paths)
    rows = result_rows(data_dir, run_id)
    by_path = {r.path: r for r in rows}
    assert len(by_path) == len(rows), "a path has two result rows"
    assert set(by_path) == unique, (
        f"missing: {sorted(unique - set(by_path))[:5]}, extra: {sorted(set(by_path) - unique)[:5]}"
    )
    pending = [r.path for r in rows if r.outcome not in ("stored", "skipped", "failed")]
    assert not pending, f"left {rows[0].outcome if pending else ''}: {pending[:5]}"
    index = check_index(data_dir)
    for row in rows:
        if row.outcome == "failed":
            assert row.error, f"{row.path}: failed without a message"
            continue
        assert row.url in index, f"{row.path}: {row.outcome} but not indexed"
        key, digest = index[row.url]
        assert key == row.key and digest == row.sha256, f"{row.path}: row and index disagree"
        if server_bodies is not None:
            assert digest == sha(server_bodies[row.path]), f"{row.path}: not the server's bytes"
    assert not leftover_temporaries(data_dir), leftover_temporaries(data_dir)[:5]
    return by_path
