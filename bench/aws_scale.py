"""The plan and consolidate handlers at millions of paths: peak memory and time.

Each handler is called directly, in a fresh process of its own, on objects kept in files
(tests/support/disk_s3.py: moto would hold them in memory); the peak is the process's
maximum resident set (ru_maxrss), which includes the interpreter and imports (measured
alone as "baseline"). The inputs are made by another process first:

    plan          a job object of N distinct paths, uploaded one per line (as the CLI does)
    plan-urls     a urls job object of N distinct full URLs over 1,000 hosts (interleaved),
                  planned in lanes (--steps plan-urls: `python bench/aws_scale.py --sizes
                  1000000 --steps plan-urls`)
    consolidate   N failed records in result objects of 1,000 (every image failed: the
                  largest failures.json)

    python bench/aws_scale.py --sizes 1000000,10000000 [--steps plan,consolidate] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.disk_s3 import DiskS3  # noqa: E402

from imgflow.aws.runtime.job_lines import job_lines  # noqa: E402
from imgflow.aws.runtime.jobs import job_key, put_json_array, result_key  # noqa: E402

BUCKET = "bench"
BASE = "https://images.example.com/"
PER_BATCH = 1000


class _Entries:
    """A job body's entries, made as they are read (never a list of N): distinct paths, or
    distinct full URLs over 1,000 hosts, interleaved."""

    def __init__(self, count: int, urls: bool) -> None:
        self.count, self.urls = count, urls

    def __iter__(self) -> Any:
        if self.urls:
            return (f"https://h{n % 1000}.example.com/p/{n:09d}.jpg" for n in range(self.count))
        return (f"p/{n % 9973}/{n:09d}.jpg" for n in range(self.count))


def make_job(root: Path, count: int, *, urls: bool = False) -> None:
    """The job object of `count` entries (a urls job with `urls`), one entry per line."""
    path = root / BUCKET / job_key("bench")
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = _Entries(count, urls)
    body: dict[str, Any] = (
        {"urls": entries} if urls else {"baseUrl": BASE, "resourcePaths": entries}
    )
    with open(path, "wb") as out:
        for line in job_lines(body):
            out.write(line)


def make_results(root: Path, count: int) -> None:
    s3: Any = DiskS3(root)
    for batch in range(count // PER_BATCH):
        rows = (
            {"url": f"{BASE}{batch}/{n}.jpg", "path": f"{batch}/{n}.jpg", "outcome": "failed",
             "error": f"Could not find: {BASE}{batch}/{n}.jpg"}
            for n in range(PER_BATCH)
        )  # fmt: skip
        put_json_array(s3, BUCKET, result_key("bench", batch), rows)


def run_handler(step: str, root: Path, count: int) -> dict[str, Any]:
    s3: Any = DiskS3(root)
    started = time.perf_counter()
    if step in ("plan", "plan-urls"):
        from imgflow.aws.runtime.plan import plan_job

        request = {"manifest": {"bucket": BUCKET, "key": job_key("bench")}}
        result = plan_job(s3, BUCKET, "bench", request)
        check = result["expected"] == count
    elif step == "consolidate":
        from imgflow.aws.runtime.consolidate import consolidate

        plan = {
            "jobId": "bench",
            "manifestKey": "jobs/bench/batches.json",
            "batches": count // PER_BATCH,
            "expected": count,
        }
        result = consolidate(s3, BUCKET, plan, 50)
        check = result["failed"] == count
    else:
        check = True
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        # CPU of the whole process (the wall time above suffers on a loaded machine)
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ok": check,
    }


def child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--steps", default="plan,consolidate")
    parser.add_argument("--json")
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        step, folder, count = args.child
        root, n = Path(folder), int(count)
        if step in ("make-plan", "make-plan-urls"):
            make_job(root, n, urls=step == "make-plan-urls")
        elif step == "make-consolidate":
            make_results(root, n)
        print(json.dumps(run_handler(step, root, n)))
        return
    rows: dict[str, Any] = {"baseline": child("baseline", ".", "0")}
    print(f"baseline (interpreter and imports): {rows['baseline']['peak_mb']} MB")
    for size in (int(s) for s in args.sizes.split(",")):
        for step in args.steps.split(","):
            with tempfile.TemporaryDirectory(prefix="imgflow-aws-scale-") as folder:
                child(f"make-{step}", folder, str(size))
                row = child(step, folder, str(size))
            rows[f"{step}_{size}"] = row
            print(
                f"{step:12} {size:>11,} paths: {row['seconds']:8.1f} s"
                f" ({row['cpu_s']:.1f} s CPU)  {row['peak_mb']:8.1f} MB"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
