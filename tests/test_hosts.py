"""Full URLs from many hosts: each host's queue on its own, caps per host and in all, the
circuit breaker and one DNS lookup per host.

Each loopback port is a host. Every server counts its own requests in flight (and their
times); the assertions are on those counts, never on how fast a run was.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.cli_run import run_cli
from support.faultserver import Delay, FaultServer, Ok, Status
from support.settings import quick_config
from support.sources import Urls

from imgflow.backends.local import run_settings
from imgflow.config import Config
from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine.failures import FailureKind
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.local.job import LocalJob, LocalRunResult, RunInterrupted
from imgflow.local.runner import run_job

GIF = make_gif("h")


class Recorder:
    """The run's progress: every record, in the order they finished."""

    def __init__(self) -> None:
        self.records: list[ResultRecord] = []

    def planned(self, run_id: str, total: int, duplicates: int) -> None:
        pass

    def record(self, record: ResultRecord) -> None:
        self.records.append(record)


def run_urls(
    urls: Sequence[str],
    data_dir: Path,
    *,
    concurrency: int,
    total: int = 64,
    breaker: int = 5,
    cfg: Config | None = None,
) -> tuple[LocalRunResult, Recorder]:
    job = LocalJob(
        source=Urls(urls),
        concurrency=concurrency,
        batch_size=50,
        max_batches=4,
        total_in_flight=total,
        breaker=breaker,
    )
    recorder = Recorder()
    result = run_job(job, run_settings(cfg or quick_config(retries=1)), data_dir, recorder)
    return result, recorder


def shuffled(*groups: list[str]) -> list[str]:
    urls = [url for group in groups for url in group]
    random.Random(7).shuffle(urls)
    return urls


