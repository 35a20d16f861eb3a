"""Every limit holds at its edge: size caps, backoff cap, redirect count, in-flight caps,
the batch window, and one record per item whatever the store does."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
from support.faultserver import Delay, FaultServer, Ok, Redirect, Status
from support.settings import quick_fetch

from imgflow import config
from imgflow.backends.local import run_settings
from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.batch import run_batch
from imgflow.engine.fetch import Fetcher
from imgflow.engine.job import validate_base_url
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.plan import item_for
from imgflow.engine.records import Outcome
from imgflow.engine.settings import FetchConfig
from imgflow.local.job import LocalJob
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job

CAP = 4096
SETTINGS = quick_fetch(
    timeout=2.0, connect_timeout=1.0, total_timeout=5.0, retries=0, max_bytes=CAP
)


def body(size: int) -> bytes:
    return (b"GIF89a" + bytes(range(256)) * (size // 256 + 1))[:size]


def fetch(url: str, settings: FetchConfig = SETTINGS, **kwargs: object) -> Fetched | FetchFailure:
    async def go() -> Fetched | FetchFailure:
        async with Fetcher(settings, max_connections=2, **kwargs) as fetcher:  # type: ignore[arg-type]
            return await fetcher.fetch(url)

    return engine_loop.run(go())


@pytest.mark.parametrize("transport", ["imgflow", "httpx"])
def test_the_size_cap_counts_decoded_bytes_to_the_byte(
    fault_server: FaultServer, transport: str
) -> None:
    settings = dataclasses.replace(SETTINGS, transport=transport)
    fault_server.set("/edge.gif", Ok(body(CAP), gzip=True))
    fault_server.set("/over.gif", Ok(body(CAP + 1), gzip=True))
    edge = fetch(fault_server.url("/edge.gif"), settings)
    assert isinstance(edge, Fetched) and edge.data == body(CAP)
    over = fetch(fault_server.url("/over.gif"), settings)
    assert isinstance(over, FetchFailure)
    assert over.message == messages.failure(
        messages.TOO_LARGE, fault_server.url("/over.gif"), f"over {CAP} bytes"
    )


def test_a_declared_length_over_the_cap_fails_before_the_body(fault_server: FaultServer) -> None:
    fault_server.set("/big.gif", Ok(body(CAP + 1)))
    result = fetch(fault_server.url("/big.gif"))
    assert isinstance(result, FetchFailure)
    detail = f"{CAP + 1} bytes, limit {CAP}"
    assert result.message == messages.failure(
        messages.TOO_LARGE, fault_server.url("/big.gif"), detail
    )


def test_backoff_doubles_with_jitter_and_stops_at_its_cap(fault_server: FaultServer) -> None:
    fault_server.set("/busy.gif", Status(502))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = dataclasses.replace(SETTINGS, retries=6, backoff_base=1.0, backoff_max=4.0)
    result = fetch(fault_server.url("/busy.gif"), settings, sleep=sleep)
    assert isinstance(result, FetchFailure) and result.attempts == 7
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(slept) == len(ceilings)
    for seconds, ceiling in zip(slept, ceilings, strict=True):
        assert ceiling / 2 <= seconds <= ceiling


@pytest.mark.parametrize("limit", [0, 2])
def test_redirects_are_followed_up_to_the_limit_exactly(
    fault_server: FaultServer, limit: int
) -> None:
    hops = [f"/hop{i}.gif" for i in range(limit + 2)]
    for here, there in itertools.pairwise(hops):
        fault_server.set(here, Redirect(there))
    fault_server.set(hops[-1], Ok(body(100)))
    settings = dataclasses.replace(SETTINGS, max_redirects=limit)
    within = fetch(fault_server.url(hops[1]), settings)
    assert isinstance(within, Fetched)
    beyond = fetch(fault_server.url(hops[0]), settings)
    assert isinstance(beyond, FetchFailure)
    assert beyond.message.startswith(messages.TOO_MANY_REDIRECTS)
    assert fault_server.count(hops[0]) == 1 and fault_server.count(hops[-1]) == 1


def local_run(server: FaultServer, paths: list[str], tmp_path: Path, **job: int) -> None:
    cfg = config.from_mapping({"local": {"fsync": False}}, env={})
    run = LocalJob(source=from_job(validate_base_url(server.base_url), paths, None), **job)
    result = run_job(run, run_settings(cfg), tmp_path / "data")
    assert result.summary.stored == len(paths)


def test_the_next_batch_borrows_no_slot_beyond_the_total_cap(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """A batch's slow last fetch opens the next batch; both share concurrency x max_batches."""
    paths = [f"b{i // 3}/{i}.gif" for i in range(12)]
    for i, path in enumerate(paths):
        slow = i % 3 == 2
        fault_server.set("/" + path, Delay(0.6 if slow else 0.2, Ok(body(64))))
    local_run(fault_server, paths, tmp_path, concurrency=2, batch_size=3, max_batches=1)
    assert fault_server.max_in_flight == 2


