"""`imgflow retry` stores in the layout of the run it retries, not the configured one."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli_run import FAST_ENV, run_cli
from support.faultserver import FaultServer, Ok, Status
from support.sharded_run import webdataset_run

from imgflow.demo.images import make_gif


def test_a_retry_of_a_webdataset_run_writes_a_shard(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    fault_server.set("/a.gif", Ok(make_gif("a", 4)))
    fault_server.set("/late.gif", Status(404))
    first = webdataset_run(fault_server.base_url, ["a.gif", "late.gif"], data)
    assert (first.summary.stored, first.summary.failed) == (1, 1)
    fault_server.set("/late.gif", Ok(make_gif("late", 4)))
    done = run_cli(
        "retry", first.run_id, "--data-dir", str(data), "-o", "json",
        cwd=tmp_path, env=FAST_ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["stored"] == 1
    assert f"run {first.run_id} stored its images as webdataset" in done.stderr
    assert sorted(p.name for p in (data / "shards").glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert not any((data / "images").rglob("*.gif")) if (data / "images").exists() else True
