"""Where a run's CPU goes, by stage of a small image's path: a py-spy profile, summed.

    py-spy record -r 500 -f raw -o prof.txt -- imgflow run ... --output json
    python bench/stages.py prof.txt [--images 5000] [--cpu-ms 1.35] [--per-image-only]

Each sample is given to the stage of its innermost frame that belongs to one (imgflow's
store and file-system frames by the text of the source line they are at: fsync, rename,
create, write). With `--cpu-ms` (CPU ms per image measured without the profiler, whose
own cost inflates every sample) the table shows each stage's share of it in microseconds.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import re
import sys
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")

# (stage, file suffix, function or None for any); first match from the innermost frame.
STARTUP = "start-up (imports)"
RULES: list[tuple[str, str, str | None]] = [
    (STARTUP, "importlib._bootstrap>", None),
    (STARTUP, "importlib._bootstrap_external>", None),
    ("sniff", "imgflow/engine/sniff.py", None),
    ("progress", "imgflow/ui/progress.py", None),
    ("index row", "imgflow/local/index/results.py", None),
    ("index row", "imgflow/local/runner.py", "flush"),
    ("index row", "imgflow/local/runner.py", "on_record"),
    ("plan", "imgflow/local/index/results.py", "_insert_plan"),
    ("plan", "imgflow/sources/", None),
    ("plan", "imgflow/local/index/", None),
    ("politeness gate", "imgflow/engine/politeness.py", None),
    ("robots.txt, opt-out headers", "imgflow/engine/robots.py", None),
    ("robots.txt, opt-out headers", "imgflow/engine/opt_out.py", None),
    ("robots.txt, opt-out headers", "protego", None),
    ("dimensions", "imagesize/", None),
    ("dimensions", "imgflow/engine/body.py", "dimensions"),
    ("dimensions", "imgflow/engine/body.py", "_jpeg"),
    ("dimensions", "imgflow/engine/body.py", "_other"),
    ("connection", "imgflow/engine/transport/pool.py", "_connect"),
    ("parse", "imgflow/engine/transport/parse.py", None),
    ("parse", "imgflow/engine/transport/connection.py", "data_received"),
    ("request", "imgflow/engine/transport/pool.py", None),
    ("body", "imgflow/engine/transport/stream.py", None),
    ("body", "imgflow/engine/transport/connection.py", None),
    ("body", "imgflow/engine/decode.py", None),
    ("body", "imgflow/engine/body.py", None),
    ("fetch (request, result)", "imgflow/engine/fetch.py", None),
    ("fetch (request, result)", "imgflow/engine/outcome.py", None),
    ("fetch (request, result)", "httpx/", None),
    ("batch (records, slots)", "imgflow/engine/batch.py", None),
    ("batch (records, slots)", "imgflow/engine/records.py", None),
    ("event loop", "asyncio/", None),
    ("thread pool", "concurrent/futures/", None),
    ("thread pool", "threading.py", None),
]
STORE_FILES = ("imgflow/local/store.py", "imgflow/local/safefs.py")
# Store frames, by the source line they are at.
STORE_LINES = [
    ("store lock (waiting)", ("with self._lock",)),
    ("fsync", ("fsync",)),
    ("rename", ("rename", ".place(")),
    ("file create", ("os.open", "_temporary", "mkdir", "subfolder")),
    ("write", ("os.write",)),
    ("fstat", ("fstat",)),
]
HASH = ("_hash.", "hashlib")


# An idle worker thread waiting for work (py-spy counts it as active): not counted.
IDLE = "_worker (concurrent/futures/thread.py:81)"


def stage_of(frames: list[str]) -> str | None:
    """The stage of one sample (frames from the outermost to the innermost); None: idle."""
    if frames and frames[-1].endswith(IDLE):
        return None
    for text in reversed(frames):
        match = FRAME.match(text)
        if match is None:
            continue
        path, func = match["file"], match["func"]
        if path.endswith(STORE_FILES):
            source = linecache.getline(_find(path), int(match["line"]))
            for stage, words in STORE_LINES:
                if any(word in source for word in words):
                    return stage
            return "store (other)"
        if path.endswith("imgflow/engine/body.py"):
            source = linecache.getline(_find(path), int(match["line"]))
            if any(word in source for word in HASH):
                return "hash"
        for stage, suffix, name in RULES:
            if suffix in path and (name is None or func.endswith(name)):
                return stage
    return "other"


# Where the profiled imgflow's sources are (--source: a baseline's, for a before/after pair).
SOURCE = Path(__file__).resolve().parent.parent


def _find(path: str) -> str:
    """A profiled file's path on this machine (py-spy shows some relative to sys.path)."""
    if Path(path).exists() and "imgflow/" not in path:
        return path
    return str(SOURCE / path[path.index("imgflow/") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--cpu-ms", type=float, default=None)
    parser.add_argument(
        "--per-image-only",
        action="store_true",
        help="leave start-up out (py-spy slows imports far more than the rest, so its share"
        " of samples overstates it; time it apart: `/usr/bin/time imgflow run` of one image)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="the checkout whose imgflow was profiled (default: this one); e.g."
        " bench/work/baseline-src for a profile of the baseline",
    )
    args = parser.parse_args()
    global SOURCE
    SOURCE = args.source.resolve() if args.source else SOURCE
    totals: collections.Counter[str] = collections.Counter()
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stage = stage_of(stack.split(";")) if stack and count.isdigit() else None
        if stage is not None and not (args.per_image_only and stage == STARTUP):
            totals[stage] += int(count)
    every = sum(totals.values())
    if not every:
        sys.exit("no samples")
    print("| stage | share of samples | us per image |")
    print("|---|---|---|")
    for stage, n in totals.most_common():
        share = n / every
        us = f"{share * args.cpu_ms * 1000:.0f}" if args.cpu_ms else "-"
        print(f"| {stage} | {100 * share:.1f}% | {us} |")


if __name__ == "__main__":
    main()