def test_a_batch_starts_only_once_every_item_before_it_has_started(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """With --max-batches 1, no item of a batch starts while an earlier batch has one waiting."""
    size = 4
    paths = [f"w{i // size}/{i}.gif" for i in range(16)]
    for path in paths:
        fault_server.set("/" + path, Delay(0.1, Ok(body(64))))
    local_run(fault_server, paths, tmp_path, concurrency=2, batch_size=size, max_batches=1)
    images = [r for r in fault_server.requests if r.path != "/robots.txt"]
    order = [int(r.path.rsplit("/", 1)[1].split(".")[0]) for r in images]
    batches = [index // size for index in order]
    assert sorted(order) == list(range(16))
    for position, batch in enumerate(batches):
        assert all(earlier <= batch for earlier in batches[:position]), (
            f"batch {batch} started before batch {max(batches[:position])} had started all its "
            f"items: {order}"
        )


class Exploding:
    """A store that raises something other than OSError when one key is published."""

    inline = True

    def __init__(self, bad_key: str) -> None:
        self.bad_key = bad_key
        self.stored: list[str] = []

    def put(self, key: str, data: bytes, content_type: str | None) -> None:
        writer = self.open(key)
        writer.write(data)
        writer.commit(content_type)

    def open(self, key: str) -> Writer:
        return Writer(self, key)


class Writer:
    def __init__(self, store: Exploding, key: str) -> None:
        self.store, self.key = store, key

    def write(self, chunk: bytes) -> None:
        pass

    def commit(self, content_type: str | None) -> None:
        if self.key == self.store.bad_key:
            raise RuntimeError("disk on fire")
        self.store.stored.append(self.key)

    def abort(self) -> None:
        pass


def test_one_record_per_item_even_when_storing_one_raises(fault_server: FaultServer) -> None:
    items = [item_for(fault_server.base_url, f"r/{i}.gif") for i in range(6)]
    for item in items:
        fault_server.set("/" + item.path, Ok(body(64)))
    store = Exploding(items[2].key)

    async def go() -> list[Outcome]:
        async with Fetcher(SETTINGS, max_connections=2) as fetcher:
            records = await run_batch(items, fetcher=fetcher, store=store, concurrency=2)  # type: ignore[arg-type]
        assert [r.path for r in records] == [item.path for item in items]
        assert records[2].error == messages.failure(
            messages.BATCH_FAILED, items[2].url, "RuntimeError: disk on fire"
        )
        return [r.outcome for r in records]

    outcomes = engine_loop.run(go())
    assert outcomes == [Outcome.STORED] * 2 + [Outcome.FAILED] + [Outcome.STORED] * 3
    assert len(store.stored) == 5


def test_a_retry_after_over_the_limit_fails_without_waiting(fault_server: FaultServer) -> None:
    # A limit of 2 s and a Retry-After of 3 s (one over it, as 61 is over the default 60):
    # a run that waited it out anyway would fail this test in 3 s, not a minute.
    fault_server.set("/later.gif", Status(503, retry_after=3), Ok(body(64)))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = dataclasses.replace(SETTINGS, retries=2, retry_after_max=2)
    result = fetch(fault_server.url("/later.gif"), settings, sleep=sleep)
    assert isinstance(result, FetchFailure) and slept == []
    url = fault_server.url("/later.gif")
    over = "(Retry-After 3s is over the 2s limit)"
    assert result.message == f"{messages.http_error(503, url)} {over}"
    assert fault_server.count("/later.gif") == 1


def test_an_empty_segment_keeps_a_key_of_its_own() -> None:
    paths = ["a//b.gif", "a/_/b.gif", "a/b.gif", "a/%25/b.gif", "a///b.gif"]
    keys = [item_for("http://h.example", path).key for path in paths]
    assert len(set(keys)) == len(paths), keys
    assert keys[0] == "h.example/a/%/b.gif"
