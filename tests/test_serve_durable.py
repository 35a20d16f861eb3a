"""`imgflow serve` keeps accepted work: SIGTERM, kill -9 and a failing job lose nothing."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest
from support.faultserver import Delay, FaultServer, Ok
from support.serveproc import ServeProcess

from imgflow.demo.images import make_gif
from imgflow.demo.server import StaticServer
from imgflow.serve.queue import JobQueue
from imgflow.serve.worker import FAULT_ENV
from imgflow.sources.job_json import UrlsSource, full_url_item

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


def test_a_queue_written_before_urls_jobs_gains_the_column_and_keeps_its_jobs(
    tmp_path: Path,
) -> None:
    """A serve_jobs table from before (no urls column) is opened, its queued job runs as
    paths, and a job of URLs is stored with its entries (metadata included)."""
    path = tmp_path / "imgflow.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO serve_jobs (id, state, base_url, concurrency, total, duplicates, paths,"
            " submitted_at) VALUES ('old', 'queued', 'http://h', 2, 1, 0, 'a.gif', 1.0)"
        )
    queue = JobQueue(path)
    try:
        old = queue.get("old")
        assert old is not None and (old.base_url, queue.urls("old")) == ("http://h", None)
        assert queue.paths("old") == ["a.gif"]
        items = [
            full_url_item("http://a.example/x.gif", "u", MappingProxyType({"caption": "x"})),
            full_url_item("http://b.example/y.gif", "u"),
            full_url_item("http://a.example/x.gif", "u"),
        ]
        job = queue.add(None, [], 3, 10, UrlsSource(tuple(items)))
        stored = queue.get(job.id)
        assert stored is not None and stored.base_url is None
        assert (stored.total, stored.duplicates) == (2, 1)
        assert queue.urls(job.id) == [
            {"caption": "x", "url": "http://a.example/x.gif"},
            "http://b.example/y.gif",
            "http://a.example/x.gif",
        ]
    finally:
        queue.close()


OLD_SCHEMA = """
CREATE TABLE serve_jobs (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, base_url TEXT NOT NULL,
    concurrency INTEGER NOT NULL, total INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    paths TEXT NOT NULL, run_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    submitted_at REAL NOT NULL, started_at REAL, finished_at REAL
);
"""
