"""`imgflow run -o json` stopped by a signal prints the run so far: its document (the
images done, state interrupted) with the interruption stated as the text output states it
(where it stopped, the command that continues), and exits 130 (README)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, start_cli
from support.faultserver import Delay, FaultServer, Ok
from support.json_schemas import validate

from imgflow.demo.images import make_gif


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_json_run_prints_its_document_so_far(
    fault_server: FaultServer, tmp_path: Path, signum: signal.Signals
) -> None:
    gif = make_gif("i", 4)
    paths = [f"{i}.gif" for i in range(20)]
    fault_server.set("/0.gif", Ok(gif))
    for path in paths[1:]:
        fault_server.set("/" + path, Delay(0.3, Ok(gif)))
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    cli = start_cli(
        "run", "--base-url", fault_server.base_url, "--paths-file", "paths.txt",
        "-c", "1", "-o", "json",
        cwd=tmp_path, env=FAST_ENV, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert fault_server.wait_for_requests(3, timeout=30)  # under way, far from done
        cli.send_signal(signum)
        stdout, stderr = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert cli.returncode == 130, stderr
    doc = validate(json.loads(stdout), "run")
    run_id = doc["run"]
    stopped = doc["interrupted"].splitlines()
    assert stopped[0].startswith(f"run {run_id} interrupted at ")
    assert stopped[0].endswith("/20 images")
    assert stopped[1] == f"continue with: imgflow retry {run_id}"
    assert doc["interrupted"] in stderr  # the same lines as the text output's
    assert doc["state"] == "interrupted" and doc["summary"]["total"] == 20
    stored = [r["path"] for r in doc["results"] if r["outcome"] == "stored"]
    assert "0.gif" in stored and len(stored) < 20
    assert "Traceback" not in stderr
