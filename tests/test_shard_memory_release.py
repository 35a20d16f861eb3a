"""The shard layouts hand freed memory back: glibc's free pages returned after each Parquet
row group and each metadata table (imgflow/local/memory.py), a metadata table written a row
group of TABLE_ROWS rows at a time, and no pyarrow in a webdataset run before its first
table (docs/architecture.md, "Peak memory of the shard layouts")."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imgflow.local import memory
from imgflow.local.layouts import parquet
from imgflow.local.layouts.shard_format import Sample

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _sample(i: int, data: bytes) -> Sample:
    return Sample(
        url=f"http://127.0.0.1:9/{i}.gif", key=f"{i}.gif", data=data, part=None,
        size=len(data), sha256="0" * 64, content_type="image/gif", etag=None,
        last_modified=None, meta={"caption": f"c{i}"},
    )  # fmt: skip


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(parquet, "release", lambda: bool(calls.append(1)) or True)
    return calls


@pytest.mark.parametrize("trim_groups", [2, 32])
def test_a_parquet_row_group_holds_about_group_bytes_and_the_heap_is_trimmed_every_few(
    trim_groups: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row group is written once GROUP_BYTES of images are held; the heap its buffers
    leave is handed back once TRIM_BYTES have been written since the last time, not after
    each group (that cost 14% of a parquet run's CPU)."""
    calls = _counted(monkeypatch)
    monkeypatch.setattr(parquet, "TRIM_BYTES", trim_groups * parquet.GROUP_BYTES)
    out = io.BytesIO()
    writer = parquet.ParquetWriter(out)
    size = parquet.GROUP_BYTES // 3 + 1
    for i in range(7):
        data = bytes([i]) * size
        writer.add(_sample(i, data), io.BytesIO(data))
    writer.close()
    assert len(calls) == (1 if trim_groups == 2 else 0)  # after the second group only
    out.seek(0)
    found = pq.ParquetFile(out)
    assert [found.metadata.row_group(g).num_rows for g in range(found.num_row_groups)] == [3, 3, 1]
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.num_rows == 7 and table.column("image").to_pylist()[6] == bytes([6]) * size
    assert parquet.GROUP_BYTES <= 1 << 20


def test_a_metadata_table_is_written_a_row_group_at_a_time_then_handed_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _counted(monkeypatch)
    monkeypatch.setattr(parquet, "TABLE_ROWS", 4)
    rows = []
    for i in range(10):
        row = _sample(i, b"x").row()
        row["member"] = f"m{i}"
        rows.append(row)
    out = io.BytesIO()
    parquet.write_table(rows, out)
    assert calls == [1]
    out.seek(0)
    found = pq.ParquetFile(out)
    assert found.num_row_groups == 3
    back = list(parquet.read_rows(io.BytesIO(out.getvalue()), full=True))
    assert [r["member"] for r in back] == [f"m{i}" for i in range(10)]
    assert back[3]["meta"] == {"caption": "c3"}


def test_release_returns_freed_heap_pages_to_the_system() -> None:
    """50 MB of 20 KB buffers freed between kept small objects: glibc keeps them (RSS
    stays) until `release`."""
    code = textwrap.dedent(
        """
        from imgflow.local.memory import release
        def rss():
            return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
        big, small = [], []
        for _ in range(2500):
            big.append(bytes(20000))
            small.append(bytes(200))
        del big
        before = rss()
        assert release()
        print(before - rss())
        """
    )
    if not Path("/proc/self/status").exists() or memory._trim() is None:
        pytest.skip("needs Linux and glibc")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(done.stdout) > 20_000, done.stdout  # KiB handed back


def test_a_webdataset_layout_imports_no_pyarrow_before_its_first_table(tmp_path: Path) -> None:
    """pyarrow (about 56 MB of RSS) comes with the first metadata table, not before: the
    webdataset layout made as a run makes it, a sample appended to a tar, no pyarrow."""
    code = textwrap.dedent(
        """
        import io, sys
        from imgflow.backends.local import layout_of
        from imgflow.config import Config
        from imgflow.local.layouts.shard_format import Sample
        layout = layout_of(Config(), "webdataset")
        writer = layout.fmt.start(io.BytesIO())
        data = b"GIF89a" + bytes(100)
        writer.add(Sample(url="http://h/a.gif", key="a.gif", data=data, part=None,
                          size=len(data), sha256="0" * 64, content_type="image/gif",
                          etag=None, last_modified=None, meta={}), io.BytesIO(data))
        writer.close()
        print("pyarrow" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("chosen", [None, "mimalloc"])
def test_arrow_allocates_from_the_system_allocator_unless_the_user_chose(
    chosen: str | None, tmp_path: Path
) -> None:
    """Arrow's own allocations (a Parquet writer's pages and metadata) come from its
    default pool: the system allocator, whose freed memory is handed back, not mimalloc,
    which kept 20-30 MB of a parquet run (imgflow/__init__.py). A user's choice stays."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = textwrap.dedent(
        """
        from imgflow.local.layouts import parquet
        import pyarrow as pa
        print(pa.default_memory_pool().backend_name)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.stdout.strip() == (chosen or "system")
