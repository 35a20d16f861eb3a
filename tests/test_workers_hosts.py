"""`--workers N` over a table of many hosts: each host's items go to one worker, which
keeps that host's gate (its cap, rate and cool-down) and its connections; the run's cap on
requests in flight is split among the workers. The CLI runs as a real process against
loopback servers that count their own peak in flight and their connections."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, cli_argv, cli_env
from support.faultserver import FaultServer
from support.processes import reaped, signalled
from support.replies import Delay, Ok, Status
from test_hosts import peak
from test_workers import check, stored_rows, workers_of

from imgflow.demo.images import make_gif
from imgflow.engine.plan import Item
from imgflow.local.settings import RunSettings
from imgflow.local.workers.coordinator import partitioned
from imgflow.local.workers.worker import WorkerStart

GIF = make_gif("h", 4)
HOSTS = 4


@pytest.fixture
def hosts() -> Iterator[list[FaultServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(FaultServer()) for _ in range(HOSTS)]


def table(tmp_path: Path, servers: list[FaultServer], count: int, delay: float) -> list[str]:
    """`count` images on each server (answered after `delay`), shuffled into one table."""
    urls = []
    for n, server in enumerate(servers):
        for i in range(count):
            server.set(f"/h{n}/{i}.gif", Delay(delay, Ok(GIF)))
            urls.append(server.url(f"/h{n}/{i}.gif"))
    random.Random(5).shuffle(urls)
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    return urls


def argv(tmp_path: Path, *flags: str) -> list[str]:
    return cli_argv(
        "run", "--urls-file", str(tmp_path / "urls.txt"), "--data-dir", str(tmp_path / "data"),
        "-o", "json", *flags,
    )  # fmt: skip


def caps_held(servers: list[FaultServer], cap: int) -> None:
    """Each server's own count: never more than `cap` in flight, and at most `cap`
    connections opened in all (one worker's pool talked to it: two workers' pools would
    each open their own)."""
    peaks = [s.max_in_flight for s in servers]
    assert max(peaks) <= cap, peaks
    assert max(peaks) == cap  # the cap was reached: the test is not idle
    connections = [s.connections for s in servers]
    assert max(connections) <= cap, connections


def test_each_host_is_one_workers_and_its_cap_holds(
    hosts: list[FaultServer], tmp_path: Path
) -> None:
    """-c 2 --max-in-flight 5 --workers 2 over 4 hosts: each host sees at most 2 in flight
    and 2 connections (its one worker's), the four together at most 5, and every image is
    stored once."""
    urls = table(tmp_path, hosts, 16, 0.05)
    done = subprocess.run(
        argv(tmp_path, "-c", "2", "--max-in-flight", "5", "--workers", "2", "--batch-size", "8"),
        env=cli_env(FAST_ENV), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"] == {"total": 64, "stored": 64, "skipped": 0, "failed": 0}, doc
    caps_held(hosts, 2)
    spans = [span for server in hosts for span in server.spans()]
    assert 4 <= peak(spans) <= 5  # the run's cap, across both workers (and reached)
    assert sum(len(s.requests) for s in hosts) == len(urls) + HOSTS  # (robots.txt, once each)


def test_a_killed_workers_hosts_are_taken_over_and_the_run_finishes(
    hosts: list[FaultServer], tmp_path: Path
) -> None:
    """kill -9 of one worker: its hosts go to a worker of the run, their items are run
    again, and each host still never sees more than its cap in flight."""
    urls = table(tmp_path, hosts, 20, 0.1)
    proc = subprocess.Popen(
        argv(tmp_path, "-c", "2", "--workers", "2", "--batch-size", "8"),
        env=cli_env(FAST_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE, **signalled(),
    )  # fmt: skip
    with reaped(proc):
        victim = min(workers_of(proc, 2))
        assert hosts[0].wait_for_requests(6, timeout=30)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert json.loads(out)["summary"] == {"total": 80, "stored": 80, "skipped": 0, "failed": 0}
    peaks = [s.max_in_flight for s in hosts]
    assert max(peaks) <= 2, peaks
    assert len(stored_rows(tmp_path / "data")) == len(urls)
    assert check(tmp_path / "data")[0] == 0


def test_a_429_cools_its_owners_host_and_the_summary_counts_it(
    hosts: list[FaultServer], tmp_path: Path
) -> None:
    """A 429 with Retry-After: 1 at a host a worker owns: that host is quiet for a second
    (its gate is the owner's), and the run's summary counts the throttle."""
    table(tmp_path, hosts[:2], 16, 0.03)
    first = hosts[0]
    first.set("/h0/0.gif", Status(429, retry_after=1), Ok(GIF))
    done = subprocess.run(
        argv(tmp_path, "-c", "2", "--workers", "2", "--batch-size", "6"),
        env=cli_env(FAST_ENV), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["stored"] == 32
    refused = next(r.time for r in first.requests if r.path == "/h0/0.gif")
    quiet = [r.time - refused for r in first.requests if 0.25 < r.time - refused < 0.9]
    assert quiet == [], quiet
    assert f"throttled by {first.url('/').split('//')[1].rstrip('/')} 1 time" in done.stderr


def test_hosts_are_partitioned_only_where_each_worker_can_have_one() -> None:
    """A table of full URLs with at least as many hosts as workers (and a run cap of one
    request per worker) is partitioned; one host, or a --base-url run, keeps the shared
    gate."""

    def start(per_host: bool, in_flight: int = 8) -> WorkerStart:
        return WorkerStart(RunSettings(), Path(), "r", 2, 1, in_flight, False, None, per_host)

    def first(*hosts: str) -> list[Item]:
        return [Item(f"http://{host}/{i}.gif", f"{i}.gif") for host in hosts for i in range(3)]

    assert partitioned(first("a", "b"), start(True), 2)
    assert partitioned(first("a", "b", "c"), start(True), 2)
    assert not partitioned(first("a"), start(True), 2)  # one host: its gate is shared
    assert not partitioned(first("a", "b"), start(True), 3)  # a worker would have none
    assert not partitioned(first("a", "b"), start(True, in_flight=1), 2)
    assert not partitioned(first("a", "b"), start(False), 2)
    assert start(True).host_cap == 2 and start(False).host_cap == 8


def test_a_one_host_table_keeps_the_shared_gate_at_its_cap(
    hosts: list[FaultServer], tmp_path: Path
) -> None:
    """A table of full URLs from one host on 2 workers: its gate stays the coordinator's
    (the one host is not given to one worker), and holds the per-host cap -c, not the
    run's --max-in-flight."""
    table(tmp_path, hosts[:1], 40, 0.05)
    done = subprocess.run(
        argv(tmp_path, "-c", "2", "--workers", "2", "--batch-size", "5"),
        env=cli_env(FAST_ENV), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["stored"] == 40
    assert hosts[0].max_in_flight == 2
