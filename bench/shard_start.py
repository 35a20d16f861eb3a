"""A run's start on a data folder of many small shards: `ShardStore.bind` (remove unlisted
shards, rewrite marked ones, number on), timed in this checkout and in another (the
baseline, e.g. main's worktree), alternately in one bench run on copies of one folder.

    .venv/bin/python bench/shard_start.py --baseline /work/main [--shards 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

_TIME = """
import sys, time
sys.path.insert(0, sys.argv[3])  # (before the editable install's finder: PYTHONPATH is not)
from pathlib import Path
import imgflow
assert imgflow.__file__.startswith(sys.argv[3]), imgflow.__file__
from imgflow.local.folder import DataFolder
from imgflow.local.layouts.webdataset import webdataset_layout
folder = DataFolder(Path(sys.argv[1]), create=False)
db = folder.database()
tmp = folder.folder("tmp")
store = webdataset_layout(10).open_run(folder, tmp, fsync=False)
best = float("inf")
for _ in range(int(sys.argv[2])):  # a bind on a mended folder does the same work again
    began = time.perf_counter()
    store.bind(db, "bench")
    best = min(best, time.perf_counter() - began)
print(best)
"""


def build(data: Path, shards: int) -> None:
    """`shards` committed shards of one sample each, as a shard run leaves them."""
    from imgflow.local.folder import DataFolder

    folder = DataFolder(data)
    db = folder.database()
    (data / "shards").mkdir()
    now = time.time()
    rows = []
    for number in range(shards):
        stem = f"{number:05d}"
        (data / "shards" / f"{stem}.tar").write_bytes(b"\0" * 1024)
        (data / "shards" / f"{stem}.jsonl").write_bytes(b"")
        stats = {"run_id": "r0", "samples": 1, "bytes": 10, "shard": f"{stem}.tar"}
        (data / "shards" / f"{stem}_stats.json").write_text(json.dumps(stats))
        rows.append((f"{stem}.tar", "r0", 1, 10, now))
    with db.transaction():
        db.conn.executemany(
            "INSERT INTO shards (name, run_id, samples, bytes, committed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        db.conn.execute("UPDATE shards SET marked = 0")  # as a start after the upgrade
    db.close()
    folder.close()


def once(checkout: Path, data: Path) -> float:
    argv = [sys.executable, "-c", _TIME, str(data), "10", str(checkout)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--shards", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        made = Path(work) / "made"
        build(made, args.shards)
        times: dict[str, list[float]] = {"baseline": [], "this": []}
        for _ in range(args.rounds):
            for name, checkout in (("baseline", args.baseline), ("this", HERE)):
                data = Path(work) / name
                shutil.rmtree(data, ignore_errors=True)
                shutil.copytree(made, data)
                times[name].append(once(checkout, data))
        base, this = statistics.median(times["baseline"]), statistics.median(times["this"])
        print(
            f"{args.shards} shards, median of {args.rounds} (best of 10 binds each):"
            f" baseline {base * 1000:.1f} ms, this {this * 1000:.1f} ms,"
            f" ratio {base / this:.1f}x"
        )
        with sqlite3.connect(Path(work) / "this" / "imgflow.db") as conn:
            assert conn.execute("SELECT count(*) FROM shards").fetchone()[0] == args.shards


if __name__ == "__main__":
    main()