def peak(spans: list[tuple[float, float]]) -> int:
    """The most spans open at once."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def servers() -> Iterator[list[FaultServer]]:
    started = [FaultServer(fallback=Ok(GIF)) for _ in range(4)]
    try:
        yield started
    finally:
        for server in started:
            server.close()


def test_a_slow_and_a_throttling_host_hold_no_other_host_up(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    fast, slow, throttling, _ = servers
    slow_reply = Delay(0.4, Ok(GIF))
    for i in range(24):
        slow.set(f"/s{i}.gif", slow_reply)
    throttling.storm(2, Status(429, b"slow down\n", retry_after=2))
    urls = shuffled(
        [fast.url(f"/f{i}.gif") for i in range(30)],
        [slow.url(f"/s{i}.gif") for i in range(24)],
        [throttling.url(f"/t{i}.gif") for i in range(20)],
    )
    result, _ = run_urls(urls, tmp_path, concurrency=2)
    assert (result.summary.stored, result.summary.failed) == (74, 0)
    # each host's cap, by its own server's count
    assert fast.max_in_flight <= 2 and slow.max_in_flight == 2 and throttling.max_in_flight <= 2
    fast_last = max(r.time for r in fast.requests)
    slow_last = max(r.time for r in slow.requests)
    # the slow host needs 24 x 0.4 s / 2 = 4.8 s; the fast host does not wait for it
    assert fast_last < slow_last - 2.5, (fast_last, slow_last)
    # nor for the throttling host's cool-down (Retry-After: 2 after its first answers)
    served = [r.time for r in throttling.requests[2:]]
    assert fast_last < min(served), (fast_last, min(served))
    assert len(throttling.requests) == 22  # every refused image asked once more


def test_the_rate_holds_per_host_and_hosts_go_side_by_side(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    hosts = servers[:3]
    urls = shuffled(*[[s.url(f"/r{i}.gif") for i in range(6)] for s in hosts])
    cfg = quick_config(retries=1, rate=5.0, adaptive_rate=False)
    result, _ = run_urls(urls, tmp_path, concurrency=4, cfg=cfg)
    assert result.summary.stored == 18
    for server in hosts:
        times = sorted(r.time for r in server.requests)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.12, gaps  # 1/5 s apart, less the server's own slack
    # the three hosts were served at the same time, not one after another
    firsts = [min(r.time for r in s.requests) for s in hosts]
    lasts = [max(r.time for r in s.requests) for s in hosts]
    assert max(firsts) < min(lasts) - 0.5


def test_max_in_flight_holds_across_all_hosts(servers: list[FaultServer], tmp_path: Path) -> None:
    reply = Delay(0.25, Ok(GIF))
    urls: list[list[str]] = []
    for n, server in enumerate(servers):
        for i in range(6):
            server.set(f"/d{n}-{i}.gif", reply)
        urls.append([server.url(f"/d{n}-{i}.gif") for i in range(6)])
    result, _ = run_urls(shuffled(*urls), tmp_path, concurrency=3, total=5)
    assert result.summary.stored == 24
    spans = [span for server in servers for span in server.spans()]
    assert peak(spans) == 5  # the cap is reached and held, across the four servers
    assert all(server.max_in_flight <= 3 for server in servers)


def test_a_host_refusing_connections_is_paused_after_n_failures(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    ok = servers[0]
    dead = f"http://127.0.0.1:{closed_port()}"
    urls = [f"{dead}/x{i}.gif" for i in range(30)] + [ok.url(f"/o{i}.gif") for i in range(10)]
    result, recorder = run_urls(urls, tmp_path, concurrency=1, breaker=3)
    assert result.summary.stored == 10 and result.summary.failed == 30
    kinds = [r.failure_kind for r in recorder.records if r.url.startswith(dead)]
    refused = kinds.count(FailureKind.CONNECTION_REFUSED)
    assert 3 <= refused <= 4, kinds  # the host's other worker may have one under way
    assert kinds.count(FailureKind.HOST_PAUSED) == 30 - refused
    paused = [r for r in recorder.records if r.failure_kind is FailureKind.HOST_PAUSED]
    assert all(r.attempts == 0 and r.outcome is Outcome.FAILED for r in paused)
    assert paused[0].error == (
        f"Host paused: {paused[0].url} (http://{dead[7:]} refused connections 3 times in a row)"
    )
    assert result.host_lines == (
        f"host {dead} paused: refused connections 3 times in a row"
        f" ({30 - refused} images not tried)",
    )


def test_a_name_that_does_not_resolve_is_looked_up_once(
    servers: list[FaultServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = servers[0]
    real = socket.getaddrinfo
    asked: list[str] = []

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith(".invalid"):
            asked.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    gone = "http://images.imgflow-test.invalid:8080"
    urls = [f"{gone}/n{i}.gif" for i in range(12)] + [ok.url(f"/o{i}.gif") for i in range(6)]
    result, recorder = run_urls(shuffled(urls), tmp_path, concurrency=2, breaker=50)
    assert asked == ["images.imgflow-test.invalid"]
    assert result.summary.stored == 6 and result.summary.failed == 12
    failed = [r for r in recorder.records if r.outcome is Outcome.FAILED]
    assert {r.failure_kind for r in failed} == {FailureKind.DNS_FAILED}
    assert result.host_lines == ("DNS lookup failed for 1 host (12 images)",)


def test_a_paused_unresolved_host_is_one_line_and_counted_once(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    urls = [f"http://a{n}.imgflow-test.invalid/p{i}.gif" for n in range(3) for i in range(10)]
    result, recorder = run_urls(urls, tmp_path, concurrency=1, breaker=2)
    assert result.summary.failed == 30
    lines = result.host_lines
    assert lines[-1] == "DNS lookup failed for 3 hosts (30 images)"
    assert [line.split(" paused:")[0] for line in lines[:-1]] == [
        f"host http://a{n}.imgflow-test.invalid" for n in range(3)
    ]
    assert all("did not resolve 2 times in a row" in line for line in lines[:-1])
    skipped = sum(r.failure_kind is FailureKind.HOST_PAUSED for r in recorder.records)
    assert 3 * 7 <= skipped <= 3 * 8  # (a second worker's image may be under way)


def test_the_local_backend_shows_a_line_per_paused_host(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    from imgflow.backends.base import Flags, Listener, RunView
    from imgflow.backends.local import LocalBackend

    cfg = quick_config(retries=0)
    cfg = dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, host_failures=2))
    dead = f"http://127.0.0.1:{closed_port()}"
    urls = [f"{dead}/x{i}.gif" for i in range(6)] + [servers[0].url("/ok.gif")]
    heard: list[str] = []
    listener = Listener(note=heard.append, warn=heard.append, waiting=heard.append)
    view = LocalBackend(cfg, tmp_path).run(Urls(urls), Flags(), listener)
    assert isinstance(view, RunView)
    assert view.summary.stored == 1 and view.summary.failed == 6
    [line] = view.notes
    assert line.startswith(f"host {dead} paused: refused connections 2 times in a row (")


def test_max_in_flight_zero_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "paths.txt").write_text("a.gif\n")
    base = ["run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths.txt"]
    done = run_cli(*base, "--max-in-flight", "0", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "--max-in-flight" in line
    (tmp_path / "imgflow.yaml").write_text("job:\n  max_in_flight: 0\n")
    done = run_cli(*base, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "imgflow: error: job.max_in_flight: must be at least 1"
    assert not (tmp_path / "imgflow-data").exists()


def test_a_run_under_one_base_url_keeps_its_caps(fault_server: FaultServer, tmp_path: Path) -> None:
    """The seed contract's runs are not scheduled per host: --max-in-flight leaves them at
    concurrency x max-batches, as before."""
    names = [f"p{i}.gif" for i in range(8)]
    for name in names:
        fault_server.set(f"/{name}", Delay(0.3, Ok(GIF)))
    (tmp_path / "paths.txt").write_text("\n".join(names) + "\n")
    done = run_cli(
        "run", "--base-url", fault_server.base_url, "--paths-file", "paths.txt",
        "-c", "2", "--batch-size", "2", "--max-batches", "2", "--max-in-flight", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert fault_server.max_in_flight == 4


def test_a_host_whose_lookup_is_slow_holds_no_slot_of_the_others(
    servers: list[FaultServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_name, fast = servers[0], servers[1]
    real = socket.getaddrinfo

    def slow_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.test":
            time.sleep(1.5)  # (in the loop's thread pool)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    named = slow_name.base_url.replace("127.0.0.1", "slow-dns.test")
    urls = [f"{named}/s{i}.gif" for i in range(4)] + [fast.url(f"/f{i}.gif") for i in range(12)]
    # robots.txt off: its one read would go first alone and leave the slow host one
    # lookup at a time, hiding a lookup that holds a slot
    cfg = quick_config(retries=1, robots=False)
    result, _ = run_urls(urls, tmp_path, concurrency=2, total=2, cfg=cfg)
    assert result.summary.stored == 16
    # the two slots in all were not held by the lookup: the fast host was served meanwhile
    assert max(r.time for r in fast.requests) < min(r.time for r in slow_name.requests)


class StopAfter(Recorder):
    """Sets `stop` once `count` records have arrived."""

    def __init__(self, stop: threading.Event, count: int) -> None:
        super().__init__()
        self.stop, self.count = stop, count

    def record(self, record: ResultRecord) -> None:
        super().record(record)
        if len(self.records) >= self.count:
            self.stop.set()


def test_an_interrupted_run_of_many_hosts_keeps_what_it_stored_and_a_rerun_skips_it(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    fast, slow = servers[0], servers[1]
    for i in range(6):
        slow.set(f"/s{i}.gif", Delay(0.5, Ok(GIF)))
    urls = shuffled(
        [fast.url(f"/f{i}.gif") for i in range(10)], [slow.url(f"/s{i}.gif") for i in range(6)]
    )
    job = LocalJob(source=Urls(urls), concurrency=2, batch_size=50, max_batches=4)
    stop = threading.Event()
    settings = run_settings(quick_config(retries=1))
    with pytest.raises(RunInterrupted):
        run_job(job, settings, tmp_path, StopAfter(stop, 10), stop=stop)
    stored = {
        p.relative_to(tmp_path / "images").as_posix() for p in (tmp_path / "images").rglob("*.gif")
    }
    assert 10 <= len(stored) < 16
    again, _ = run_urls(urls, tmp_path, concurrency=2)
    assert (again.summary.skipped, again.summary.stored) == (len(stored), 16 - len(stored))
    assert fast.count("/f0.gif") == 1


def _fetch_in_turn(servers: list[FaultServer], order: Sequence[int]) -> list[object]:
    """Fetch /a.gif from `servers[i]` for each i of `order`, one at a time, through one
    fetcher of 2 connections; the idle connections it holds at the end, per server."""
    from imgflow.engine.fetch import Fetcher
    from imgflow.engine.outcome import Fetched
    from imgflow.engine.settings import FetchConfig
    from imgflow.engine.transport import FastTransport

    async def main() -> list[object]:
        async with Fetcher(FetchConfig(retries=0), max_connections=2) as fetcher:
            for n in order:
                assert isinstance(await fetcher.fetch(servers[n].url("/a.gif")), Fetched)
            transport = fetcher._fast
            assert isinstance(transport, FastTransport)
            idle = transport._idle
            return [len(idle.get(("http", "127.0.0.1", s.port, None), ())) for s in servers]

    return engine_loop.run(main())


def test_idle_connections_of_every_host_stay_within_the_pool(
    servers: list[FaultServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of many hosts keeps no idle connection to each beyond the pool's budget: the
    one idle the longest is closed, whichever its host (not the first host's)."""
    monkeypatch.setattr("imgflow.engine.transport.pool.IDLE_CONNECTIONS", 2)
    # 0 and 1 are kept; 0 is used again, so 1 is now idle the longest; 2 and 3 push out
    # 1 then 0; the last fetch from 3 reuses its connection
    idle = _fetch_in_turn(servers, [0, 1, 0, 2, 3, 3])
    assert idle == [0, 0, 1, 1]
    assert [s.connections for s in servers] == [1, 1, 1, 1]


