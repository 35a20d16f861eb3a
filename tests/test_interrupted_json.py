"""`imgflow run -o json` and `imgflow retry -o json` stopped by a signal print the run so
far: its document (the images done, state interrupted) with the interruption stated as the
text output states it (where it stopped, the command that continues), and exit 130
(README)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.cli_run import FAST_ENV, run_cli, start_cli
from support.faultserver import Delay, FaultServer, Ok
from support.json_schemas import validate

from imgflow.demo.images import make_gif

GIF = make_gif("i", 4)
PATHS = [f"{i}.gif" for i in range(20)]


def _stopped(
    server: FaultServer, tmp_path: Path, signum: signal.Signals, *args: str
) -> tuple[dict[str, Any], str]:
    """`imgflow ARGS -o json`, sent `signum` once 3 more requests came: (its document,
    its stderr), after checking it exited 130 with no traceback."""
    before = len(server.requests)
    cli = start_cli(
        *args, "-o", "json",
        cwd=tmp_path, env=FAST_ENV, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.wait_for_requests(before + 3, timeout=30)  # under way, far from done
        cli.send_signal(signum)
        stdout, stderr = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert cli.returncode == 130, stderr
    assert "Traceback" not in stderr
    doc = validate(json.loads(stdout), "run")
    run_id = doc["run"]
    stopped = doc["interrupted"].splitlines()
    assert stopped[0].startswith(f"run {run_id} interrupted at ")
    assert stopped[1] == f"continue with: imgflow retry {run_id}"
    assert doc["interrupted"] in stderr  # the same lines as the text output's
    assert doc["state"] == "interrupted"
    return doc, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_json_run_prints_its_document_so_far(
    fault_server: FaultServer, tmp_path: Path, signum: signal.Signals
) -> None:
    fault_server.set("/0.gif", Ok(GIF))
    for path in PATHS[1:]:
        fault_server.set("/" + path, Delay(0.3, Ok(GIF)))
    (tmp_path / "paths.txt").write_text("\n".join(PATHS) + "\n")
    doc, _ = _stopped(
        fault_server, tmp_path, signum,
        "run", "--base-url", fault_server.base_url, "--paths-file", "paths.txt", "-c", "1",
    )  # fmt: skip
    assert doc["interrupted"].splitlines()[0].endswith("/20 images")
    assert doc["summary"]["total"] == 20
    stored = [r["path"] for r in doc["results"] if r["outcome"] == "stored"]
    assert "0.gif" in stored and len(stored) < 20


def test_an_interrupted_json_retry_prints_its_document_so_far(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/0.gif", Ok(GIF))  # the others are not found: 19 failed
    (tmp_path / "paths.txt").write_text("\n".join(PATHS) + "\n")
    first = run_cli(
        "run", "--base-url", fault_server.base_url, "--paths-file", "paths.txt", "-c", "1",
        "-o", "json", cwd=tmp_path, env=FAST_ENV,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    parent = json.loads(first.stdout)["run"]
    for path in PATHS[1:]:
        fault_server.set("/" + path, Delay(0.3, Ok(GIF)))
    doc, stderr = _stopped(fault_server, tmp_path, signal.SIGINT, "retry", parent)
    assert doc["run"] != parent and f"retrying 19 failed images of run {parent}" in stderr
    assert doc["interrupted"].splitlines()[0].endswith("/19 images")
    assert doc["summary"]["total"] == 19
    stored = [r["path"] for r in doc["results"] if r["outcome"] == "stored"]
    assert "1.gif" in stored and len(stored) < 19
