"""An open shard's log of its samples (imgflow/local/layouts/shard_log.py): every sample
added is read back once, in order, also after a write the disk cut short."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import MappingProxyType

import pytest

from imgflow.engine.plan import NO_META
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.local.layouts.shard_log import Entry, SampleLog, read_log


def _entry(i: int) -> Entry:
    record = ResultRecord(
        url=f"http://127.0.0.1:9/{i}.gif", path=f"{i}.gif", outcome=Outcome.STORED
    )
    meta = MappingProxyType({"caption": f"image {i}"}) if i % 2 else NO_META
    return Entry(record, float(i), f"member-{i}", meta, i)


def test_entries_come_back_in_order_with_their_metadata(tmp_path: Path) -> None:
    folder = os.open(tmp_path, os.O_RDONLY)
    try:
        log = SampleLog(folder, "shard-1.tar.log")
        for i in range(10):
            log.add(_entry(i))
            if i % 3 == 2:
                log.flush()
        log.close()
        back = [e for chunk in read_log(folder, "shard-1.tar.log") for e in chunk]
    finally:
        os.close(folder)
    assert back == [_entry(i) for i in range(10)]
    assert back[1].meta["caption"] == "image 1" and back[0].meta is NO_META
    with pytest.raises(TypeError):  # still a read-only view
        back[1].meta["caption"] = "changed"  # type: ignore[index]


def test_a_write_the_disk_cuts_short_loses_no_sample_and_repeats_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel writes part of a list, then says the disk is full (ENOSPC): the file is
    cut back to its whole lists, and the list stays pending."""
    folder = os.open(tmp_path, os.O_RDONLY)
    real_write = os.write
    calls = 0

    def full_disk(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        if calls == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    try:
        log = SampleLog(folder, "shard-1.tar.log")
        for i in range(4):
            log.add(_entry(i))
        log.flush()  # whole
        for i in range(4, 8):
            log.add(_entry(i))
        monkeypatch.setattr(os, "write", full_disk)
        with pytest.raises(OSError) as raised:
            log.flush()  # half written, then the disk is full
        monkeypatch.undo()
        assert raised.value.errno == errno.ENOSPC
        assert os.fstat(log.fd).st_size == log.end  # cut back to the whole list
        back = [e.finished for chunk in log.entries(folder) for e in chunk]
        log.close()  # (the disk has room again: the pending list is written)
        written = [e.finished for chunk in read_log(folder, "shard-1.tar.log") for e in chunk]
    finally:
        os.close(folder)
    assert back == [float(i) for i in range(8)]
    assert written == back
