"""aws-throttle: imgflow's pipeline on moto against a host that refuses the first half.

    python bench/aws_throttle.py [--images 100] [--batch-size 50] [--json PATH]

Deployed with imgflow's deployer on moto (the real zip and state machine, Step Functions
executed by moto's interpreter, the download Lambdas run in process from the deployed zip
by tests/aws/lambda_invoke.py, as bench/aws_cost.py does), one job of N distinct GIFs from
a server on 127.0.0.1 that answers 429 to its first N requests (the first half, when every
image needs one 200) and 200 after. Two runs: the 429s without and with ``Retry-After: 1``.
Reported per run: the job's status, images stored, wall time from start to the job's end,
imgflow's attempts (summed over the records) and the server's answers by status.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "aws")]

from aws_cost import GIF, http_server  # noqa: E402
from lambda_invoke import invocation_counts, patched, reset_counts  # noqa: E402
from moto import mock_aws  # noqa: E402
from pipeline_env import MOTO_CONFIG, deploy_pipeline, pipeline_config  # noqa: E402

from imgflow.aws.client import connect  # noqa: E402
from imgflow.aws.job import job_body, start_job, wait_for_job  # noqa: E402

CONCURRENCY = 8  # lambdaConcur: fetches in flight per download Lambda
MAX_BATCHES = 2  # download Lambdas at once


@dataclass
class Refusals:
    """What the server answered: the first `refuse` requests get 429, the rest 200."""

    refuse: int
    retry_after: str | None
    answers: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            status = 429 if len(self.answers) < self.refuse else 200
            self.answers.append((time.monotonic(), status))
            return status


def _handler(state: Refusals) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status = state.next_status()
            body = GIF if status == 200 else b"Too Many Requests\n"
            self.send_response(status)
            self.send_header("Content-Type", "image/gif" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if status == 429 and state.retry_after is not None:
                self.send_header("Retry-After", state.retry_after)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def refusing_server(state: Refusals) -> AbstractContextManager[str]:
    return http_server(_handler(state))


@dataclass
class Run:
    name: str
    images: int
    status: str
    stored: int
    failed: int
    wall_s: float
    attempts: int
    max_attempts: int
    answers: dict[str, int]
    invocations: dict[str, int]
    errors: list[str]


def measure(name: str, images: int, batch_size: int, retry_after: str | None) -> Run:
    state = Refusals(refuse=images, retry_after=retry_after)
    paths = [f"img/{i:05d}.gif" for i in range(images)]
    with tempfile.TemporaryDirectory() as tmp, mock_aws(config=MOTO_CONFIG), patched():
        aws = connect(region="us-east-1")
        cfg = pipeline_config(Path(tmp), deployment=f"throttle-{name}", max_batches=MAX_BATCHES)
        deployed = deploy_pipeline(aws, cfg)
        with refusing_server(state) as base_url:
            reset_counts()
            began = time.monotonic()
            body = job_body(base_url, paths, CONCURRENCY)
            started = start_job(aws, deployed.bucket, deployed.state_machine_arn, body, batch_size)
            status = wait_for_job(aws, deployed.bucket, started.execution_arn, poll_seconds=0.5)
            wall = time.monotonic() - began
        records = list(status.records)
    answers = Counter(code for _, code in state.answers)
    return Run(
        name=name,
        images=images,
        status=status.status,
        stored=status.summary.stored,
        failed=status.summary.failed,
        wall_s=wall,
        attempts=sum(r.attempts for r in records),
        max_attempts=max((r.attempts for r in records), default=0),
        answers={str(k): v for k, v in sorted(answers.items())},
        invocations=invocation_counts(),
        errors=sorted({r.error for r in records if r.error})[:3],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    runs = []
    for name, retry_after in (("429", None), ("429-retry-after", "1")):
        run = measure(name, args.images, args.batch_size, retry_after)
        print(
            f"{name}: {run.status}, stored {run.stored}/{run.images} in {run.wall_s:.1f} s, "
            f"{run.attempts} attempts (most for one image {run.max_attempts}), "
            f"server answers {run.answers}",
            flush=True,
        )
        runs.append(run)
    summary: dict[str, Any] = {
        "images": args.images,
        "batch_size": args.batch_size,
        "concurrency": CONCURRENCY,
        "max_batches": MAX_BATCHES,
        "runs": [asdict(r) for r in runs],
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
