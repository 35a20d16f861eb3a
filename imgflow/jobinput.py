"""Read a job from the command line's inputs: a paths file (or stdin) or a job JSON file.

Everything is validated before anything is written: a paths file is read once to check
every line, and read again (streamed) when the run plans its batches, so a file of a
million lines never has to fit in memory. Standard input is spooled to a temporary file.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imgflow.engine.job import (
    normalize_path,
    parse_job_json,
    validate_base_url,
)
from imgflow.errors import JobError


@dataclass(frozen=True)
class JobInput:
    """A validated job: base URL, a re-readable source of normalised paths, counts."""

    base_url: str
    paths: Callable[[], Iterable[str]]
    count: int
    concurrency: int | None
    spool: Path | None = None

    def cleanup(self) -> None:
        """Remove the spooled copy of standard input, if any."""
        if self.spool is not None:
            self.spool.unlink(missing_ok=True)


def from_paths_file(base_url: str | None, paths_file: str) -> JobInput:
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
        if not file.is_file():
            raise JobError(f"{paths_file}: paths file not found")
    try:
        count = sum(1 for _ in _read_paths(file, label))
    except JobError:
        if spool is not None:
            spool.unlink(missing_ok=True)
        raise
    if count == 0:
        if spool is not None:
            spool.unlink(missing_ok=True)
        raise JobError(f"{label}: no paths (the file is empty or only comments)")
    return JobInput(base, lambda: _read_paths(file, label), count, None, spool)


def from_job_file(job_file: str) -> JobInput:
    """A job from an original-format JSON body (`--job FILE`, '-' for standard input)."""
    label = "stdin" if job_file == "-" else job_file
    try:
        raw = sys.stdin.buffer.read() if job_file == "-" else Path(job_file).read_bytes()
    except FileNotFoundError:
        raise JobError(f"{job_file}: job file not found") from None
    except OSError as exc:
        raise JobError(f"{job_file}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JobError(f"{label}: not UTF-8 text") from None
    base, paths, concurrency = parse_job_json(text, label)
    return JobInput(base, lambda: iter(paths), len(paths), concurrency)


def _spool(stream: BinaryIO) -> Path:
    with tempfile.NamedTemporaryFile(prefix="imgflow-paths-", delete=False) as out:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
        return Path(out.name)


def _read_paths(file: Path, label: str) -> Iterator[str]:
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
            yield normalize_path(stripped, f"{label} line {number}")
