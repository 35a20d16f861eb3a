"""Polite under pressure: per-host rate, adaptive concurrency, a shared cool-down.

Real nginx with ``limit_req`` / ``limit_conn`` for what users meet, the scriptable fault
server for exact sequences. Assertions are on outcomes and server-side counts and gaps,
never on how fast a run was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import re
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, imgflow_run, run_cli
from support.faultserver import FaultServer, Ok, Status
from support.nginx_limits import limit_req_zone, run_limited

from imgflow.demo.images import make_gif
from imgflow.documents.text import throttle_line
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher, gates
from imgflow.engine.outcome import Fetched
from imgflow.engine.politeness import Change, HostGate, Politeness, Signal
from imgflow.engine.settings import FetchConfig

FAST = FetchConfig(
    timeout=5.0, connect_timeout=2.0, total_timeout=10.0, retries=2, backoff_base=0.05,
    backoff_max=0.2, throttle_patience=60.0,
)  # fmt: skip


# -- the gate on its own ------------------------------------------------------------------


def test_a_throttle_halves_concurrency_once_and_success_grows_it_back() -> None:
    async def main() -> None:
        gate = HostGate("h", 8, backoff_base=0.01, backoff_max=0.01)
        for _ in range(8):
            await gate.acquire()
        assert gate.in_flight == 8
        for _ in range(6):  # six refusals from one burst are one signal
            gate.release(Signal.THROTTLED, 0.0)
        assert gate.allowed == 4 and gate.throttles == 6
        # the throttle also set a rate under the one the host refused (8 requests at once)
        assert gate.rate is not None and gate.rate <= 8 * 0.85 + 1e-9
        gate.release(Signal.OK)
        gate.release(Signal.OK)
        for _ in range(40):
            await gate.acquire()
            gate.release(Signal.OK)
        assert gate.allowed == 8  # additive growth back to the ceiling, never above it

    engine_loop.run(main())


def test_a_fixed_rate_spaces_requests_even_for_waiters_that_wait_together() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        gate = HostGate("h", 8, rate=20.0)
        starts: list[float] = []

        async def one() -> None:
            await gate.acquire()
            starts.append(loop.time())
            gate.release(Signal.OK)

        await asyncio.gather(*(one() for _ in range(6)))
        return starts

    starts = sorted(engine_loop.run(main()))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.045, gaps  # 1/20 s apart (less the loop's timer slack)


class _Clock:
    """A fake clock for a gate: `sleep` advances it (plus `late` once, when set)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.late: float = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds) + self.late
        self.late = 0.0
        await asyncio.sleep(0)


def test_a_burst_of_refusals_is_one_step_of_the_backoff() -> None:
    """8 requests sent at once, 7 refused together (nginx limit_req without burst): one
    throttle, so the cool-down is one backoff step, not the seventh's."""

    async def main() -> HostGate:
        gate = HostGate("h", 8, backoff_base=0.25, backoff_max=20.0, clock=lambda: 100.0)
        for _ in range(8):
            await gate.acquire()
        gate.release(Signal.OK)
        for _ in range(7):
            gate.release(Signal.THROTTLED, None)
        return gate

    gate = engine_loop.run(main())
    assert gate.cool_until - 100.0 <= 0.25, gate.cool_until - 100.0
    assert gate.throttles == 7


def test_a_late_departure_pushes_the_next_ones_back() -> None:
    """A request that leaves late (a busy loop) never lets the next leave closer than 1/rate
    after it: a strict limiter (nginx limit_req, no burst) would refuse that one."""

    async def main() -> list[float]:
        clock = _Clock()
        gate = HostGate("h", 8, rate=20.0, clock=clock, sleep=clock.sleep)
        starts: list[float] = []
        for i in range(6):
            if i == 3:
                clock.late = 0.04  # this one's wait ends 40 ms late
            await gate.acquire()
            starts.append(clock.now)
            gate.release(Signal.OK)
        return starts

    starts = engine_loop.run(main())
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.05, gaps


