"""Rewrite the bundled flag set: ``python -m imgflow.demo.generate [--out DIR]``.

One small GIF per path of the demo job (``paths.txt``) and of the original failure request,
except the paths that must stay missing. The same bytes every time.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from imgflow.demo import FLAGS_DIR, PATHS_FILE
from imgflow.demo.images import make_gif

FLAG_SIZE = 16
MISSING = frozenset({"zz/zz.gif"})
FAIL_REQUEST_ONLY = ("mx/mx.gif", "us/us.gif")


def read_paths(paths_file: Path = PATHS_FILE) -> list[str]:
    """The paths in a paths file, in order, skipping blank lines and ``#`` comments."""
    lines = (line.strip() for line in paths_file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def flag_paths(paths: Iterable[str]) -> list[str]:
    """The unique, sorted paths that get an image: ``paths`` plus the failure request's."""
    wanted = (set(paths) | set(FAIL_REQUEST_ONLY)) - MISSING
    return sorted(_checked(path) for path in wanted)


def write_flags(out: Path = FLAGS_DIR, paths_file: Path = PATHS_FILE) -> list[Path]:
    """Replace ``out`` with one GIF per flag path; return the files written."""
    if out.exists():
        shutil.rmtree(out)
    written = []
    for path in flag_paths(read_paths(paths_file)):
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(make_gif(path, FLAG_SIZE))
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=FLAGS_DIR, help="folder to (re)write")
    args = parser.parse_args(argv)
    written = write_flags(args.out)
    print(f"wrote {len(written)} images under {args.out}")
    return 0


def _checked(path: str) -> str:
    """``path`` if it is a plain relative path, else ValueError."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts:
        raise ValueError(f"not a plain relative path: {path!r}")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