def test_hosts_beyond_the_requests_in_flight_keep_their_connections(
    servers: list[FaultServer],
) -> None:
    """More hosts than requests in flight (4 hosts, 2 connections): each host keeps its
    own idle connection, so fetching from them in turn opens one connection to each, not
    one per request (a pool of only 2 idle reconnected every host every round)."""
    idle = _fetch_in_turn(servers, [0, 1, 2, 3] * 3)
    assert idle == [1, 1, 1, 1]
    assert [s.connections for s in servers] == [1, 1, 1, 1]


def test_the_host_lines_are_in_the_json_document_and_in_status(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    """`run -o json` carries the paused hosts' and DNS lines (`hostNotes`), and `status`
    shows them again from the index."""
    from support.cli_run import FAST_ENV
    from support.json_schemas import validate

    dead = f"http://127.0.0.1:{closed_port()}"
    gone = "http://images.imgflow-test.invalid"
    urls = [f"{dead}/x{i}.gif" for i in range(4)] + [f"{gone}/n{i}.gif" for i in range(3)]
    (tmp_path / "urls.txt").write_text("\n".join([*urls, servers[0].url("/ok.gif")]) + "\n")
    env = {**FAST_ENV, "IMGFLOW_JOB_HOST_FAILURES": "2", "IMGFLOW_FETCH_RETRIES": "0"}
    args = ("-c", "1", "-o", "json")
    done = run_cli("run", "--urls-file", "urls.txt", *args, cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    document = validate(json.loads(done.stdout), "run")
    notes = document["hostNotes"]
    assert notes[-1] == "DNS lookup failed for 1 host (3 images)"
    assert [line.split(" (")[0] for line in notes[:-1]] == sorted(
        [f"host {dead} paused: refused connections 2 times in a row",
         f"host {gone} paused: did not resolve 2 times in a row"]
    )  # fmt: skip
    status = run_cli("status", document["run"], cwd=tmp_path, env=env)
    assert status.returncode == 1
    assert status.stdout.splitlines()[-len(notes) :] == notes


class StopWhen(Recorder):
    """Sets `stop` once every image of `fast` is done, or `most` of the others."""

    def __init__(self, stop: threading.Event, fast: str, count: int, most: int) -> None:
        super().__init__()
        self.stop, self.fast, self.count, self.most = stop, fast, count, most

    def record(self, record: ResultRecord) -> None:
        super().record(record)
        fast = sum(r.url.startswith(self.fast) for r in self.records)
        if fast >= self.count or len(self.records) - fast >= self.most:
            self.stop.set()


def test_a_slow_hosts_backlog_past_the_lookahead_holds_no_other_host_up(
    servers: list[FaultServer], tmp_path: Path
) -> None:
    """12,000 rows of a slow host (more than the reader's lookahead of 10,000), then a
    fast host's: the fast host's images are all served while the slow one has done few."""
    fast = servers[0]
    with FaultServer(fallback=Delay(2.0, Ok(GIF))) as slow:
        urls = [slow.url(f"/s{i}.gif") for i in range(12_000)]
        urls += [fast.url(f"/f{i}.gif") for i in range(40)]
        job = LocalJob(source=Urls(urls), concurrency=2, batch_size=50, max_batches=4)
        cfg = quick_config(retries=1, robots=False, timeout=5, total_timeout=10)
        stop = threading.Event()
        recorder = StopWhen(stop, fast.base_url, 40, most=3)  # (3 of the slow: 4 s)
        with pytest.raises(RunInterrupted):
            run_job(job, run_settings(cfg), tmp_path, recorder, stop=stop)
        served = sorted(r.time for r in fast.requests)
        assert len({r.path for r in fast.requests}) == 40, len(served)
        slow_before = [r for r in slow.requests if r.time <= served[-1]]
    # the slow host had served a few of its 12,000 when the fast one was done
    assert len(slow_before) <= 6, len(slow_before)


def test_a_hosts_spilled_items_come_back_in_order_with_their_metadata(tmp_path: Path) -> None:
    from types import MappingProxyType

    from imgflow.engine.plan import Item
    from imgflow.engine.spill import Spill

    items = [
        Item(url=f"http://h/{i}.gif", key=f"h/{i}.gif", meta=MappingProxyType({"n": i}))
        if i % 2
        else Item(url=f"http://h/{i}.gif", key=f"h/{i}.gif")
        for i in range(10)
    ]
    spill = Spill(str(tmp_path))
    try:
        for item in items[:6]:
            spill.put(item)
        assert spill.take(4) == items[:4]
        for item in items[6:]:
            spill.put(item)
        assert (spill.take(100), spill.count) == (items[4:], 0)
        spill.put(items[0])  # the file starts again once emptied
        assert spill.take(1) == items[:1]
        assert list(tmp_path.iterdir()) == []  # an unnamed file: nothing left behind
    finally:
        spill.close()