def test_the_adaptive_rate_settles_under_a_strict_limit_and_probes_it_rarely() -> None:
    """A host that takes 5 requests per second with no burst (nginx ``limit_req
    rate=5r/s``): refuses any request less than 0.2 s after the last one it accepted.
    The gate must settle under that rate, not ratchet above it probe after probe."""

    async def main() -> tuple[int, int]:
        clock = _Clock()
        gate = HostGate("h", 8, clock=clock, sleep=clock.sleep)
        accepted_at = -math.inf
        accepted = refused = 0
        while clock.now < 160.0:  # 60 s of requests, one at a time, 5 ms each
            await gate.acquire()
            clock.now += 0.005
            ok = clock.now - accepted_at >= 0.2
            if ok:
                accepted_at = clock.now
            if clock.now >= 130.0:  # the last 30 s: settled
                accepted, refused = accepted + ok, refused + (not ok)
            gate.release(Signal.OK if ok else Signal.THROTTLED, None)
        return accepted, refused

    accepted, refused = engine_loop.run(main())
    assert accepted >= 0.8 * 5 * 30, (accepted, refused)  # at least 80% of the limit
    assert refused <= 10, (accepted, refused)  # probed rarely


# -- exact sequences on the fault server ----------------------------------------------------


def test_retry_after_cools_the_whole_host_down_not_just_one_request(
    fault_server: FaultServer,
) -> None:
    """After one 429 with Retry-After: 1, no worker sends anything for that second."""
    gif = make_gif("x", 4)
    fault_server.set("/p0.gif", Status(429, retry_after=1), Ok(gif))
    for i in range(1, 12):
        fault_server.set(f"/p{i}.gif", Ok(gif))

    async def main() -> list[object]:
        async with Fetcher(FAST, max_connections=4) as fetcher:
            first = asyncio.create_task(fetcher.fetch(fault_server.url("/p0.gif")))
            await asyncio.sleep(0.3)  # the 429 has arrived: the host is cooling down
            rest = [fetcher.fetch(fault_server.url(f"/p{i}.gif")) for i in range(1, 12)]
            return list(await asyncio.gather(first, *rest))

    results = engine_loop.run(main())
    assert all(isinstance(r, Fetched) for r in results), results
    requests = fault_server.requests
    refused_at = requests[0].time
    later = [r.time - refused_at for r in requests[1:]]
    assert min(later) >= 0.9, later  # nobody asked during the cool-down


def test_a_refusal_taken_as_part_of_a_burst_leaves_the_image_its_own_signal(
    fault_server: FaultServer,
) -> None:
    """Two images sent at once are both refused: the gate takes one refusal as the signal
    and the other as the same burst. Refused again later, on its own, the second image's
    refusal is a new signal (the host's limit is still being met), while the first's
    repeat is not (a path that always refuses must not keep slowing its host down).
    Before, each image's first refusal, taken or not, used up its one signal: after a
    run's first burst of refusals, the gate ignored those images' later refusals and
    kept sending at a rate the host refused every other request of (nginx limit_req)."""
    gif = make_gif("b", 4)
    for name in ("a", "b"):
        fault_server.set(f"/{name}.gif", Status(429), Status(429), Ok(gif))
    changes: list[Change] = []

    async def main() -> list[object]:
        politeness = Politeness(gates(FAST, 2), changes.append)
        async with Fetcher(FAST, max_connections=2, politeness=politeness) as fetcher:
            urls = [fault_server.url(f"/{name}.gif") for name in ("a", "b")]
            return list(await asyncio.gather(*(fetcher.fetch(url) for url in urls)))

    results = engine_loop.run(main())
    assert all(isinstance(r, Fetched) for r in results), results
    assert len(changes) == 2, changes


def test_a_429_storm_without_retry_after_ends_with_every_image_stored(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    gif = make_gif("s", 4)
    for i in range(40):
        fault_server.set(f"/s/{i}.gif", Ok(gif))
    fault_server.storm(20, Status(429))  # the first 20 requests to the host are refused
    doc = imgflow_run(tmp_path, fault_server.url("/s"), [f"{i}.gif" for i in range(40)], "-c", "8")
    assert doc["summary"] == {"total": 40, "stored": 40, "skipped": 0, "failed": 0}
    assert "throttled by 127.0.0.1:" in str(doc["stderr"])
    # How often the host refused, per image (what a lower -c would lessen).
    found = re.search(r"127\.0\.0\.1:\d+ (\d+) times for 40 images \((\d+)%\)", str(doc["stderr"]))
    assert found is not None, doc["stderr"]
    assert int(found[2]) == round(100 * int(found[1]) / 40) and int(found[1]) >= 1
    assert "a lower -c or --rate is refused less" in str(doc["stderr"])


def test_the_throttle_line_gives_the_refusals_per_image_and_what_lessens_them() -> None:
    """The words the storm test above reads from a real run, on their own (a quick check
    of the per-image share when only the line changes)."""
    line = throttle_line({"b.example": 2, "a.example": 10}, 400)
    assert line == (
        "throttled by a.example 10 times, b.example 2 times for 400 images (3%), and slowed"
        " down\n(a lower -c or --rate is refused less)"
    )
    assert throttle_line({"a.example": 1}, 1) == (
        "throttled by a.example 1 time for 1 image (100%), and slowed down\n"
        "(a lower -c or --rate is refused less)"
    )
    assert throttle_line({}, 40) is None


# -- real nginx ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_line", "code"),
    [("limit_req_status 429;", 429), ("", 503)],
    ids=["429", "503-default"],
)
def test_nginx_limit_req_every_image_stored(tmp_path: Path, status_line: str, code: int) -> None:
    limits = f"limit_req zone=one; {status_line}"
    doc, log = run_limited(tmp_path, 30, limit_req_zone(5), limits, "-c", "8")
    assert doc["summary"] == {"total": 30, "stored": 30, "skipped": 0, "failed": 0}, doc
    statuses = [line.split()[1] for line in log]
    assert statuses.count("200") == 30
    assert str(code) in statuses  # nginx really did refuse some (the test is not idle)


