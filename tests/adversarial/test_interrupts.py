"""kill -9 the real ``imgflow run`` process at seeded moments; a rerun always completes.

Each trial runs a small job (some images slow, some missing, some failing once) through
``python -m imgflow.cli run`` and kills it with SIGKILL at a moment chosen by the seed:
after a random delay, right after the n-th image file appears, once nothing is pending
(consolidation), or inside the final index write. The final write is reached without any
hook in imgflow: the test holds SQLite's write lock (as any other writer of the database
may) from the moment the last batch starts, so the run blocks inside its last
``BEGIN ... COMMIT``. That it is blocked there is observed, not assumed: once every file of
the batch is on disk, the run's main thread must be asleep in SQLite's busy handler (the
kernel's ``/proc/<pid>/wchan`` names a nanosleep; the event loop itself only ever waits in
epoll), and it is killed then.

A kill that lands after the run ended on its own is told apart by the exit status (a
killed process reports -SIGKILL): the modes that must catch the run alive assert it.

After each kill: every file at a final name is whole (the server's exact bytes), every index
row has its file, and no url is indexed twice. Then a rerun completes and the full set of
invariants (``support.invariants.check_local``) holds.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli_run import cli_argv, cli_env
from support.faults import image_body
from support.faultserver import Delay, FaultServer, Ok, Status
from support.invariants import DB_NAME, check_local, files_on_disk, sha
from support.processes import signalled

SEED = 7
TRIALS = 12
PATHS = 60
BATCH = 10
ENV = {
    "IMGFLOW_FETCH_RETRIES": "1",
    "IMGFLOW_FETCH_TIMEOUT": "2",
    "IMGFLOW_FETCH_BACKOFF_BASE": "0.01",
    "IMGFLOW_FETCH_BACKOFF_MAX": "0.02",
    "IMGFLOW_LOCAL_FSYNC": "false",
}
MODES = ("after-delay", "after-files", "consolidating", "final-write", "final-commit")
MUST_LAND = {"after-delay", "after-files", "final-write"}


@dataclass
class Job:
    paths: list[str]
    bodies: dict[str, bytes]
    missing: set[str]
    keys: dict[str, str]


def script_job(server: FaultServer, rng: random.Random, trial: int) -> Job:
    """60 paths: the last batch slow and good, the others mixed."""
    paths = [f"t{trial}/{i // BATCH}/{i}.gif" for i in range(PATHS)]
    bodies: dict[str, bytes] = {}
    missing: set[str] = set()
    for i, path in enumerate(paths):
        body = bodies[path] = image_body(rng)
        last_batch = i >= PATHS - BATCH
        roll = rng.random()
        if last_batch:
            server.set("/" + path, Delay(0.3, Ok(body)))
        elif roll < 0.1:
            missing.add(path)
        elif roll < 0.2:
            server.set("/" + path, Status(500), Ok(body))
        else:
            server.set("/" + path, Delay(rng.uniform(0, 0.03), Ok(body)))
    keys = {f"127.0.0.1:{server.port}/{p}": p for p in paths}  # host:port + the full path
    return Job(paths, bodies, missing, keys)


def imgflow_run(server: FaultServer, folder: Path) -> list[str]:
    return cli_argv(
        "run",
        "--base-url",
        server.base_url,
        "--paths-file",
        str(folder / "paths.txt"),
        "--data-dir",
        str(folder / "data"),
        "-c",
        "3",
        "--batch-size",
        str(BATCH),
        "--max-batches",
        "1",
        "-o",
        "json",
    )


def env() -> dict[str, str]:
    return cli_env(ENV)


def pending(db: Path) -> int | None:
    """Pending rows of the newest run, or None before it is planned."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            run = conn.execute("SELECT id, total FROM runs ORDER BY started_at DESC").fetchone()
            if run is None or not run[1]:
                return None
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM results WHERE run_id = ? AND outcome = 'pending'", (run[0],)
            ).fetchone()
    except sqlite3.OperationalError:
        return None
    return int(count)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.002)
    return False


def asleep_in_busy_handler(pid: int) -> bool:
    """True when the process's main thread sleeps in nanosleep (SQLite's busy handler)."""
    try:
        where = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return "nanosleep" in where


