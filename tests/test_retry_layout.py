"""`imgflow retry` stores in the layout of the run it retries, not the configured one."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli_run import FAST_ENV, run_cli
from support.faultserver import FaultServer, Ok, Status
from support.settings import quick_config
from support.sharded_run import webdataset_run

from imgflow.backends.base import Flags, Listener, RunView
from imgflow.backends.local import LocalBackend, run_settings
from imgflow.demo.images import make_gif
from imgflow.engine.job import validate_base_url
from imgflow.local.job import LocalJob
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job


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


def test_one_backend_gives_each_retry_its_own_runs_layout(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """Retrying a webdataset run leaves the backend as it was: its next retry, of a run that
    stored nothing (so has no layout of its own), stores as configured (files)."""
    data = tmp_path / "data"
    fault_server.set("/a.gif", Ok(make_gif("a", 4)))
    fault_server.set("/b.gif", Status(404))
    fault_server.set("/c.gif", Status(404))
    sharded = webdataset_run(fault_server.base_url, ["a.gif", "b.gif"], data)
    cfg = quick_config(timeout=0.5)
    backend = LocalBackend(cfg, data)
    source = from_job(validate_base_url(fault_server.base_url), ["c.gif"], None)
    nothing = run_job(
        LocalJob(source=source, concurrency=1, batch_size=5, max_batches=1), run_settings(cfg), data
    )
    assert nothing.summary.failed == 1
    fault_server.set("/b.gif", Ok(make_gif("b", 4)))
    fault_server.set("/c.gif", Ok(make_gif("c", 4)))
    notes: list[str] = []
    listener = Listener(note=notes.append, warn=notes.append, waiting=notes.append)
    for run_id in (sharded.run_id, nothing.run_id):
        view = backend.retry(run_id, Flags(), listener)
        assert isinstance(view, RunView) and view.ok, notes
    assert sorted(p.name for p in (data / "shards").glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert [p.name for p in (data / "images").rglob("*.gif")] == ["c.gif"]
    assert backend.cfg is cfg
