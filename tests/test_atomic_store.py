"""Files appear at their final name only when complete, and never outside the store.

Watched from the outside while a real ``imgflow run`` streams large images in: a reader
process looks at every final path about every millisecond and must only ever find the whole
image's size, and Linux inotify (which sees every open, write and rename in the final
folders) must report the final name only as the target of a rename, never as a file
created or written in place.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.cli_run import run_cli
from support.faultserver import FaultServer, Trickle

from imgflow.local.store import FileStore

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
WATCHED = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
IMAGE_BYTES = 6 * 1024 * 1024
IMAGES = ("big/a.gif", "big/b.gif")


def image(seed: int) -> bytes:
    """A GIF-looking body of IMAGE_BYTES whose every 32 bytes differ."""
    blocks = (hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(IMAGE_BYTES // 32))
    return b"GIF89a" + b"".join(blocks)


class Inotify:
    """Events (name, mask) in one folder, read by a thread until `close`."""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._fd = libc.inotify_init()
        if self._fd < 0:
            pytest.skip("inotify is not available here")
        if libc.inotify_add_watch(self._fd, str(folder).encode(), WATCHED) < 0:
            pytest.skip("inotify cannot watch the data folder here")
        self.events: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                return
            if not data:
                return
            offset = 0
            while offset < len(data):
                _, mask, _, size = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + size].rstrip(b"\0").decode()
                self.events.append((name, mask))
                offset += 16 + size

    def close(self) -> None:
        os.close(self._fd)
        self._thread.join(2)


READER = """
import sys, time
from pathlib import Path
paths = [Path(p) for p in sys.argv[2:]]
stop = Path(sys.argv[1])
seen = {str(p): set() for p in paths}
while not stop.exists():
    for p in paths:
        try:
            seen[str(p)].add(p.stat().st_size)
        except FileNotFoundError:
            pass
    time.sleep(0.0005)
for p in paths:
    print(p.name, *sorted(seen[str(p)]))
"""


@contextmanager
def reader(paths: list[Path], stop: Path) -> Iterator[list[str]]:
    """A process reading `paths` in a loop; yields the sizes it saw, per file, at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(stop), *map(str, paths)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        yield lines
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=30)
        lines.extend(out.splitlines())


def imgflow_run(
    server: FaultServer, tmp_path: Path, data: Path
) -> subprocess.CompletedProcess[str]:
    """``imgflow run`` of tmp_path/paths.txt into `data` (fsync on, as by default)."""
    return run_cli(
        "run", "--base-url", server.base_url, "--paths-file", str(tmp_path / "paths.txt"),
        "--data-dir", str(data), "-c", "2", "-o", "json",
    )  # fmt: skip


def test_a_reader_never_sees_a_partial_file(fault_server: FaultServer, tmp_path: Path) -> None:
    bodies = {path: image(i) for i, path in enumerate(IMAGES)}
    for path, body in bodies.items():
        fault_server.set("/" + path, Trickle(body, chunk=256 * 1024, interval=0.01))
    (tmp_path / "paths.txt").write_text("\n".join(IMAGES) + "\n")
    data = tmp_path / "data"
    final = data / "images" / f"127.0.0.1:{fault_server.port}" / "big"
    final.mkdir(parents=True)  # so inotify can watch the folder before the first byte
    watch = Inotify(final)
    with reader([final / Path(p).name for p in IMAGES], tmp_path / "stop") as sizes:
        run = imgflow_run(fault_server, tmp_path, data)
    watch.close()
    assert run.returncode == 0, run.stderr
    for path, body in bodies.items():
        assert (final / Path(path).name).read_bytes() == body
    seen = {line.split()[0]: {int(n) for n in line.split()[1:]} for line in sizes}
    for path in IMAGES:
        name = Path(path).name
        assert seen[name] <= {IMAGE_BYTES + 6}, f"{name}: a reader saw sizes {sorted(seen[name])}"
        events = [mask for event, mask in watch.events if event == name]
        assert events and all(mask & IN_MOVED_TO for mask in events), (
            f"{name} was created or written at its final name: {[hex(m) for m in events]}"
        )


@pytest.mark.parametrize("key", ["../outside.gif", "a/../../outside.gif", "a/../b/../../x"])
def test_a_key_never_points_outside_the_store(tmp_path: Path, key: str) -> None:
    (tmp_path / "store" / "images").mkdir(parents=True)
    (tmp_path / "store" / "tmp").mkdir()
    images = os.open(tmp_path / "store" / "images", os.O_RDONLY | os.O_DIRECTORY)
    tmp = os.open(tmp_path / "store" / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        store = FileStore(images, tmp, fsync=False)
        with pytest.raises(OSError, match="not a plain relative name"):
            store.open(key)
        with pytest.raises(OSError, match="not a plain relative name"):
            store.put(key, b"GIF89a", "image/gif")
    finally:
        os.close(images)
        os.close(tmp)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_seal_waits_for_renames_in_progress_so_none_is_left_unsettled(tmp_path: Path) -> None:
    """Renames run side by side, outside the store's lock; a seal (an interrupt) still
    returns only once the renames already started are done and remembered, so
    `discard_unsettled` removes every file whose record was lost."""
    (tmp_path / "images").mkdir()
    (tmp_path / "tmp").mkdir()
    images = os.open(tmp_path / "images", os.O_RDONLY | os.O_DIRECTORY)
    tmp = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    store = FileStore(images, tmp, fsync=False)
    renaming, release = threading.Event(), threading.Event()
    place = store.tree.place

    def slow_place(src_dir: int, src: str, key: str) -> None:
        renaming.set()
        release.wait(5)
        place(src_dir, src, key)

    store.tree.place = slow_place  # type: ignore[method-assign]
    writer = threading.Thread(target=store.put, args=("a/x.gif", b"GIF89a", "image/gif"))
    sealer = threading.Thread(target=store.seal)
    try:
        writer.start()
        assert renaming.wait(5)
        sealer.start()
        sealer.join(0.2)
        assert sealer.is_alive(), "the seal returned while a rename was in progress"
        release.set()
        sealer.join(5)
        writer.join(5)
        assert store.discard_unsettled() == ["a/x.gif"]
        assert not (tmp_path / "images" / "a" / "x.gif").exists()
        with pytest.raises(OSError, match="interrupted"):
            store.put("a/y.gif", b"GIF89a", "image/gif")
    finally:
        release.set()
        store.close()
        os.close(images)
        os.close(tmp)