def wchan_is_readable() -> bool:
    """Whether this kernel names where a sleeping process waits."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if asleep_in_busy_handler(proc.pid):
                return True
            time.sleep(0.01)
        return False
    finally:
        proc.kill()
        proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL `proc`; True when the kill landed (the run had not ended on its own)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return proc.returncode == -signal.SIGKILL


def kill_at(mode: str, rng: random.Random, proc: subprocess.Popen[bytes], data: Path) -> str:
    """Kill `proc` at the moment `mode` names; what was hit (``... (already done)`` when the
    run had ended before the kill)."""
    db = data / DB_NAME
    if mode == "after-delay":
        time.sleep(rng.uniform(0.0, 1.2))
    elif mode == "after-files":
        want = rng.randint(1, PATHS - BATCH)
        wait_until(lambda: len(files_on_disk(data)) >= want, proc, 20)
    elif mode == "consolidating":
        wait_until(lambda: pending(db) == 0, proc, 20)
    else:
        seen: list[int | None] = []
        assert wait_until(lambda: seen.append(pending(db)) or seen[-1] == BATCH, proc, 20), seen[
            -5:
        ]
        lock = sqlite3.connect(db, timeout=5, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            before = len(files_on_disk(data))
            assert wait_until(lambda: len(files_on_disk(data)) >= before + BATCH, proc, 20)
            blocked = wait_until(lambda: asleep_in_busy_handler(proc.pid), proc, 20)
            assert blocked, "the run never blocked in its final index write"
            if mode == "final-commit":
                lock.execute("ROLLBACK")  # let the write go ahead, then kill around its commit
                time.sleep(rng.uniform(0, 0.01))
        finally:
            landed = kill(proc)
            if lock.in_transaction:
                lock.execute("ROLLBACK")
            lock.close()
        return mode if landed else f"{mode} (already done)"
    return mode if kill(proc) else f"{mode} (already done)"


def check_after_kill(data: Path, job: Job) -> None:
    """Files at final names are whole; index rows have their files; no url twice."""
    for key in files_on_disk(data):
        path = job.keys[key]
        assert sha((data / "images" / key).read_bytes()) == sha(job.bodies[path]), key
    if not (data / DB_NAME).exists():
        return
    with sqlite3.connect(data / DB_NAME) as conn:
        tables = {t for (t,) in conn.execute("SELECT name FROM sqlite_master")}
        if "images" not in tables:  # killed before the schema was written
            return
        index = conn.execute("SELECT url, key FROM images").fetchall()
        runs = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM runs").fetchone()
    assert len({u for u, _ in index}) == len(index) and runs[0] == runs[1]
    assert {str(k) for _, k in index} <= files_on_disk(data)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_9_then_rerun(fault_server: FaultServer, tmp_path: Path, trial: int) -> None:
    rng = random.Random(SEED * 1000 + trial)
    mode = MODES[trial % len(MODES)]
    if mode.startswith("final") and not wchan_is_readable():
        pytest.skip("this kernel does not show where a process sleeps (/proc/<pid>/wchan)")
    job = script_job(fault_server, rng, trial)
    (tmp_path / "paths.txt").write_text("\n".join(job.paths) + "\n")
    data = tmp_path / "data"
    proc = subprocess.Popen(
        imgflow_run(fault_server, tmp_path),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **signalled(),
    )
    try:
        hit = kill_at(mode, rng, proc, data)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert hit == mode or mode not in MUST_LAND, f"the kill landed after the run ended: {hit}"
    check_after_kill(data, job)

    rerun = subprocess.run(
        imgflow_run(fault_server, tmp_path), env=env(), capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == (1 if job.missing else 0), (hit, rerun.stderr)
    doc = json.loads(rerun.stdout)
    rows = check_local(data, doc["run"], job.paths, job.bodies)
    failed = {p for p, r in rows.items() if r.outcome == "failed"}
    assert failed == job.missing, hit
    assert doc["summary"]["total"] == PATHS
    assert doc["summary"]["stored"] + doc["summary"]["skipped"] == PATHS - len(job.missing)
