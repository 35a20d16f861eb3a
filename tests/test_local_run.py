"""The local backend end to end, in process: real server, real files, real SQLite."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from support.faultserver import Delay, FaultServer, Ok, Stall
from support.settings import quick_config as make_cfg

from imgflow import config
from imgflow.backends.local import run_settings
from imgflow.config import Config
from imgflow.demo import FLAGS_DIR, PATHS_FILE
from imgflow.demo.images import make_gif
from imgflow.demo.server import StaticServer
from imgflow.engine.job import validate_base_url
from imgflow.engine.records import Outcome
from imgflow.local.folder import DB_NAME
from imgflow.local.index import Database
from imgflow.local.job import LocalJob, LocalRunResult
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job
from imgflow.sources.paths import from_paths_file


def run_paths(
    base_url: str,
    paths: list[str],
    data_dir: Path,
    cfg: Config | None = None,
    *,
    concurrency: int = 5,
    batch_size: int = 100,
    max_batches: int = 4,
    force: bool = False,
) -> LocalRunResult:
    job = LocalJob(
        source=from_job(validate_base_url(base_url), paths, None),
        concurrency=concurrency,
        batch_size=batch_size,
        max_batches=max_batches,
        force=force,
    )
    return run_job(job, run_settings(cfg or make_cfg()), data_dir)


def rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / DB_NAME) as conn:
        return conn.execute(sql).fetchall()


def stored_files(data_dir: Path) -> set[str]:
    root = data_dir / "images"
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_demo_job_stores_everything_but_the_missing_flag(
    flag_server: StaticServer, tmp_path: Path
) -> None:
    spec = from_paths_file(flag_server.base_url, str(PATHS_FILE))
    job = LocalJob(spec, concurrency=5, batch_size=10, max_batches=3)
    result = run_job(job, run_settings(make_cfg()), tmp_path)
    assert (result.summary.total, result.summary.stored, result.summary.failed) == (102, 101, 1)
    assert result.duplicates == 1 and result.state == "failed"
    zz = flag_server.url("zz/zz.gif")
    assert result.failures_file is not None
    assert json.loads(result.failures_file.read_text()) == [f"Could not find: {zz}"]
    index = rows(tmp_path, "SELECT url, key, bytes, sha256 FROM images")
    assert len(index) == 101 and len(stored_files(tmp_path)) == 101
    for url, key, size, sha in index:
        assert isinstance(key, str) and isinstance(url, str)
        source = FLAGS_DIR / url.split("/", 3)[3]
        data = (tmp_path / "images" / key).read_bytes()
        assert data == source.read_bytes() and len(data) == size
        assert hashlib.sha256(data).hexdigest() == sha
    assert list((tmp_path / "tmp").iterdir()) == []


def test_rerun_skips_what_is_stored_and_force_fetches_again(
    flag_server: StaticServer, tmp_path: Path
) -> None:
    paths = ["ad/ad.gif", "ae/ae.gif", "af/af.gif"]
    first = run_paths(flag_server.base_url, paths, tmp_path)
    assert first.summary.stored == 3
    second = run_paths(flag_server.base_url, paths, tmp_path)
    assert (second.summary.stored, second.summary.skipped) == (0, 3)
    (tmp_path / "images" / f"127.0.0.1:{flag_server.port}" / "ae" / "ae.gif").unlink()
    third = run_paths(flag_server.base_url, paths, tmp_path)
    assert (third.summary.stored, third.summary.skipped) == (1, 2)
    forced = run_paths(flag_server.base_url, paths, tmp_path, force=True)
    assert forced.summary.stored == 3
    db = Database(tmp_path / DB_NAME)
    try:
        skipped = [r for r in db.records(second.run_id)]
        assert all(r.outcome is Outcome.SKIPPED and r.sha256 and r.key for r in skipped)
    finally:
        db.close()


def test_same_basename_in_two_folders_never_collides(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    a, b = make_gif("a"), make_gif("b")
    assert a != b
    fault_server.set("/a/x.gif", Ok(a))
    fault_server.set("/b/x.gif", Ok(b))
    result = run_paths(fault_server.base_url, ["a/x.gif", "b/x.gif"], tmp_path)
    assert result.summary.stored == 2
    host = f"127.0.0.1:{fault_server.base_url.rsplit(':', 1)[1]}"
    assert (tmp_path / "images" / host / "a" / "x.gif").read_bytes() == a
    assert (tmp_path / "images" / host / "b" / "x.gif").read_bytes() == b


def test_politeness_cap_per_batch_and_in_total(fault_server: FaultServer, tmp_path: Path) -> None:
    gif = make_gif("p")
    paths = [f"b{i // 10}/{i}.gif" for i in range(60)]
    for path in paths:
        fault_server.set("/" + path, Delay(0.03, Ok(gif)))
    result = run_paths(
        fault_server.base_url, paths, tmp_path, concurrency=3, batch_size=10, max_batches=2
    )
    assert result.summary.stored == 60
    assert fault_server.max_in_flight <= 6
    assert all(fault_server.max_in_flight_under(f"/b{i}/") <= 3 for i in range(6))
    assert fault_server.max_in_flight >= 4  # batches really ran side by side


def test_a_stalled_download_leaves_no_partial_file(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/ok.gif", Ok(make_gif("ok")))
    fault_server.set("/stall.gif", Stall(after_headers=True, seconds=5))
    result = run_paths(fault_server.base_url, ["ok.gif", "stall.gif"], tmp_path)
    assert (result.summary.stored, result.summary.failed) == (1, 1)
    assert {Path(p).name for p in stored_files(tmp_path)} == {"ok.gif"}
    assert rows(tmp_path, "SELECT COUNT(*) FROM images") == [(1,)]


def test_notify_command_receives_the_failures(fault_server: FaultServer, tmp_path: Path) -> None:
    out = tmp_path / "notified.json"
    cfg = dataclasses.replace(
        make_cfg(), notify=config.NotifyConfig(command=f"sh -c 'cat > {out}'")
    )
    result = run_paths(fault_server.base_url, ["missing.gif"], tmp_path / "data", cfg)
    assert result.notify_problem == ""
    assert json.loads(out.read_text()) == [f"Could not find: {fault_server.url('/missing.gif')}"]


def test_a_failing_notify_command_is_reported_not_fatal(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    cfg = dataclasses.replace(make_cfg(), notify=config.NotifyConfig(command="false"))
    result = run_paths(fault_server.base_url, ["missing.gif"], tmp_path, cfg)
    assert result.notify_problem.startswith("notify.command exited 1")


def test_tolerated_failures_succeed(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.set("/a.gif", Ok(make_gif("a")))
    cfg = config.with_overrides(make_cfg(), job={"tolerate_failures": 50.0})
    result = run_paths(fault_server.base_url, ["a.gif", "b.gif"], tmp_path, cfg)
    assert result.summary.failed == 1 and result.state == "succeeded"


@pytest.mark.parametrize("count", [1, 250])
def test_every_path_ends_in_exactly_one_record(
    fault_server: FaultServer, tmp_path: Path, count: int
) -> None:
    for i in range(0, count, 2):
        fault_server.set(f"/{i}.gif", Ok(make_gif(str(i))))
    paths = [f"{i}.gif" for i in range(count)] + ["0.gif"]
    result = run_paths(fault_server.base_url, paths, tmp_path, batch_size=16)
    assert result.summary.total == count and result.duplicates == 1
    recorded = rows(tmp_path, f"SELECT path, outcome FROM results WHERE run_id = '{result.run_id}'")
    assert sorted(p for p, _ in recorded) == sorted(set(paths))
    assert all(o in ("stored", "failed") for _, o in recorded)
