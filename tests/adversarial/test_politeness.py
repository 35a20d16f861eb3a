"""The concurrency cap, seen by the server: never more than concurrency x max-batches requests
in flight, never more than concurrency for one batch, whatever the server does.

Paths are named after their batch (``/b<k>/...``; batches are consecutive runs of the input),
so ``max_in_flight_under("/b<k>/")`` is one batch's concurrency. Redirects stay under the
batch's prefix. Retries, 503 storms, resets, stalls and timeouts happen along the way: a
request the client gave up on still counts until the server sees its connection close.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from support.faults import FAULT_FETCH, image_body
from support.faultserver import Delay, FaultServer, Ok, Redirect, Reset, Stall, Status

from imgflow import config
from imgflow.backends.local import run_settings
from imgflow.engine.job import validate_base_url
from imgflow.local.job import LocalJob
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job

SETTINGS = [
    # (concurrency, batch_size, max_batches, paths)
    (1, 1, 1, 12),
    (1, 4, 3, 40),
    (2, 5, 3, 60),
    (3, 10, 2, 80),
    (4, 3, 6, 72),
    (8, 40, 1, 80),
    (5, 7, 4, 112),
]


def script(server: FaultServer, rng: random.Random, path: str) -> None:
    body = image_body(rng, (40, 400))
    slow = Ok(body)
    roll = rng.random()
    if roll < 0.15:
        server.set(path, Status(503, retry_after=0.01), Delay(0.02, slow))
    elif roll < 0.25:
        moved = path.replace(".gif", "-moved.gif")
        server.set(moved, Delay(0.02, slow))
        server.set(path, Redirect(moved))
    elif roll < 0.30:
        server.set(path, Reset(), Delay(0.02, slow))
    elif roll < 0.35:
        server.set(path, Stall(after_headers=rng.random() < 0.5, seconds=3), slow)
    elif roll < 0.38:
        server.set(path, Redirect(path))  # a loop, until the redirect limit
    else:
        server.set(path, Delay(rng.uniform(0.005, 0.03), slow))


@pytest.mark.parametrize("transport", ["imgflow", "httpx"])
@pytest.mark.parametrize(("concurrency", "batch_size", "max_batches", "count"), SETTINGS)
def test_in_flight_never_exceeds_the_caps(
    fault_server: FaultServer,
    tmp_path: Path,
    transport: str,
    concurrency: int,
    batch_size: int,
    max_batches: int,
    count: int,
) -> None:
    rng = random.Random(concurrency * 1000 + batch_size * 10 + max_batches)
    paths = [f"b{i // batch_size}/{i}.gif" for i in range(count)]
    for path in paths:
        script(fault_server, rng, "/" + path)
    fault_server.storm(count // 4)  # a 503 storm over the whole host at the start
    cfg = config.from_mapping({}, env={})
    fetch = dataclasses.replace(FAULT_FETCH, retries=3, transport=transport)
    # the storm answers robots.txt too: a robots.txt that answers 503 disallows the host
    # (RFC 9309), and this test is about the caps, so robots.txt is not asked for
    etiquette = dataclasses.replace(cfg.etiquette, robots=False)
    cfg = dataclasses.replace(
        cfg, fetch=fetch, etiquette=etiquette, local=dataclasses.replace(cfg.local, fsync=False)
    )
    job = LocalJob(
        source=from_job(validate_base_url(fault_server.base_url), paths, None),
        concurrency=concurrency,
        batch_size=batch_size,
        max_batches=max_batches,
    )
    result = run_job(job, run_settings(cfg), tmp_path)

    assert result.summary.total == count
    assert fault_server.max_in_flight <= concurrency * max_batches
    batches = (count + batch_size - 1) // batch_size
    per_batch = {k: fault_server.max_in_flight_under(f"/b{k}/") for k in range(batches)}
    assert max(per_batch.values()) <= concurrency, per_batch
    assert len(fault_server.requests) > count  # retries and redirects really happened
