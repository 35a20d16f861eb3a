"""The runner stores only through the Layout seam: a layout kept in memory is enough.

MemoryLayout implements imgflow/local/layouts/base.py and nothing else; a run stores into
it, skips what it holds, fetches again what it lost, and `imgflow check` reads it back.
Nothing of the files layout (an `images` folder) appears in the data folder.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from support.faultserver import FaultServer, Ok, Stall

from imgflow.demo.images import make_gif
from imgflow.engine.job import validate_base_url
from imgflow.engine.records import ResultRecord
from imgflow.engine.settings import FetchConfig
from imgflow.local.check import check
from imgflow.local.folder import DataFolder
from imgflow.local.job import LocalJob, LocalRunResult, RunInterrupted
from imgflow.local.layouts.base import Stamp
from imgflow.local.runner import run_job
from imgflow.local.settings import RunSettings
from imgflow.sources.job_json import from_job

QUICK = FetchConfig(retries=0, timeout=1, total_timeout=2)


class MemoryWriter:
    """Bytes kept until commit puts them whole."""

    def __init__(self, store: MemoryStore, key: str) -> None:
        self.store = store
        self.key = key
        self.parts: list[bytes] = []

    def write(self, chunk: bytes | memoryview) -> None:
        self.parts.append(bytes(chunk))

    def commit(self, content_type: str | None) -> None:
        self.store.put(self.key, b"".join(self.parts), content_type)

    def abort(self) -> None:
        self.parts.clear()


class MemoryStore:
    """A run's store over the layout's objects (key -> bytes, mtime)."""

    inline = True

    def __init__(self, layout: MemoryLayout) -> None:
        self.layout = layout
        self.unsettled: dict[str, int] = {}
        self.sealed = False

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        if self.sealed:
            raise OSError("the run was interrupted")
        mtime = next(self.layout.clock)
        self.layout.objects[key] = (data, mtime)
        self.unsettled[key] = mtime

    def open(self, key: str) -> MemoryWriter:
        return MemoryWriter(self, key)

    def intact(self, key: str, size: int, mtime_ns: int | None, sha256: str) -> int | None:
        found = self.layout.objects.get(key)
        if found is None or len(found[0]) != size:
            return None
        if mtime_ns is None or found[1] == mtime_ns:
            return found[1]
        return found[1] if hashlib.sha256(found[0]).hexdigest() == sha256 else None

    def written(self, keys: Iterable[str]) -> dict[str, int]:
        return {key: self.unsettled[key] for key in keys if key in self.unsettled}

    def settle(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.unsettled.pop(key, None)

    def seal(self) -> None:
        self.sealed = True
        self.layout.seals += 1

    def discard_unsettled(self, keep: Collection[str] = ()) -> list[str]:
        keys = [key for key in self.unsettled if key not in keep]
        for key in keys:
            del self.layout.objects[key]
        self.unsettled.clear()
        return keys

    def close(self) -> None:
        self.layout.runs += 1


class MemoryReader:
    def __init__(self, layout: MemoryLayout) -> None:
        self.layout = layout

    def stat(self, key: str) -> Stamp | None:
        found = self.layout.objects.get(key)
        return None if found is None else Stamp(len(found[0]), found[1])

    def open_stored(self, key: str) -> BinaryIO:
        return io.BytesIO(self.layout.objects[key][0])

    def iter_stored(self) -> Iterator[tuple[str, bool]]:
        for key in list(self.layout.objects):
            yield key, True

    def remove(self, key: str) -> None:
        self.layout.objects.pop(key, None)

    def close(self) -> None:
        pass


class MemoryLayout:
    """Objects kept in memory across runs."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.clock = itertools.count(1)
        self.runs = 0
        self.seals = 0

    def open_run(self, folder: DataFolder, tmp: int, *, fsync: bool) -> MemoryStore:
        return MemoryStore(self)

    def open_reader(self, folder: DataFolder) -> MemoryReader:
        return MemoryReader(self)


def _run(
    server: FaultServer,
    paths: list[str],
    data_dir: Path,
    layout: MemoryLayout,
    stop: threading.Event | None = None,
    progress: _StopAfter | None = None,
) -> LocalRunResult:
    job = LocalJob(
        source=from_job(validate_base_url(server.base_url), paths, None),
        concurrency=2,
        batch_size=2,
        max_batches=2,
    )
    settings = RunSettings(fetch=QUICK, fsync=False, layout=layout)
    return run_job(job, settings, data_dir, progress=progress, stop=stop)


def test_a_run_stores_skips_and_checks_through_the_layout_only(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    paths = [f"{name}.gif" for name in "abcde"]
    for name in paths:
        fault_server.set(f"/{name}", Ok(make_gif(name)))
    layout = MemoryLayout()
    first = _run(fault_server, paths, tmp_path, layout)
    assert first.summary.stored == 5 and layout.runs == 1
    assert not (tmp_path / "images").exists()
    host = f"127.0.0.1:{fault_server.base_url.rsplit(':', 1)[1]}"
    assert {key.split("/", 1)[1] for key in layout.objects} == set(paths)
    assert all(key.startswith(host + "/") for key in layout.objects)

    second = _run(fault_server, paths, tmp_path, layout)
    assert (second.summary.stored, second.summary.skipped) == (0, 5)
    assert fault_server.count("/a.gif") == 1

    del layout.objects[f"{host}/c.gif"]
    third = _run(fault_server, paths, tmp_path, layout)
    assert (third.summary.stored, third.summary.skipped) == (1, 4)

    layout.objects[f"{host}/orphan.gif"] = (b"GIF89a", 1)
    report = check(tmp_path, layout=layout)
    # no run wrote it: the user's, listed as foreign (never removed)
    found = (report.checked, report.intact, report.orphans, report.foreign)
    assert found == (5, 5, [], [f"{host}/orphan.gif"])
    digest = hashlib.sha256(layout.objects[f"{host}/a.gif"][0]).hexdigest()
    assert digest == hashlib.sha256(make_gif("a.gif")).hexdigest()


class _StopAfter:
    """Sets `stop` once a record arrives."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def planned(self, run_id: str, total: int, duplicates: int) -> None:
        pass

    def record(self, record: ResultRecord) -> None:
        self.stop.set()


def test_an_interrupt_seals_the_layout_and_leaves_no_object_without_its_row(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/a.gif", Ok(make_gif("a")))
    fault_server.set("/slow.gif", Stall())
    layout = MemoryLayout()
    stop = threading.Event()
    try:
        _run(fault_server, ["a.gif", "slow.gif"], tmp_path, layout, stop, _StopAfter(stop))
    except RunInterrupted:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    assert layout.seals > 0
    report = check(tmp_path, layout=layout)
    assert report.orphans == [] and report.missing == [] and report.intact == len(layout.objects)
