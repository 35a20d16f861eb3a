"""`imgflow run --workers N`: several processes, one run, each host's limits shared exactly.

The CLI runs as a real process against the fault server, which counts its own peak in
flight and stamps each request's arrival: the assertions are on the server's numbers.
The workers are found as the run's child processes (/proc/<pid>/task/*/children).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, cli_argv, cli_env, run_cli
from support.faultserver import FaultServer, Request
from support.loops import LOOPS, loop_env
from support.nginx_limits import limit_req_zone, run_limited
from support.processes import reaped, signalled
from support.replies import Delay, Ok, Status
from support.serveproc import ServeProcess

from imgflow.demo.images import make_gif
from imgflow.engine.robots import Stored
from imgflow.local.workers.coordinator import Coordinator

GIF = make_gif("w", 4)
DB = "imgflow.db"


def serve(server: FaultServer, count: int, delay: float = 0.0, prefix: str = "/w") -> list[str]:
    """`count` images under `prefix`, each answered after `delay` seconds; their paths."""
    for i in range(count):
        server.set(f"{prefix}/{i}.gif", Delay(delay, Ok(GIF)) if delay else Ok(GIF))
    return [f"{i}.gif" for i in range(count)]


def argv(server: FaultServer, tmp_path: Path, paths: list[str], *flags: str) -> list[str]:
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    data = tmp_path / "data"
    return cli_argv(
        "run", "--base-url", server.url("/w"), "--paths-file", str(listing),
        "--data-dir", str(data), "-o", "json", *flags,
    )  # fmt: skip


def start(
    server: FaultServer, tmp_path: Path, paths: list[str], *flags: str
) -> subprocess.Popen[bytes]:
    """The run of `argv`, started in its own session (the test signals it), output piped."""
    return subprocess.Popen(
        argv(server, tmp_path, paths, *flags),
        env=cli_env(FAST_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE, **signalled(),
    )  # fmt: skip


def run(server: FaultServer, tmp_path: Path, paths: list[str], *flags: str) -> dict[str, object]:
    done = subprocess.run(
        argv(server, tmp_path, paths, *flags),
        env=cli_env(FAST_ENV), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    doc["stderr"] = done.stderr
    return doc


def children(pid: int) -> set[int]:
    """The process's children, as the kernel lists them."""
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found.update(int(c) for c in listing.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def alive(pid: int) -> bool:
    """True while `pid` is a process that has not ended (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(check: object, timeout: float = 20.0) -> bool:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def workers_of(proc: subprocess.Popen[bytes], count: int) -> set[int]:
    """The run's `count` worker processes, once they are all there."""
    assert wait_for(lambda: len(children(proc.pid)) >= count), children(proc.pid)
    return children(proc.pid)


def stored_rows(data: Path) -> dict[str, str]:
    with sqlite3.connect(data / DB) as conn:
        return dict(conn.execute("SELECT url, key FROM images").fetchall())


def check(data: Path) -> tuple[int, dict[str, object]]:
    done = run_cli("check", "--data-dir", str(data), "-o", "json", env=FAST_ENV, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def arrivals(server: FaultServer) -> list[float]:
    """When every request arrived, robots.txt's included (the host's limits hold them too)."""
    return sorted(r.time for r in server.requests)


ROBOTS = "/robots.txt"


def image_requests(server: FaultServer) -> list[Request]:
    """The server's requests for images: robots.txt's left out."""
    return [r for r in server.requests if r.path != ROBOTS]


def robots_reads(server: FaultServer, workers: int) -> int:
    """How many times robots.txt was read, checked: exactly once for the whole run, however
    many workers (the coordinator is the run's one robots.txt cache: the first worker to
    ask reads it, the others wait for its answer). The read is a request through the
    host's shared gate (its cap and rate count it)."""
    reads = server.count(ROBOTS)
    assert reads == 1, (reads, workers)
    return reads


def test_four_workers_read_robots_txt_once_and_never_ask_for_a_disallowed_path(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """A real robots.txt disallowing /w/private/: one read for the run, whatever worker
    asks first; no worker requests a disallowed image (each is excluded)."""
    allowed = serve(fault_server, 40, delay=0.05)
    private = [f"private/{i}.gif" for i in range(8)]
    serve(fault_server, 8, prefix="/w/private")
    robots = b"User-agent: *\nDisallow: /w/private/\n"
    # (read slowly: every worker has a batch, and asks, while the first reads it)
    fault_server.set(ROBOTS, Delay(1.5, Ok(robots, content_type="text/plain")))
    doc = run(
        fault_server, tmp_path, allowed + private,
        "-c", "2", "--workers", "4", "--batch-size", "8", "--max-batches", "1",
    )  # fmt: skip
    summary = doc["summary"]
    assert isinstance(summary, dict)
    assert summary["stored"] == 40, doc
    assert summary.get("excluded") == 8, doc
    assert fault_server.count(ROBOTS) == 1, [r.path for r in fault_server.requests]
    asked = [r.path for r in fault_server.requests]
    assert not [p for p in asked if p.startswith("/w/private/")], asked
    assert asked[0] == ROBOTS  # before any image of its host
    assert sorted(r.path for r in image_requests(fault_server)) == sorted(
        f"/w/{p}" for p in allowed
    )


class _Sent:
    """A worker's end as the coordinator's robots.txt cache sees it: what it was sent."""

    def __init__(self) -> None:
        self.outbox = self
        self.sent: list[tuple[object, ...]] = []

    def send(self, *message: object) -> None:
        self.sent.append(message)


class _Kept:
    def __init__(self) -> None:
        self.kept: list[str] = []

    def kept_robots(self, read: dict[str, Stored]) -> None:
        self.kept.extend(read)


def robots_cache(entries: dict[str, Stored]) -> tuple[Coordinator, _Kept]:
    """A coordinator's robots.txt cache alone (no process, no socket)."""
    coordinator = Coordinator.__new__(Coordinator)
    run = _Kept()
    coordinator.run = run  # type: ignore[assignment]
    coordinator.robots, coordinator.leases, coordinator.robots_waiting = dict(entries), {}, {}
    return coordinator, run


def test_the_coordinators_robots_leases_pass_on_after_a_failure_or_a_death() -> None:
    """One lease per origin: a kept fresh answer is handed out; the first asker of an
    unknown one reads it, the others wait; a read without an answer (5xx) or the reader's
    death passes the lease on; an answer put is given to every waiter."""
    o, other = "http://a:1", "http://b:2"
    fresh, stale = Stored(200, b"", time.time()), Stored(200, b"", time.time() - 2 * 86400)
    c, run = robots_cache({o: stale, "http://c:3": fresh})
    w1, w2, w3 = _Sent(), _Sent(), _Sent()
    c._robots_ask(w1, 0, "http://c:3")  # type: ignore[arg-type]
    assert w1.sent == [("robots-answer", 0, "http://c:3", fresh)]
    c._robots_ask(w1, 1, o)  # type: ignore[arg-type]  # stale: read again
    c._robots_ask(w2, 2, o)  # type: ignore[arg-type]
    c._robots_ask(w3, 3, o)  # type: ignore[arg-type]
    c._robots_ask(w2, 4, other)  # type: ignore[arg-type]
    assert w1.sent[-1] == ("robots-answer", 1, o, None) and w3.sent == []
    assert w2.sent == [("robots-answer", 4, other, None)]
    c._robots_done(w2, o)  # type: ignore[arg-type]  # not its lease: nothing changes
    assert w2.sent == [("robots-answer", 4, other, None)] and w3.sent == []
    c._robots_done(w1, o)  # type: ignore[arg-type]  # a 5xx: nothing kept, w2 reads it
    assert w2.sent[-1] == ("robots-answer", 2, o, None) and w3.sent == []
    c._robots_gone(w2)  # type: ignore[arg-type]  # dies reading both: w3 reads o
    assert w3.sent == [("robots-answer", 3, o, None)] and c.leases == {o: w3}
    c._robots_ask(w1, 5, o)  # type: ignore[arg-type]
    c._robots_read({o: fresh})
    assert w1.sent[-1] == ("robots-answer", 5, o, fresh) and run.kept == [o]
    c._robots_done(w3, o)  # type: ignore[arg-type]
    assert c.leases == {} and c.robots_waiting == {}


# -- politeness across workers ---------------------------------------------------------------


@pytest.mark.parametrize("workers", ["2", "4"])
def test_workers_never_have_more_than_the_hosts_cap_in_flight(
    fault_server: FaultServer, tmp_path: Path, workers: str
) -> None:
    paths = serve(fault_server, 60, delay=0.15)
    doc = run(
        fault_server, tmp_path, paths,
        "-c", "4", "--max-batches", "1", "--workers", workers, "--batch-size", "5",
    )  # fmt: skip
    assert doc["summary"] == {"total": 60, "stored": 60, "skipped": 0, "failed": 0}, doc
    # every request counts, each worker's robots.txt read included
    assert fault_server.max_in_flight <= 4
    assert fault_server.max_in_flight >= 3  # the cap was reached: the test is not idle
    assert sorted(r.path for r in image_requests(fault_server)) == sorted(f"/w/{p}" for p in paths)
    robots_reads(fault_server, int(workers))


def test_leased_slots_move_between_workers_and_never_exceed_the_hosts_cap(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """-c 4 --workers 2, no rate: workers keep their permits (leases) between requests;
    with every other batch slow, the slots move from the worker on fast items to the one
    on slow ones and back, and the server never has more than 4 in flight."""
    paths = [f"{i}.gif" for i in range(40)]
    for i, path in enumerate(paths):
        slow = (i // 5) % 2 == 0
        fault_server.set(f"/w/{path}", Delay(0.12 if slow else 0.01, Ok(GIF)))
    doc = run(
        fault_server, tmp_path, paths,
        "-c", "4", "--max-batches", "1", "--workers", "2", "--batch-size", "5",
    )  # fmt: skip
    assert doc["summary"] == {"total": 40, "stored": 40, "skipped": 0, "failed": 0}, doc
    assert fault_server.max_in_flight <= 4
    assert fault_server.max_in_flight >= 3  # the cap was reached: the test is not idle
    assert sorted(r.path for r in image_requests(fault_server)) == sorted(f"/w/{p}" for p in paths)


def test_a_rate_is_the_whole_runs_not_each_workers(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """--rate 20 with 2 workers: no 21 requests within a second, by the server's clock.
    (120 images, 6 s: with 60, a worker that started late under load could find the other
    had done most of them alone, and a rate per worker went unseen.)"""
    paths = serve(fault_server, 120)
    doc = run(
        fault_server, tmp_path, paths,
        "-c", "8", "--rate", "20", "--workers", "2", "--batch-size", "5",
    )  # fmt: skip
    assert doc["summary"] == {"total": 120, "stored": 120, "skipped": 0, "failed": 0}, doc
    times = arrivals(fault_server)  # robots.txt's reads too: the rate holds them as well
    assert len(image_requests(fault_server)) == 120
    assert len(times) == 120 + robots_reads(fault_server, 2)
    spans = [times[i + 20] - times[i] for i in range(len(times) - 20)]
    assert min(spans) >= 0.9, min(spans)  # 21 requests take a second at 20/s (less jitter)
    assert (len(times) - 1) / (times[-1] - times[0]) <= 20.5


def test_a_429s_cool_down_holds_every_worker(fault_server: FaultServer, tmp_path: Path) -> None:
    """One 429 with Retry-After: 1 quiets the host for a second, whichever worker sent it."""
    paths = serve(fault_server, 60, delay=0.05)
    fault_server.set("/w/0.gif", Status(429, retry_after=1), Ok(GIF))
    doc = run(
        fault_server, tmp_path, paths,
        "-c", "2", "--max-batches", "2", "--workers", "2", "--batch-size", "5",
    )  # fmt: skip
    assert doc["summary"] == {"total": 60, "stored": 60, "skipped": 0, "failed": 0}, doc
    requests = fault_server.requests
    refused = next(r.time for r in requests if r.path == "/w/0.gif")
    # requests already granted when the 429 came back may still arrive just after it
    quiet = [r.time - refused for r in requests if 0.25 < r.time - refused < 0.9]
    assert quiet == [], quiet
    assert fault_server.count("/w/0.gif") == 2


def test_a_rate_under_nginxs_limit_is_never_refused_with_workers(tmp_path: Path) -> None:
    """--rate 8 on 2 workers against nginx's limit_req of 10 r/s: nginx refuses nothing."""
    doc, log = run_limited(
        tmp_path, 24, limit_req_zone(10), "limit_req zone=one; limit_req_status 429;",
        "-c", "8", "--rate", "8", "--workers", "2", "--batch-size", "4",
    )  # fmt: skip
    assert doc["summary"] == {"total": 24, "stored": 24, "skipped": 0, "failed": 0}, doc
    # <port> <status> "GET <path> HTTP/1.1"; robots.txt (read once for the run, under the
    # same --rate) is not in the site: 404, not a refusal
    robots = [line for line in log if line.split()[3] == "/robots.txt"]
    assert len(robots) == 1 and all(line.split()[1] == "404" for line in robots), log
    assert [line.split()[1] for line in log if line not in robots] == ["200"] * 24


def test_a_service_job_runs_on_workers(tmp_path: Path, fault_server: FaultServer) -> None:
    paths = serve(fault_server, 30)
    with ServeProcess(tmp_path, config={"local": {"workers": 2}}) as service:
        run_id = service.post_job(
            {"baseUrl": fault_server.url("/w"), "resourcePaths": paths, "lambdaConcur": 4}
        )
        document = service.wait_for(run_id)
    assert document["state"] == "succeeded", document
    assert document["summary"]["stored"] == 30
    assert sorted(r.path for r in image_requests(fault_server)) == sorted(f"/w/{p}" for p in paths)
    robots_reads(fault_server, 2)


# -- signals and faults ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_ends_every_worker_and_the_run_with_130(
    fault_server: FaultServer, tmp_path: Path, sig: signal.Signals
) -> None:
    paths = serve(fault_server, 300, delay=0.3)
    proc = start(fault_server, tmp_path, paths, "-c", "4", "--workers", "2", "--batch-size", "10")
    with reaped(proc):
        workers = workers_of(proc, 2)
        assert fault_server.wait_for_requests(10, timeout=20)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does: the whole foreground group
        else:
            proc.send_signal(sig)
        started = time.monotonic()
        _out, err = proc.communicate(timeout=15)
        took = time.monotonic() - started
    assert proc.returncode == 130, err.decode()
    assert took < 6, took
    assert b"Traceback" not in err
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 5), workers
    data = tmp_path / "data"
    assert not list((data / "tmp").iterdir())  # no part file left
    code, report = check(data)
    assert code == 0, report  # every file has its row, whole, and no other file
    assert not report["orphans"] and not report["foreign"]
    rerun = run(fault_server, tmp_path, paths, "-c", "16", "--workers", "2")
    summary = rerun["summary"]
    assert isinstance(summary, dict)
    assert summary["stored"] + summary["skipped"] == 300 and summary["failed"] == 0


def test_a_killed_worker_has_its_images_run_again_and_the_run_finishes(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """kill -9 of a worker halfway through its batch: its unfinished items go to the other
    one; images it finished are not fetched again (only those in flight at the kill)."""
    paths = serve(fault_server, 100, delay=0.1)
    proc = start(
        fault_server, tmp_path, paths,
        "-c", "4", "--max-batches", "1", "--workers", "2", "--batch-size", "50",
    )  # fmt: skip
    with reaped(proc):
        victim = min(workers_of(proc, 2))
        assert fault_server.wait_for_requests(30, timeout=30)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    doc = json.loads(out)
    assert doc["summary"] == {"total": 100, "stored": 100, "skipped": 0, "failed": 0}
    counts = [fault_server.count(f"/w/{p}") for p in paths]
    assert min(counts) == 1
    # again: only what was in flight at the kill (4 permits), or fetched and not yet recorded
    assert sum(counts) - len(paths) <= 8, counts
    assert len(stored_rows(tmp_path / "data")) == 100
    assert check(tmp_path / "data")[0] == 0


def test_workers_killed_while_reading_robots_txt_do_not_hold_the_run(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """kill -9 of every worker while robots.txt is being read (one holds the coordinator's
    lease to read it, the other waits): the lease goes back, a new worker reads it once
    more, and the run finishes."""
    paths = serve(fault_server, 20)
    robots = Ok(b"User-agent: *\nDisallow: /w/private/\n", content_type="text/plain")
    fault_server.set(ROBOTS, Delay(4, robots), robots)
    proc = start(fault_server, tmp_path, paths, "-c", "4", "--workers", "2", "--batch-size", "5")
    with reaped(proc):
        first = workers_of(proc, 2)
        assert wait_for(lambda: fault_server.count(ROBOTS) >= 1)
        time.sleep(0.3)  # (the other worker asks too, and waits)
        # Stopped first, then killed: killed one after the other, the waiting worker could
        # take the lease back from the first and read robots.txt before its own kill (a third
        # read, seen under load), which is right, but not what this test counts.
        for pid in first:
            os.kill(pid, signal.SIGSTOP)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        # A lease kept by the dead reader would hold every worker: fail in 20 s, not 60.
        assert wait_for(lambda: fault_server.count(ROBOTS) >= 2), "robots.txt not read again"
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    assert doc["summary"] == {"total": 20, "stored": 20, "skipped": 0, "failed": 0}, doc
    assert fault_server.count(ROBOTS) == 2  # the dead one's read, and one after it
    assert sorted(r.path for r in image_requests(fault_server)) == sorted(f"/w/{p}" for p in paths)


def test_kill_9_of_the_main_process_ends_the_workers_and_a_rerun_completes(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    paths = serve(fault_server, 200, delay=0.1)
    proc = subprocess.Popen(
        argv(fault_server, tmp_path, paths, "-c", "4", "--workers", "2", "--batch-size", "10"),
        env=cli_env(FAST_ENV), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        **signalled(),
    )  # fmt: skip
    with reaped(proc):
        workers = workers_of(proc, 2)
        assert fault_server.wait_for_requests(40, timeout=30)
        proc.kill()
        proc.wait(10)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 5), workers
    data = tmp_path / "data"
    rows = stored_rows(data)
    for key in rows.values():  # every row has its whole file
        assert (data / "images" / key).read_bytes() == GIF
    doc = run(fault_server, tmp_path, paths, "-c", "8", "--workers", "2")
    summary = doc["summary"]
    assert isinstance(summary, dict)
    assert summary["stored"] + summary["skipped"] == 200 and summary["failed"] == 0
    code, report = check(data)
    assert code == 0 and report["intact"] == 200, report


def test_four_runs_with_workers_at_once_on_one_data_folder(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    paths = serve(fault_server, 120, delay=0.01)
    procs = []
    for n in range(4):
        folder = tmp_path / f"r{n}"
        folder.mkdir()
        args = argv(fault_server, folder, paths[n * 10 :] + paths[: n * 10], "--force",
                    "-c", "4", "--workers", "2", "--batch-size", "20",
                    "--data-dir", str(tmp_path / "data"))  # fmt: skip
        procs.append(
            subprocess.Popen(
                args, env=cli_env(FAST_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in err and b"locked" not in err
        assert json.loads(out)["summary"]["stored"] == 120
    code, report = check(tmp_path / "data")
    assert code == 0, report
    assert report["intact"] == 120 and not report["orphans"]


# -- bad input, and no processes -------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "65", "many"])
def test_a_bad_worker_count_is_one_line_and_exit_2(tmp_path: Path, value: str) -> None:
    done = run_cli(
        "run", "--base-url", "http://127.0.0.1:9/", "--paths-file", "-", "--workers", value,
        "--data-dir", str(tmp_path / "data"), input="a.gif\n", env=FAST_ENV,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers" in lines[0] and "1 to 64, or auto" in lines[0], lines
    assert not (tmp_path / "data").exists()


def test_a_bad_worker_count_in_the_config_names_the_key(tmp_path: Path) -> None:
    done = run_cli(
        "run", "--base-url", "http://127.0.0.1:9/", "--paths-file", "-",
        "--data-dir", str(tmp_path / "data"), input="a.gif\n",
        env={**FAST_ENV, "IMGFLOW_LOCAL_WORKERS": "0"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "imgflow: error: local.workers: must be 1 to 64, or auto"


def test_no_process_can_start_so_the_run_warns_and_uses_one(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork failure (EAGAIN: a limit on processes) is a warning, never a traceback."""
    from imgflow.backends.local import run_settings
    from imgflow.config import Config
    from imgflow.engine.job import validate_base_url
    from imgflow.local.job import LocalJob
    from imgflow.local.runner import run_job
    from imgflow.local.workers import coordinator
    from imgflow.sources.job_json import from_job

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(coordinator.subprocess, "Popen", refuse)
    paths = serve(fault_server, 20)
    source = from_job(validate_base_url(fault_server.url("/w")), paths, None)
    job = LocalJob(source, concurrency=4, batch_size=5, max_batches=2, workers=4)
    warnings: list[str] = []
    result = run_job(job, run_settings(Config()), tmp_path / "data", on_warn=warnings.append)
    assert result.summary.stored == 20 and result.state == "succeeded"
    assert warnings == [
        "could start only 0 of 4 workers (Resource temporarily unavailable); running in one process"
    ]


def test_refresh_with_workers_keeps_the_confirmed_and_replaces_the_changed(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    paths = [f"{i}.gif" for i in range(20)]
    for i in range(20):
        fault_server.set(f"/w/{i}.gif", Ok(GIF, headers={"ETag": f'"v{i}"'}))
    run(fault_server, tmp_path, paths, "--workers", "2", "--batch-size", "5")
    changed = make_gif("changed", 4)
    for i in range(20):
        reply = Status(304) if i % 2 else Ok(changed, headers={"ETag": f'"w{i}"'})
        fault_server.set(f"/w/{i}.gif", reply)
    doc = run(fault_server, tmp_path, paths, "--refresh", "--workers", "2", "--batch-size", "5")
    summary = doc["summary"]
    assert isinstance(summary, dict)
    assert (summary["updated"], summary["unchanged"], summary["failed"]) == (10, 10, 0), doc
    later = image_requests(fault_server)[20:]  # (each run reads robots.txt too)
    assert len(later) == 20 and all(r.headers.get("if-none-match") for r in later)
    data = tmp_path / "data"
    for url, key in stored_rows(data).items():
        i = int(url.rsplit("/", 1)[1].split(".")[0])
        assert (data / "images" / key).read_bytes() == (GIF if i % 2 else changed)
    assert check(data)[0] == 0


def _live_workers(pid: int) -> int:
    """Worker processes of the run `pid` still running (not ended, not a zombie)."""
    live = 0
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # (ended meanwhile)
            continue
        live += state != "Z" and b"imgflow.local.workers.worker" in command
    return live


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_workers_claim_a_streamed_tables_batches_while_it_is_still_planned(
    fault_server: FaultServer, tmp_path: Path, loop_kind: str
) -> None:
    """URLs from a pipe that stays open: the workers fetch the first chunk while the rest
    is still to come (the plan is not over), wait with nothing left to claim, then take
    the rest when it comes: every URL is stored once. (On asyncio's loop both workers ask
    again with nothing outstanding, as a worker may on either loop.)"""
    paths = serve(fault_server, 300)
    urls = [fault_server.url(f"/w/{p}") for p in paths]
    proc = subprocess.Popen(
        cli_argv("run", "--urls-file", "-", "--data-dir", str(tmp_path / "data"), "-o", "json",
                 "--workers", "2", "-c", "4", "--batch-size", "10"),
        env=loop_env(loop_kind, cli_env(FAST_ENV)), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **signalled(),
    )  # fmt: skip
    assert proc.stdin is not None
    with reaped(proc):
        first = 250  # the plan's first chunk (FIRST_CHUNK)
        proc.stdin.write("".join(f"{u}\n" for u in urls[:first]).encode())
        proc.stdin.flush()
        assert wait_for(lambda: len(image_requests(fault_server)) >= first, 30), proc.poll()
        time.sleep(0.3)  # (the workers ask for more: none is planned yet)
        assert proc.poll() is None
        assert _live_workers(proc.pid) == 2  # both wait for the rest; neither was ended
        rest = "".join(f"{u}\n" for u in urls[first:]).encode()
        out, err = proc.communicate(rest, timeout=60)  # (then the pipe ends)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["summary"] == {"total": 300, "stored": 300, "skipped": 0, "failed": 0}
    assert sorted(r.path for r in image_requests(fault_server)) == sorted(f"/w/{p}" for p in paths)


def test_retry_runs_the_failures_on_workers(fault_server: FaultServer, tmp_path: Path) -> None:
    paths = serve(fault_server, 30)
    for i in range(0, 30, 3):
        fault_server.set(f"/w/{i}.gif", Status(404))
    done = subprocess.run(
        argv(fault_server, tmp_path, paths, "--workers", "2", "--batch-size", "5"),
        env=cli_env(FAST_ENV), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    run_id = json.loads(done.stdout)["run"]
    serve(fault_server, 30)
    again = run_cli(
        "retry", run_id, "--data-dir", str(tmp_path / "data"), "-o", "json",
        env={**FAST_ENV, "IMGFLOW_LOCAL_WORKERS": "2"}, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["summary"]["stored"] == 10
    assert len(stored_rows(tmp_path / "data")) == 30


def test_worker_counts() -> None:
    from imgflow.local.workers import AUTO_MOST, auto_workers, worker_count

    assert worker_count("auto") == auto_workers() == min(AUTO_MOST, len(os.sched_getaffinity(0)))
    assert worker_count(" 3 ") == 3 and worker_count(64) == 64
    for bad in (0, -1, 65, "x", "1.5"):
        with pytest.raises(ValueError, match="must be 1 to 64, or auto"):
            worker_count(bad)
