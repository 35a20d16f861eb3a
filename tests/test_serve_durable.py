"""`imgflow serve` keeps accepted work: SIGTERM, kill -9 and a failing job lose nothing."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.faultserver import Delay, FaultServer, Ok
from support.serveproc import ServeProcess

from imgflow.demo.images import make_gif
from imgflow.demo.server import StaticServer
from imgflow.serve.worker import FAULT_ENV

GIF = make_gif("durable")


@pytest.fixture
def slow_server() -> Iterator[FaultServer]:
    """Every image after 0.2 s."""
    with FaultServer(fallback=Delay(0.2, Ok(GIF))) as server:
        yield server


def _images(folder: Path) -> int:
    return sum(1 for p in (folder / "imgflow-data" / "images").rglob("*") if p.is_file())


def _wait_stored(serve: ServeProcess, run_id: str, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while serve.run(run_id)["summary"]["stored"] < at_least:
        assert time.monotonic() < deadline, serve.log
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_jobs_survive_a_stop_and_a_restart_completes_them(
    tmp_path: Path, slow_server: FaultServer, sig: int
) -> None:
    big = {
        "baseUrl": slow_server.base_url,
        "resourcePaths": [f"big/{i}.gif" for i in range(30)],
        "lambdaConcur": 1,
    }
    small = {"baseUrl": slow_server.base_url, "resourcePaths": ["s/1.gif", "s/2.gif"]}
    with ServeProcess(tmp_path) as serve:
        first = serve.post_job(big)
        queued = [serve.post_job(small), serve.post_job(small)]
        _wait_stored(serve, first, 3)
        started = time.monotonic()
        code = serve.stop(sig)
        stopped_in = time.monotonic() - started
        log = serve.log
    if sig == signal.SIGTERM:
        assert code == 0, log
        assert stopped_in < 20, log  # a liveness bound, far above the expected second
        assert f"run {first} interrupted by shutdown; queued for the next start" in log
    saved = _images(tmp_path)
    assert 3 <= saved < 30

    with ServeProcess(tmp_path) as again:
        done = [again.wait_for(run_id) for run_id in (first, *queued)]
        if sig == signal.SIGKILL:
            assert f"resuming 1 run(s) a crash interrupted: {first}" in again.log
        assert "3 queued run(s) waiting" in again.log
        assert f"run {first} started (attempt 2" in again.log
        assert [d["state"] for d in done] == ["succeeded"] * 3, again.log
        resumed = done[0]
        assert resumed["attempts"] == 2 and resumed["localRun"] == f"{first}-2"
        summary = resumed["summary"]
        assert summary["total"] == 30 and summary["failed"] == 0
        if sig == signal.SIGTERM:  # what the first attempt saved is not fetched again
            assert summary["skipped"] >= 3
        # (kill -9 loses the index rows of the batch in progress: those are fetched again)
        with again.client() as client:
            assert len(client.get(f"/runs/{first}").json()["results"]) == 30
    assert _images(tmp_path) == 32


def test_a_202_is_durable_even_if_the_service_is_killed_right_after(
    tmp_path: Path, flag_server: StaticServer
) -> None:
    with ServeProcess(tmp_path) as serve:
        run_id = serve.post_job({"baseUrl": flag_server.base_url, "resourcePaths": ["ad/ad.gif"]})
        serve.stop(signal.SIGKILL)
    with ServeProcess(tmp_path) as again:
        assert again.wait_for(run_id)["state"] == "succeeded"


def test_a_job_that_raises_is_marked_failed_and_the_next_one_runs(
    tmp_path: Path, flag_server: StaticServer
) -> None:
    env = {FAULT_ENV: "/inject-fault"}
    with ServeProcess(tmp_path, env=env) as serve:
        broken = serve.post_job(
            {"baseUrl": flag_server.base_url + "/inject-fault", "resourcePaths": ["ad/ad.gif"]}
        )
        fine = serve.post_job({"baseUrl": flag_server.base_url, "resourcePaths": ["ad/ad.gif"]})
        failed = serve.wait_for(broken)
        assert failed["state"] == "failed"
        assert failed["error"].startswith("RuntimeError: unexpected failure (injected")
        assert serve.wait_for(fine)["state"] == "succeeded"
        later = serve.post_job({"baseUrl": flag_server.base_url, "resourcePaths": ["ae/ae.gif"]})
        assert serve.wait_for(later)["state"] == "succeeded"
        assert f"run {broken} failed: RuntimeError" in serve.log
        assert "Traceback" in serve.log  # an unexpected error is logged with its traceback
        assert serve.stop() == 0