def test_against_nginx_limit_req_the_gate_settles_instead_of_collecting_refusals(
    tmp_path: Path,
) -> None:
    """nginx ``limit_req rate=5r/s`` without burst, ``-c 8``, 40 images: after the first
    burst (7 refused at once) the gate finds the rate and keeps under it. Before the gate
    learnt the refused rate and took tokens when they were there, runs collected more than
    one refusal per image (119 for 100 in the bench)."""
    count = 40
    limits = "limit_req zone=one; limit_req_status 429;"
    doc, log = run_limited(tmp_path, count, limit_req_zone(5), limits, "-c", "8")
    statuses = [line.split()[1] for line in log]
    assert doc["summary"] == {"total": count, "stored": count, "skipped": 0, "failed": 0}, doc
    assert statuses.count("200") == count
    assert statuses.count("429") <= count // 2, statuses.count("429")


def test_nginx_limit_conn_every_large_image_stored(tmp_path: Path) -> None:
    http = "limit_conn_zone $binary_remote_addr zone=conns:1m;"
    limits = "limit_conn conns 2; limit_rate 8m;"
    doc, log = run_limited(tmp_path, 8, http, limits, "-c", "8", size=2 * 1024 * 1024)
    assert doc["summary"] == {"total": 8, "stored": 8, "skipped": 0, "failed": 0}, doc
    assert [line.split()[1] for line in log].count("503") >= 1  # the limit was met


def test_a_fixed_rate_keeps_under_an_nginx_limit(tmp_path: Path) -> None:
    """--rate 4 against a 10 r/s limit: nginx never has to refuse anything."""
    limits = "limit_req zone=one; limit_req_status 429;"
    doc, log = run_limited(tmp_path, 16, limit_req_zone(10), limits, "-c", "8", "--rate", "4")
    assert doc["summary"] == {"total": 16, "stored": 16, "skipped": 0, "failed": 0}, doc
    images = [line for line in log if "/robots.txt" not in line]  # (its 404 allows all)
    assert [line.split()[1] for line in images] == ["200"] * 16


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--rate", "0"], "--rate"),
        (["--rate", "-1"], "--rate"),
        (["--rate", "abc"], "--rate"),
        (["--burst", "0"], "--burst"),
    ],
)
def test_bad_politeness_flags_are_one_line(tmp_path: Path, flags: list[str], named: str) -> None:
    (tmp_path / "paths.txt").write_text("a.gif\n")
    done = run_cli(
        "run", "--base-url", "http://127.0.0.1:9/x", "--paths-file", "paths.txt", *flags,
        cwd=tmp_path, env=FAST_ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert not (tmp_path / "imgflow-data").exists()


def test_bad_throttle_patience_in_the_config_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "imgflow.yaml").write_text("fetch:\n  throttle_patience: -5\n")
    (tmp_path / "paths.txt").write_text("a.gif\n")
    done = run_cli(
        "run", "--base-url", "http://127.0.0.1:9/x", "--paths-file", "paths.txt",
        cwd=tmp_path, env=FAST_ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "imgflow: error: fetch.throttle_patience: must be 0 or more seconds"
    ]


def test_aws_lambdas_share_the_rate() -> None:
    from imgflow.config import from_mapping
    from infra.lambda_env import lambda_fetch_settings

    cfg = from_mapping({"fetch": {"rate": 8}, "job": {"max_batches": 4}}, env={})
    assert lambda_fetch_settings(cfg)["rate"] == 2.0
    unset = dataclasses.replace(cfg, fetch=FetchConfig())
    assert lambda_fetch_settings(unset)["rate"] is None
