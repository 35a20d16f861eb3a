"""2,000 paths, 30% of them hostile, through the real local runner: nothing is lost.

The faults are drawn (seeded) from `support.faults.FAULTS`; transient ones must end stored,
persistent and permanent ones failed with their message class. A second run, with the
persistent faults healed, stores exactly those and skips every image stored before.
"""

from __future__ import annotations

import collections
import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.faults import FAULT_FETCH, FAULTS, Kind, Planned, heal, image_body, plan_job
from support.faultserver import FaultServer, Ok
from support.invariants import check_local

from imgflow import config
from imgflow.backends.local import run_settings
from imgflow.config import Config
from imgflow.engine.job import validate_base_url
from imgflow.engine.messages import failure_class
from imgflow.local.job import LocalJob, LocalRunResult
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job

SEED = 20261124
COUNT = 2000
FAULT_RATE = 0.30


@pytest.fixture
def other_host() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def quick_cfg() -> Config:
    cfg = config.from_mapping({}, env={})
    return dataclasses.replace(
        cfg, fetch=FAULT_FETCH, local=dataclasses.replace(cfg.local, fsync=False)
    )


def run(server: FaultServer, planned: Planned, data_dir: Path) -> LocalRunResult:
    job = LocalJob(
        source=from_job(validate_base_url(server.base_url), planned.paths, None),
        concurrency=8,
        batch_size=50,
        max_batches=6,
    )
    return run_job(job, run_settings(quick_cfg()), data_dir)


def test_faults_never_lose_a_record_and_a_healed_rerun_completes(
    fault_server: FaultServer, other_host: FaultServer, tmp_path: Path
) -> None:
    planned = plan_job(fault_server, other_host, seed=SEED, count=COUNT, fault_rate=FAULT_RATE)
    drawn = collections.Counter(f.name for f in planned.faults.values())
    assert 0.25 * COUNT < len(planned.faults) < 0.35 * COUNT
    assert set(drawn) == {f.name for f in FAULTS}, "every fault kind is exercised"

    first = run(fault_server, planned, tmp_path)
    rows = check_local(tmp_path, first.run_id, planned.paths, planned.bodies)
    wrong: list[str] = []
    for path, row in rows.items():
        fault = planned.faults.get(path)
        if fault is None or fault.kind is Kind.TRANSIENT:
            if row.outcome != "stored":
                wrong.append(f"{path} ({fault.name if fault else 'good'}): {row.error}")
        elif row.outcome != "failed" or failure_class(row.error or "") not in fault.classes:
            wrong.append(f"{path} ({fault.name}): {row.outcome} {row.error}")
    assert not wrong, f"{len(wrong)} wrong outcomes, e.g. {wrong[:5]}"
    failed = len(planned.of_kind(Kind.PERSISTENT)) + len(planned.of_kind(Kind.PERMANENT))
    assert (first.summary.total, first.summary.failed) == (COUNT, failed)
    assert first.summary.stored == COUNT - failed and first.state == "failed"

    healed = set(heal(fault_server, planned))
    second = run(fault_server, planned, tmp_path)
    rows = check_local(tmp_path, second.run_id, planned.paths, planned.bodies)
    permanent = set(planned.of_kind(Kind.PERMANENT))
    for path, row in rows.items():
        expected = "stored" if path in healed else "failed" if path in permanent else "skipped"
        assert row.outcome == expected, (path, planned.faults.get(path), row)
    assert (second.summary.stored, second.summary.failed) == (len(healed), len(permanent))


HOSTILE_PATHS = {
    # path: the server path it is fetched from (the query is not part of it)
    "k/": "/k/",
    "k/index": "/k/index",
    "k/sub/": "/k/sub/",
    "q.gif": "/q.gif",
    "q.gif?v=1": "/q.gif",
    "q.gif?v=2": "/q.gif",
    # the key a ?v=1 query got before the query marker became "%q"
    "q.gif@qa798de8ee75aeb55": "/q.gif@qa798de8ee75aeb55",
    "sp%20ace.gif": "/sp%20ace.gif",
    "u/%C3%A9t%C3%A9.gif": "/u/%C3%A9t%C3%A9.gif",
    "same/x.gif": "/same/x.gif",
    "other/x.gif": "/other/x.gif",
}


def test_paths_that_could_share_a_key_never_do(fault_server: FaultServer, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    served = {target: image_body(rng) for target in set(HOSTILE_PATHS.values())}
    for target, body in served.items():
        fault_server.set(target, Ok(body))
    planned = Planned(
        paths=list(HOSTILE_PATHS),
        bodies={path: served[target] for path, target in HOSTILE_PATHS.items()},
    )
    result = run(fault_server, planned, tmp_path)
    rows = check_local(tmp_path, result.run_id, planned.paths, planned.bodies)
    assert result.summary.stored == len(HOSTILE_PATHS), [r.error for r in rows.values()]
    assert len({row.key for row in rows.values()}) == len(HOSTILE_PATHS)
