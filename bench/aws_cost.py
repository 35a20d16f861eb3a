"""State transitions and Lambda invocations per 1,000 images, measured on moto.

    /tmp/venv/bin/python bench/aws_cost.py [--sizes 1000,10000] [--batch-size 250]

Deploys the pipeline with imgflow's deployer into moto (in process; Lambda handlers run
from the deployed zip, see tests/aws/lambda_invoke.py), serves N distinct tiny GIFs from
127.0.0.1, runs one job of N paths through the CLI's job driver and counts:

- state transitions: every state entered, in the parent execution and in every child
  execution of the Distributed Map (counted in moto's interpreter: moto keeps no history
  for child executions; the parent's StateEntered events are cross-checked);
- Lambda invocations: every invocation of the three functions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "aws")]

from lambda_invoke import invocation_counts, patched, reset_counts  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.state import CommonStateField  # noqa: E402
from pipeline_env import MOTO_CONFIG, deploy_pipeline, pipeline_config  # noqa: E402

from imgflow.aws.client import connect  # noqa: E402
from imgflow.aws.job import job_body, start_job, wait_for_job  # noqa: E402

GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
_entered = 0
_lock = threading.Lock()
_original_eval_body = CommonStateField._eval_body


def _counting_eval_body(self: Any, env: Any) -> None:
    global _entered
    with _lock:
        _entered += 1
    _original_eval_body(self, env)


class _Gif(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(GIF)))
        self.end_headers()
        self.wfile.write(GIF)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def gif_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gif)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def measure(images: int, batch_size: int, max_batches: int) -> dict[str, Any]:
    global _entered
    with tempfile.TemporaryDirectory() as tmp, mock_aws(config=MOTO_CONFIG), patched():
        aws = connect(region="us-east-1")
        cfg = pipeline_config(Path(tmp), max_batches=max_batches)
        deployed = deploy_pipeline(aws, cfg)
        with gif_server() as base_url:
            body = job_body(base_url, (f"img/{i:07d}.gif" for i in range(images)), 8)
            reset_counts()
            _entered = 0
            began = time.monotonic()
            started = start_job(aws, deployed.bucket, deployed.state_machine_arn, body, batch_size)
            status = wait_for_job(aws, deployed.bucket, started.execution_arn, poll_seconds=2)
            elapsed = time.monotonic() - began
        history = aws.stepfunctions().get_execution_history(
            executionArn=started.execution_arn, maxResults=1000
        )["events"]
    parent = sum(1 for e in history if e["type"].endswith("StateEntered"))
    invocations = sum(invocation_counts().values())
    return {
        "images": images,
        "batch_size": batch_size,
        "status": status.status,
        "stored": status.summary.stored,
        "parent_events": len(history),
        "parent_state_entered": parent,
        "transitions": _entered,
        "invocations": invocations,
        "transitions_per_1000": 1000 * _entered / images,
        "invocations_per_1000": 1000 * invocations / images,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--max-batches", type=int, default=8)
    args = parser.parse_args()
    sys.setrecursionlimit(20_000)
    CommonStateField._eval_body = _counting_eval_body  # type: ignore[method-assign]
    print(
        "images  batch  status     stored  parent-events  transitions  invocations  "
        "trans/1k  inv/1k  seconds"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args.batch_size, args.max_batches)
        print(
            f"{r['images']:>6}  {r['batch_size']:>5}  {r['status']:<9}  {r['stored']:>6}  "
            f"{r['parent_events']:>13}  {r['transitions']:>11}  {r['invocations']:>11}  "
            f"{r['transitions_per_1000']:>8.1f}  {r['invocations_per_1000']:>6.1f}  "
            f"{r['seconds']:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
