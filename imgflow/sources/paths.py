"""The seed job's source: a base URL and resource paths, from a paths file or standard input.

A paths file up to `COUNTED_BYTES` is validated whole before anything is written (read
once to check every line, and again, streamed, when the run plans its batches). A larger
one is checked at its head only and streamed once while the run fetches (its count is
None: the runner's Planner plans it in a thread, as a large table of URLs), so the first
request of a million-line file goes out at once; a bad line further down stops the run
with one line. Standard input, and any paths file that is not a regular file (a named
pipe, `<(cmd)`, a character device such as /dev/null), can be read only once: it is
spooled to a temporary file and counted.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from imgflow.engine.job import normalize_path, url_for, validate_base_url
from imgflow.engine.plan import Item, item_for
from imgflow.errors import JobError

KIND = "paths"
# Only the first paths are looked at, so a warning costs nothing on a huge job.
LOOK_AT = 1000
# A regular paths file larger than this (about 40,000 paths) is planned while the run goes.
COUNTED_BYTES = 1 << 20


@dataclass(frozen=True)
class PathsSource:
    """A validated base URL and a re-readable supply of normalised paths under it.

    `kind` and `file` say where the paths came from (for the run record); `key_base`, when
    given, is the base URL stored keys are derived from instead (the demo keeps its keys
    when its server has to move to another port).
    """

    base_url: str
    paths: Callable[[], Iterable[str]]
    count: int | None  # None: a large file, planned (and counted) while the run goes
    concurrency: int | None = None
    kind: str = KIND
    file: str | None = None
    key_base: str | None = None
    spool: Path | None = None

    def items(self) -> Iterator[Item]:
        """The item of each path, in input order."""
        base, key_base = self.base_url, self.key_base
        for path in self.paths():
            yield item_for(base, path, key_base)

    def describe(self) -> dict[str, Any]:
        """``{"kind", "baseUrl", "file"}`` (and ``keyBase`` when keys come from another;
        ``path``, the file's absolute path, when it can be read again by a retry)."""
        doc: dict[str, Any] = {"kind": self.kind, "baseUrl": self.base_url, "file": self.file}
        if self.key_base is not None:
            doc["keyBase"] = self.key_base
        if self.kind == KIND and self.spool is None and self.file is not None:
            doc["path"] = str(Path(self.file).absolute())
        return doc

    def warning(self) -> str | None:
        """A warning when the job is valid but probably not what its author meant."""
        return doubled_base_path(self.base_url, self.paths())

    def cleanup(self) -> None:
        """Remove the spooled copy of standard input, if any."""
        if self.spool is not None:
            self.spool.unlink(missing_ok=True)


def from_paths_file(
    base_url: str | None, paths_file: str, key_base: str | None = None
) -> PathsSource:
    """A job from `--base-url` and `--paths-file` ('-' reads standard input)."""
    if base_url is None:
        raise JobError("--base-url is required with --paths-file")
    base = validate_base_url(base_url)
    spool: Path | None = None
    if paths_file == "-":
        spool = _spool(sys.stdin.buffer)
        file, label = spool, "stdin"
    else:
        file, label = Path(paths_file), paths_file
        if file.is_dir():
            raise JobError(f"{paths_file}: is a folder, not a paths file")
        if not file.exists():
            raise JobError(f"{paths_file}: paths file not found")
        if not file.is_file():  # a pipe or a device: read it once, now
            spool = _spool_file(file, label)
            file = spool
    try:
        count = _count(file, label, spool is None and file.stat().st_size > COUNTED_BYTES)
    except JobError:
        if spool is not None:
            spool.unlink(missing_ok=True)
        raise
    return PathsSource(
        base,
        lambda: _read_paths(file, label),
        count,
        file=label,
        key_base=key_base,
        spool=spool,
    )


def _count(file: Path, label: str, streamed: bool) -> int | None:
    """How many paths `file` holds, every line checked; None for a file `streamed` while
    the run goes (only its head is checked now: at least one path, no bad line)."""
    paths = _read_paths(file, label)
    try:
        count = sum(1 for _ in islice(paths, LOOK_AT if streamed else None))
    finally:
        paths.close()
    if count == 0:
        raise JobError(f"{label}: no paths (the file is empty or only comments)")
    return None if streamed and count == LOOK_AT else count


def doubled_base_path(base_url: str, paths: Iterable[str]) -> str | None:
    """A warning when a path repeats the base URL's own path.

    Paths are relative to the base URL, as in the original pipeline (a leading ``/`` is
    ignored), so with base ``https://h/img`` the path ``/img/x.png`` is fetched from
    ``https://h/img/img/x.png``: usually a mistake, most often from a file of site-root
    paths.
    """
    prefix = urlsplit(base_url).path.strip("/")
    if not prefix:
        return None
    for path in islice(paths, LOOK_AT):
        if path == prefix or path.startswith(prefix + "/"):
            return (
                f"path {path!r} repeats the base URL's path: paths are relative to the "
                f"base URL, so it is fetched from {url_for(base_url, path)}; drop "
                f"'/{prefix}' from the paths (or from --base-url) if that is not meant"
            )
    return None


def _spool(stream: BinaryIO) -> Path:
    with tempfile.NamedTemporaryFile(prefix="imgflow-paths-", delete=False) as out:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
        return Path(out.name)


def _spool_file(file: Path, label: str) -> Path:
    try:
        with file.open("rb") as stream:
            return _spool(stream)
    except OSError as exc:
        raise JobError(f"{label}: cannot read ({exc.strerror})") from None


def _read_paths(file: Path, label: str) -> Generator[str, None, None]:
    """Normalised paths, line by line; blank lines and # comments are skipped."""
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise JobError(f"{label}: cannot read ({exc.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise JobError(f"{label} line {number}: not UTF-8 text") from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if "\t" in stripped:
                raise JobError(
                    f"{label} line {number}: a tab: one path per line"
                    " (a table of URLs is not supported yet)"
                )
            yield normalize_path(stripped, f"{label} line {number}")
