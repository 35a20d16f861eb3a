"""The AWS cost case: bench/aws_cost.py on moto, for imgflow's state machine and the original
design; and bench/aws_scale.py: the plan and consolidate handlers at 1,000,000 and
10,000,000 paths (peak memory, time), called directly."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from harness.paths import BENCH, ROOT, WORK
from harness.report import Goal

GOALS = {"aws_transitions_per_1000": 15, "aws_invocations_per_1000": 10}
SCALE_SIZES = "1000000,10000000"
SCALE_TIMEOUT = 3600


def run_scale(python: str, sizes: str = SCALE_SIZES) -> dict[str, Any]:
    """bench/aws_scale.py: each handler's peak RSS and time at each size."""
    out = WORK / "aws_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [python, str(BENCH / "aws_scale.py"), "--sizes", sizes, "--json", str(out)],
            capture_output=True, text=True, timeout=SCALE_TIMEOUT, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"status": f"timeout (over {SCALE_TIMEOUT} s)"}
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"failed (exit {done.returncode}): {tail}"}
    return {"status": "ok", "output": done.stdout.strip(), "rows": json.loads(out.read_text())}


def run(python: str) -> dict[str, Any]:
    """bench/aws_cost.py: imgflow's state machine and the original design on moto."""
    script = BENCH / "aws_cost.py"
    if not script.exists():
        return {"status": "pending", "note": "bench/aws_cost.py is not written yet"}
    summary_file = WORK / "aws_cost.json"
    summary_file.parent.mkdir(parents=True, exist_ok=True)
    summary_file.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [python, str(script), "--designs", "imgflow,original", "--sizes", "500,1000",
             "--json", str(summary_file)],
            capture_output=True, text=True, timeout=420, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "note": "bench/aws_cost.py took over 420 s"}
    output = done.stdout.strip()
    stderr_tail = done.stderr.strip().splitlines()[-5:]
    status = "ok"
    if done.returncode != 0:
        # The cause is the last line of the traceback (or of whatever the script printed).
        cause = stderr_tail[-1] if stderr_tail else (output.splitlines() or ["no output"])[-1]
        status = f"failed (exit {done.returncode}): {cause}"
    result: dict[str, Any] = {
        "status": status,
        "seconds": time.perf_counter() - start,
        "output": output,
        "stderr_tail": stderr_tail,
    }
    if done.returncode == 0 and summary_file.exists():
        result["summary"] = json.loads(summary_file.read_text())
    result["scale"] = run_scale(python)
    return result


def section(data: dict[str, Any]) -> list[str]:
    """The cost script's output (always: "pending" when it did not run)."""
    aws = data.get("aws_cost", {})
    out = ["", "## AWS cost (bench/aws_cost.py, on moto)", ""]
    if aws.get("output"):
        out += [f"Status: {aws['status']}.", "", "```", aws["output"], "```"]
    else:
        out.append(f"{aws.get('status', 'pending')}: {aws.get('note', '')}")
    if aws.get("stderr_tail") and not str(aws.get("status")).startswith("ok"):
        out += ["", "Its last lines on stderr:", "", "```", *aws["stderr_tail"], "```"]
    scale = aws.get("scale", {})
    out += ["", "## AWS plan and consolidate at scale (bench/aws_scale.py)", ""]
    if scale.get("output"):
        out += ["```", scale["output"], "```"]
    else:
        out.append(str(scale.get("status", "pending")))
    return out


def goals(data: dict[str, Any]) -> list[Goal]:
    """State transitions and Lambda invocations per 1,000 images."""
    rows: list[Goal] = []
    aws = data.get("aws_cost", {}).get("summary", {}).get("designs", {}).get("imgflow", {})
    if "cost_per_million" in aws:
        per = aws["cost_per_million"]
        for key, label in (
            ("transitions", "state transitions"),
            ("invocations", "Lambda invocations"),
        ):
            value, target = per[f"{key}_per_1000"], GOALS[f"aws_{key}_per_1000"]
            rows.append((f"AWS {label} per 1,000 images (moto)", f"<= {target}", f"{value:.1f}",
                         value <= target))  # fmt: skip
    return rows
