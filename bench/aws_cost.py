"""AWS cost per 1,000 images on moto: imgflow's state machine against the original design.

    /tmp/venv/bin/python bench/aws_cost.py [--designs imgflow,original] [--sizes 500,1000]
        [--batch-size 250] [--max-batches 8] [--json PATH]

Both designs run on moto's Step Functions interpreter in this process; their Lambda
handlers run in process through the same patch of moto's no-docker Lambda backend
(tests/aws/lambda_invoke.py).

- imgflow: deployed with imgflow's deployer (the real zip and state machine); serves N
  distinct tiny GIFs from 127.0.0.1 and runs one job of N paths through the CLI's job driver.
- original: the original design rebuilt from its description (bench/original_design.py):
  batch Lambda -> inline Map of download Lambdas (5 paths each) flattened by "$[*][*]" ->
  consolidate Lambda -> inline Map of one DynamoDB putItem per image -> Choice. Its stand-in
  download Lambda fabricates a 200 record per path (no network).

Counted the same way for both:

- state transitions: every state entered (StateEntered), in the parent execution, in every
  Map iteration and in every child execution of a Distributed Map, counted inside moto's
  interpreter (moto keeps no history for child executions; the parent's StateEntered events
  are cross-checked against the parent's history);
- Lambda invocations: every invocation of every function;
- the largest state payload: every state's input and output, JSON-encoded as moto's 256 KB
  check encodes it;
- history events of the parent execution (AWS's limit is 25,000 per execution; moto does
  not enforce it).

The limits are extrapolated linearly from the two sizes run (default 500 and 1,000); the
cost per million images is computed from the run at 1,000 images (or the largest size)
with the list prices and the assumptions below, printed with the output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "aws"), str(BENCH)]

import original_design  # noqa: E402
from lambda_invoke import invocation_counts, patched, reset_counts  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.stepfunctions.parser.asl.component.state.state import CommonStateField  # noqa: E402
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str  # noqa: E402
from pipeline_env import MOTO_CONFIG, deploy_pipeline, pipeline_config  # noqa: E402

from imgflow.aws.client import Aws, connect  # noqa: E402
from imgflow.aws.job import job_body, start_job, wait_for_job  # noqa: E402

# -- list prices (us-east-1) and assumptions ------------------------------------------------
SFN_PER_TRANSITION = 0.025 / 1_000  # Step Functions Standard: $0.025 per 1,000 transitions
LAMBDA_PER_REQUEST = 0.20 / 1_000_000  # Lambda: $0.20 per 1M requests
LAMBDA_PER_GB_SECOND = 0.0000166667  # Lambda (x86): per GB-second
LAMBDA_ARM_PER_GB_SECOND = 0.0000133334  # Lambda (arm64, lambda.architecture): per GB-second
DYNAMODB_PER_WRITE = 1.25 / 1_000_000  # on-demand: $1.25 per 1M write request units
WRITES_PER_IMAGE = 1  # one item (< 1 KB, so 1 WRU) per stored image, in both designs
CONTROL_SECONDS = 1.0  # assumed duration of a plan/batch or consolidate invocation
CONTROL_MB = 512  # memory assumed for plan/batch and consolidate (imgflow's defaults)
DOWNLOAD_MB = 1024  # memory assumed for a download Lambda (imgflow's default)
SECONDS_PER_IMAGE = 0.050  # assumed fetch time per image; a batch takes
#                            images_per_batch * SECONDS_PER_IMAGE / batch concurrency
STATE_LIMIT_BYTES = 256 * 1024  # Step Functions payload limit per state input/output
HISTORY_LIMIT = 25_000  # Step Functions history events per execution

GB_SECOND_PRICE = f"{LAMBDA_PER_GB_SECOND:.10f}".rstrip("0")

GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
IMGFLOW_CONCURRENCY = 8  # lambdaConcur of the imgflow job (fetches in flight per batch)


@dataclass
class _Probe:
    """What the interpreter hook records while one execution runs."""

    entered: int = 0
    largest: int = 0
    largest_at: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.entered, self.largest, self.largest_at = 0, 0, ""

    def saw(self, state: str, where: str, value: Any) -> None:
        size = len(to_json_str(value).encode("utf-8"))
        with self.lock:
            if size > self.largest:
                self.largest, self.largest_at = size, f"{state} ({where})"


_probe = _Probe()
_original_eval_body = CommonStateField._eval_body


def _counting_eval_body(self: Any, env: Any) -> None:
    with _probe.lock:
        _probe.entered += 1
    _probe.saw(self.name, "input", env.states.get_input())
    _original_eval_body(self, env)
    _probe.saw(self.name, "output", env.states.get_input())


@dataclass
class Run:
    design: str
    images: int
    status: str
    stored: int
    transitions: int
    parent_state_entered: int
    parent_events: int
    invocations: dict[str, int]
    largest_payload: int
    largest_at: str
    seconds: float
    note: str = ""

    @property
    def total_invocations(self) -> int:
        return sum(self.invocations.values())


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
    with http_server(_Gif) as base:
        yield base


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 with `handler`; its base URL, stopped after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _paths(images: int) -> list[str]:
    return [f"img/{i:07d}.gif" for i in range(images)]


def _history(aws: Aws, execution_arn: str) -> list[dict[str, Any]]:
    sfn, token = aws.stepfunctions(), None
    events: list[Any] = []
    while True:
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def _role(fn: str) -> str:
    return "download" if "download" in fn else "control"


def measure_imgflow(images: int, batch_size: int, max_batches: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp, mock_aws(config=MOTO_CONFIG), patched():
        aws = connect(region="us-east-1")
        cfg = pipeline_config(Path(tmp), max_batches=max_batches)
        deployed = deploy_pipeline(aws, cfg)
        with gif_server() as base_url:
            body = job_body(base_url, _paths(images), IMGFLOW_CONCURRENCY)
            reset_counts()
            _probe.reset()
            began = time.monotonic()
            started = start_job(aws, deployed.bucket, deployed.state_machine_arn, body, batch_size)
            status = wait_for_job(aws, deployed.bucket, started.execution_arn, poll_seconds=2)
            elapsed = time.monotonic() - began
        history = _history(aws, started.execution_arn)
    note = f"batches of {batch_size}, lambdaConcur {IMGFLOW_CONCURRENCY}"
    return _measured(
        "imgflow", images, status.status, status.summary.stored, history, elapsed, note
    )


def _measured(
    design: str,
    images: int,
    status: str,
    stored: int,
    history: list[dict[str, Any]],
    elapsed: float,
    note: str,
) -> Run:
    """A run's figures: the probe's counts, the parent history and the invocations."""
    return Run(
        design=design,
        images=images,
        status=status,
        stored=stored,
        transitions=_probe.entered,
        parent_state_entered=sum(1 for e in history if e["type"].endswith("StateEntered")),
        parent_events=len(history),
        invocations=invocation_counts(),
        largest_payload=_probe.largest,
        largest_at=_probe.largest_at,
        seconds=elapsed,
        note=note,
    )


def _deploy_original(aws: Aws, name: str) -> dict[str, str]:
    """Role, three functions (this repo's bench/original_design.py as their zip), table,
    topic and the state machine. Returns the ARNs and names the run needs."""
    import io
    import zipfile

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.write(Path(original_design.__file__), "original_design.py")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = aws.iam().create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    role_arn = role["Role"]["Arn"]
    arns = {}
    for fn, handler in original_design.FUNCTIONS.items():
        memory = DOWNLOAD_MB if fn == "download" else CONTROL_MB
        arns[fn] = aws.lambda_().create_function(
            FunctionName=f"{name}-{fn}",
            Runtime="python3.12",
            Role=role_arn,
            Handler=f"original_design.{handler}",
            Code={"ZipFile": code.getvalue()},
            MemorySize=memory,
            Timeout=120,
        )["FunctionArn"]
    table = f"{name}-urlToName"
    aws.dynamodb().create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "url", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "url", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic_arn = aws.sns().create_topic(Name=f"{name}-errored")["TopicArn"]
    definition = original_design.definition(
        batch_arn=arns["batch"],
        download_arn=arns["download"],
        consolidate_arn=arns["consolidate"],
        table=table,
        topic_arn=topic_arn,
    )
    machine = aws.stepfunctions().create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=role_arn, type="STANDARD"
    )
    return {"state_machine_arn": machine["stateMachineArn"], "table": table}


def measure_original(images: int, timeout: float = 300.0) -> Run:
    with mock_aws(config=MOTO_CONFIG), patched():
        aws = connect(region="us-east-1")
        deployed = _deploy_original(aws, "original-map-io")
        body = {
            "baseUrl": original_design.BASE_URL,
            "resourcePaths": _paths(images),
            "lambdaConcur": original_design.LAMBDA_CONCUR,
        }
        sfn = aws.stepfunctions()
        reset_counts()
        _probe.reset()
        began = time.monotonic()
        arn = sfn.start_execution(
            stateMachineArn=deployed["state_machine_arn"],
            name=f"original-{images}",
            input=json.dumps(body),
        )["executionArn"]
        while True:
            described = sfn.describe_execution(executionArn=arn)
            status = described["status"]
            if status != "RUNNING" or time.monotonic() - began > timeout:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        history = _history(aws, arn)
        stored = aws.dynamodb().scan(TableName=deployed["table"], Select="COUNT")["Count"]
    note = ""
    if status != "SUCCEEDED":
        failed = [e for e in history if e["type"] == "ExecutionFailed"]
        details = failed[0].get("executionFailedEventDetails", {}) if failed else {}
        note = f"{details.get('error', status)}: {details.get('cause', '')}"[:160]
    note = note or (
        f"batches of {original_design.BATCH_SIZE}, lambdaConcur "
        f"{original_design.LAMBDA_CONCUR}, "
        f"MaxConcurrency {original_design.MAX_LAMBDA_CONCURRENCY}"
        " (assumed); download records fabricated (no network); putItem ran as the"
        " dynamodb:putItem integration in moto"
    )
    return _measured("original", images, status, stored, history, elapsed, note)


# -- report ---------------------------------------------------------------------------------


def _limit(runs: list[Run], attr: str, limit: int) -> tuple[float | None, float, str]:
    """(images at which `attr` reaches `limit`, growth per image, how it was extrapolated)."""
    ok = sorted((r for r in runs if r.status == "SUCCEEDED"), key=lambda r: r.images)
    if not ok:
        return None, 0.0, "no successful run"
    last = ok[-1]
    y1 = getattr(last, attr)
    if len(ok) >= 2 and ok[0].images != last.images:
        first = ok[0]
        slope = (y1 - getattr(first, attr)) / (last.images - first.images)
        how = f"linear fit {first.images:,} -> {last.images:,}"
    else:
        slope = y1 / last.images
        how = "one size run: assumed proportional, a worst case; pass two --sizes to fit"
    if slope <= 1e-6:
        return None, slope, how
    return last.images + (limit - y1) / slope, slope, how


def _reached(n: float | None) -> str:
    return "never reached (does not grow)" if n is None else f"reached at ~{n:,.0f} images"


@dataclass
class Cost:
    transitions: float
    requests: float
    gb_seconds: float
    sfn: float
    lambda_requests: float
    lambda_compute: float
    dynamodb: float
    lines: list[str]

    @property
    def total(self) -> float:
        return self.sfn + self.lambda_requests + self.lambda_compute + self.dynamodb


def cost_per_million(run: Run, concurrency: int) -> Cost:
    """Dollars per 1,000,000 images, as 1,000,000 / run.images repetitions of the run."""
    scale = 1_000_000 / run.images
    transitions = run.transitions * scale
    requests = run.total_invocations * scale
    lines = []
    gb_seconds = 0.0
    for fn, count in sorted(run.invocations.items()):
        per_million = count * scale
        if _role(fn) == "download":
            seconds = (run.images / count) * SECONDS_PER_IMAGE / concurrency
            mb = DOWNLOAD_MB
            why = f"{run.images / count:g} images x {SECONDS_PER_IMAGE} s / {concurrency}"
        else:
            seconds, mb, why = CONTROL_SECONDS, CONTROL_MB, "assumed"
        gbs = per_million * seconds * mb / 1024
        gb_seconds += gbs
        lines.append(
            f"    {fn}: {per_million:,.0f} invocations x {seconds:g} s ({why}) "
            f"x {mb / 1024:g} GB = {gbs:,.0f} GB-s"
        )
    return Cost(
        transitions=transitions,
        requests=requests,
        gb_seconds=gb_seconds,
        sfn=transitions * SFN_PER_TRANSITION,
        lambda_requests=requests * LAMBDA_PER_REQUEST,
        lambda_compute=gb_seconds * LAMBDA_PER_GB_SECOND,
        dynamodb=1_000_000 * WRITES_PER_IMAGE * DYNAMODB_PER_WRITE,
        lines=lines,
    )


def report(runs: list[Run]) -> tuple[str, dict[str, Any]]:
    out: list[str] = []
    out.append(
        "design    images  status     stored  transitions  trans/1k  invocations  inv/1k  "
        "parent-events  largest-state-B  seconds"
    )
    for r in runs:
        out.append(
            f"{r.design:<8}  {r.images:>6}  {r.status:<9}  {r.stored:>6}  {r.transitions:>11}  "
            f"{1000 * r.transitions / r.images:>8.1f}  {r.total_invocations:>11}  "
            f"{1000 * r.total_invocations / r.images:>6.1f}  {r.parent_events:>13}  "
            f"{r.largest_payload:>15}  {r.seconds:>7.1f}"
        )
    out.append("")
    for r in runs:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(r.invocations.items()))
        out.append(
            f"{r.design} at {r.images:,}: {r.note}; invocations: {calls}; parent StateEntered "
            f"{r.parent_state_entered}; largest state payload in {r.largest_at}"
        )
    summary: dict[str, Any] = {"runs": [asdict(r) for r in runs], "designs": {}}

    designs = list(dict.fromkeys(r.design for r in runs))
    out += ["", "What breaks at scale (limits per execution; extrapolated linearly):"]
    for d in designs:
        mine = [r for r in runs if r.design == d]
        at_payload, per_img_b, how_p = _limit(mine, "largest_payload", STATE_LIMIT_BYTES)
        at_events, per_img_e, how_e = _limit(mine, "parent_events", HISTORY_LIMIT)
        ref = max(
            (r for r in mine if r.status == "SUCCEEDED"), key=lambda r: r.images, default=None
        )
        if ref is None:
            out.append(f"  {d}: no successful run")
            continue
        out.append(
            f"  {d}: largest state payload {ref.largest_payload:,} B at {ref.images:,} images "
            f"({per_img_b:.1f} B per image, {how_p}); 256 KB ({STATE_LIMIT_BYTES:,} B) "
            f"{_reached(at_payload)}"
        )
        out.append(
            f"  {d}: {ref.parent_events:,} history events in the parent execution at "
            f"{ref.images:,} images ({per_img_e:.2f} per image, {how_e}); 25,000 "
            f"{_reached(at_events)}"
        )
        summary["designs"][d] = {
            "payload_limit_images": at_payload,
            "history_limit_images": at_events,
            "payload_bytes_per_image": per_img_b,
            "events_per_image": per_img_e,
        }
    if "imgflow" in designs:
        out.append(
            "  imgflow: the parent history counts its own events only; each batch runs in a "
            "child execution with its own history (a handful of events; moto keeps none)."
        )

    out += [
        "",
        "Cost per 1,000,000 images at list prices (the 1,000-image run repeated; "
        "S3 requests/storage and data transfer left out, same images stored by both):",
        f"  Step Functions = transitions x ${SFN_PER_TRANSITION * 1000:.3f} / 1,000",
        f"  Lambda         = invocations x ${LAMBDA_PER_REQUEST * 1e6:.2f} / 1M "
        f"+ GB-seconds x ${GB_SECOND_PRICE}",
        "                   GB-seconds = sum over functions of invocations x seconds x GB",
        f"  DynamoDB       = images x {WRITES_PER_IMAGE} WRU "
        f"x ${DYNAMODB_PER_WRITE * 1e6:.2f} / 1M",
        f"  assumed: plan/batch and consolidate {CONTROL_SECONDS:g} s at {CONTROL_MB} MB each; "
        f"download {DOWNLOAD_MB} MB for images_per_batch x {SECONDS_PER_IMAGE * 1000:g} ms / "
        "the batch's concurrency; same memory for both designs (the original's CDK sets none, "
        "CDK's default would be 128 MB); no retries, no failures (no SNS).",
    ]
    rows = []
    for d in designs:
        mine = [r for r in runs if r.design == d and r.status == "SUCCEEDED"]
        if not mine:
            continue
        ref = next((r for r in mine if r.images == 1000), max(mine, key=lambda r: r.images))
        concurrency = IMGFLOW_CONCURRENCY if d == "imgflow" else original_design.LAMBDA_CONCUR
        c = cost_per_million(ref, concurrency)
        out.append(f"  {d} (from the {ref.images:,}-image run):")
        out.append(
            f"    Step Functions: {c.transitions:,.0f} transitions x $0.025 / 1,000 = ${c.sfn:,.2f}"
        )
        out.append(
            f"    Lambda requests: {c.requests:,.0f} x $0.20 / 1M = ${c.lambda_requests:,.4f}"
        )
        out += c.lines
        out.append(
            f"    Lambda compute: {c.gb_seconds:,.0f} GB-s x ${GB_SECOND_PRICE} "
            f"= ${c.lambda_compute:,.2f}"
        )
        out.append(f"    DynamoDB: 1,000,000 WRU x $1.25 / 1M = ${c.dynamodb:,.2f}")
        arm = c.gb_seconds * LAMBDA_ARM_PER_GB_SECOND
        out.append(
            f"    on arm64 (lambda.architecture: arm64): Lambda compute {c.gb_seconds:,.0f} GB-s"
            f" x ${LAMBDA_ARM_PER_GB_SECOND:.10f}".rstrip("0")
            + f" = ${arm:,.2f}; total ${c.total - c.lambda_compute + arm:,.2f} / 1M"
        )
        summary["designs"].setdefault(d, {})["cost_per_million_arm64"] = (
            c.total - c.lambda_compute + arm
        )
        rows.append((d, c))
        summary["designs"].setdefault(d, {})["cost_per_million"] = {
            "step_functions": c.sfn,
            "lambda_requests": c.lambda_requests,
            "lambda_compute": c.lambda_compute,
            "dynamodb": c.dynamodb,
            "total": c.total,
            "transitions_per_1000": 1000 * ref.transitions / ref.images,
            "invocations_per_1000": 1000 * ref.total_invocations / ref.images,
        }
    if rows:
        out += [
            "",
            "design    $ Step Functions  $ Lambda req  $ Lambda GB-s  $ DynamoDB  $ total / 1M",
        ]
        for d, c in rows:
            out.append(
                f"{d:<8}  {c.sfn:>16.2f}  {c.lambda_requests:>12.4f}  {c.lambda_compute:>13.2f}  "
                f"{c.dynamodb:>10.2f}  {c.total:>12.2f}"
            )
        if len(rows) == 2 and rows[0][1].total > 0:
            (a, ca), (b, cb) = rows
            out.append(
                f"{b} / {a}: {cb.transitions / ca.transitions:.0f}x the transitions, "
                f"{cb.requests / ca.requests:.0f}x the Lambda invocations, "
                f"{cb.total / ca.total:.1f}x the cost"
            )
    return "\n".join(out), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", default="imgflow,original")
    parser.add_argument("--sizes", default="500,1000")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--max-batches", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = set(designs) - {"imgflow", "original"}
    if unknown:
        parser.error(f"unknown design(s): {', '.join(sorted(unknown))}")
    sizes = [int(s) for s in args.sizes.split(",")]
    sys.setrecursionlimit(20_000)
    CommonStateField._eval_body = _counting_eval_body  # type: ignore[method-assign]
    runs: list[Run] = []
    for design in designs:
        for size in sizes:
            if design == "imgflow":
                run = measure_imgflow(size, args.batch_size, args.max_batches)
            else:
                run = measure_original(size)
            print(f"# {design} {size}: {run.status} in {run.seconds:.1f} s", file=sys.stderr)
            runs.append(run)
    text, summary = report(runs)
    print(text, flush=True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
