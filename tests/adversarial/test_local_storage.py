"""The local store on real file systems: links, full disks, damage, concurrent runs, names.

Each test runs the real ``imgflow`` command line (``python -m imgflow.cli``) as a process
against a real HTTP server on 127.0.0.1 whose bytes change with every request (same size,
new content), so two runs that mixed their files and index rows would show it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from support.cli_run import cli_argv as cli
from support.cli_run import cli_env
from support.invariants import files_on_disk, leftover_temporaries
from support.mounts import tmpfs
from support.threaded import ThreadedServer

ENV = {
    "IMGFLOW_FETCH_RETRIES": "0",
    "IMGFLOW_FETCH_TIMEOUT": "10",
    "IMGFLOW_LOCAL_FSYNC": "false",
}
IS_ROOT = os.geteuid() == 0


class Changing:
    """Serves ``GIF89a`` + a fresh body for every request; ``/big/<n>/...`` sends n KiB."""

    def __init__(self) -> None:
        counter = itertools.count()
        served: dict[str, bytes] = {}
        self.served = served

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = self.path.split("/")
                size = int(parts[2]) * 1024 if parts[1] == "big" else 64 + len(self.path) % 50
                n = next(counter)
                body = b"GIF89a" + hashlib.sha256(f"{n}".encode()).digest() * (size // 32 + 1)
                body = body[: size + 6]
                served[self.path] = body
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadedServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Changing]:
    srv = Changing()
    try:
        yield srv
    finally:
        srv.close()


def env() -> dict[str, str]:
    return cli_env(ENV)


def run_args(base: str, listing: Path, data: Path, *extra: str) -> list[str]:
    """``imgflow run`` of a paths file into `data`, JSON on stdout."""
    return cli(
        "run", "--base-url", base, "--paths-file", str(listing), "--data-dir", str(data),
        "-o", "json", *extra,
    )  # fmt: skip


def run(
    base: str, paths: list[str], work: Path, data: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    listing = work / f"paths-{len(paths)}-{abs(hash(tuple(paths)))}.txt"
    listing.write_text("\n".join(paths) + "\n")
    return subprocess.run(
        run_args(base, listing, data, *extra),
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


def check_cmd(data: Path, *extra: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        cli("check", "--data-dir", str(data), "-o", "json", *extra),
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout, (done.returncode, done.stderr)
    return done.returncode, json.loads(done.stdout)


def tree_state(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def canary(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    (victim / "projectA" / "src").mkdir(parents=True)
    (victim / "projectA" / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (victim / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return victim


# -- never outside the data folder ---------------------------------------------------------


@pytest.mark.parametrize("name", ["tmp", "images"])
def test_a_linked_tmp_or_images_folder_is_refused_and_the_target_survives(
    server: Changing, tmp_path: Path, name: str
) -> None:
    victim = canary(tmp_path)
    before = tree_state(victim)
    data = tmp_path / "data"
    data.mkdir()
    (data / name).symlink_to(victim)
    done = run(server.base_url, ["a.gif", "passwd"], tmp_path, data)
    assert done.returncode == 1
    assert "symbolic link" in one_line(done) and str(data / name) in done.stderr
    assert tree_state(victim) == before


def test_a_stale_sweep_never_follows_links_in_tmp(server: Changing, tmp_path: Path) -> None:
    victim = canary(tmp_path)
    before = tree_state(victim)
    data = tmp_path / "data"
    (data / "tmp").mkdir(parents=True)
    (data / "tmp" / "old-run").symlink_to(victim)
    (data / "tmp" / "not-ours").mkdir()
    (data / "tmp" / "not-ours" / "keep.txt").write_text("x")
    done = run(server.base_url, ["a.gif"], tmp_path, data)
    assert done.returncode == 0, done.stderr
    assert tree_state(victim) == before
    assert (data / "tmp" / "not-ours" / "keep.txt").exists()


def test_a_linked_key_folder_fails_that_image_only(server: Changing, tmp_path: Path) -> None:
    victim = canary(tmp_path)
    before = tree_state(victim)
    data = tmp_path / "data"
    host = server.base_url.removeprefix("http://")
    (data / "images" / host).mkdir(parents=True)
    (data / "images" / host / "etc").symlink_to(victim)
    (data / "images" / host / "ok").mkdir()
    (data / "images" / host / "ok" / "x.gif").symlink_to(victim / "passwd")
    done = run(
        server.base_url, ["etc/passwd", "etc/probe.gif", "ok/x.gif", "fine.gif"], tmp_path, data
    )
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    outcomes = {r["path"]: (r["outcome"], r["error"]) for r in doc["results"]}
    assert outcomes["fine.gif"][0] == "stored"
    assert outcomes["etc/passwd"][0] == outcomes["etc/probe.gif"][0] == "failed"
    assert "symbolic link" in str(outcomes["etc/passwd"][1])
    assert outcomes["ok/x.gif"][0] == "stored"  # the link itself was replaced, not followed
    assert not (data / "images" / host / "ok" / "x.gif").is_symlink()
    assert tree_state(victim) == before


def test_a_live_runs_tmp_folder_is_never_swept_whatever_its_pid(
    server: Changing, tmp_path: Path
) -> None:
    """A run in another PID namespace: its pid means nothing here, its lock does."""
    data = tmp_path / "data"
    live = data / "tmp" / "20260101-000000-abcdef.pid999999"
    live.mkdir(parents=True)
    (live / "1.part").write_bytes(b"in progress")
    stale = data / "tmp" / "20260101-000000-dead00"
    stale.mkdir()
    (stale / ".imgflow-tmp").write_text("")
    (stale / "2.part").write_bytes(b"left by a kill -9")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(live / '.imgflow-tmp')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        done = run(server.base_url, ["a.gif"], tmp_path, data)
        assert done.returncode == 0, done.stderr
        assert (live / "1.part").read_bytes() == b"in progress"
        assert not stale.exists()
    finally:
        holder.kill()
        holder.wait()


# -- any URL ---------------------------------------------------------------------------------


def test_long_names_and_file_and_folder_urls_are_stored_byte_for_byte(
    server: Changing, tmp_path: Path
) -> None:
    paths = [
        "photos/123",
        "photos/123/thumb",
        "dir/",
        "dir",
        "a/" + "x" * 300 + ".jpg",
        "cjk/" + "\u4e2d" * 29 + ".png",
        "q/" + "n" * 250 + ".png?v=1",
        "/".join(f"deep{i:03d}" for i in range(120)) + ".gif",
        "0000.png?v=1",
    ]
    data = tmp_path / "data"
    done = run(server.base_url, paths, tmp_path, data)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["stored"] == len(paths)
    for record in doc["results"]:
        stored = (data / "images" / record["key"]).read_bytes()
        url_path = record["url"].removeprefix(server.base_url)
        assert stored == server.served[url_path], record["path"]
    keys = {r["path"]: r["key"] for r in doc["results"]}
    assert keys["0000.png?v=1"].endswith(".png") and "%q" in keys["0000.png?v=1"]
    code, report = check_cmd(data)
    assert code == 0 and report["intact"] == len(paths), report


def test_equivalent_spellings_are_one_url_and_count_as_duplicates(
    server: Changing, tmp_path: Path
) -> None:
    done = run(
        server.base_url,
        ["a b.jpg", "a%20b.jpg", "%7Euser/x.gif", "~user/x.gif"],
        tmp_path,
        tmp_path / "d",
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["total"] == 2 and doc["duplicates"] == 2


# -- damage and permissions ------------------------------------------------------------------


def damaged(kind: str, data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    db = data / "imgflow.db"
    if kind == "garbage-db":
        db.write_bytes(b"this is not a database" * 100)
    elif kind == "truncated-db":
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE filler (x TEXT)")
            conn.executemany("INSERT INTO filler VALUES (?)", [("y" * 500,)] * 200)
        db.write_bytes(db.read_bytes()[: 4096 * 3])
    elif kind == "tmp-is-a-file":
        (data / "tmp").write_text("x")
    elif kind == "images-is-a-file":
        (data / "images").write_text("x")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("garbage-db", "is damaged"),
        ("truncated-db", "is damaged"),
        ("tmp-is-a-file", "is a file"),
        ("images-is-a-file", "is a file"),
        ("data-is-a-file", "is a file"),
    ],
)
def test_storage_damage_is_one_line_naming_the_file(
    server: Changing, tmp_path: Path, kind: str, expected: str
) -> None:
    data = tmp_path / "data"
    if kind == "data-is-a-file":
        data.write_text("x")
    else:
        damaged(kind, data)
    done = run(server.base_url, ["a.gif"], tmp_path, data)
    assert done.returncode in (1, 2) and expected in one_line(done), done.stderr
    if kind.endswith("-db"):
        assert "move it aside" in done.stderr
        status = subprocess.run(
            cli("status", "--data-dir", str(data)), env=env(), capture_output=True, text=True
        )
        assert status.returncode == 1 and "is damaged" in one_line(status)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "mnt", "size=2m") as mount:
        yield mount


def test_a_read_only_data_folder_is_one_line(
    server: Changing, small_tmpfs: Path, tmp_path: Path
) -> None:
    data = small_tmpfs / "data"
    first = run(server.base_url, ["a.gif"], tmp_path, data)
    assert first.returncode == 0, first.stderr
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    done = run(server.base_url, ["b.gif"], tmp_path, data)
    assert done.returncode == 1 and "read-only" in one_line(done), done.stderr
    status = subprocess.run(
        cli("status", "--data-dir", str(data)), env=env(), capture_output=True, text=True
    )
    assert "Traceback" not in status.stderr


def test_a_full_disk_is_an_ordinary_failure_and_a_rerun_completes(
    server: Changing, small_tmpfs: Path, tmp_path: Path
) -> None:
    data = small_tmpfs / "data"
    paths = [f"small/{i}.gif" for i in range(5)] + [f"big/600/{i}.gif" for i in range(6)]
    done = run(server.base_url, paths, tmp_path, data, "-c", "1", "--batch-size", "3")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("{"), (done.stdout, done.stderr)
    doc = json.loads(done.stdout)
    errors = [r["error"] for r in doc["results"] if r["outcome"] == "failed"]
    assert errors and all(e.startswith("No space left: ") for e in errors), errors
    assert doc["summary"]["stored"] >= 5
    assert not leftover_temporaries(data)
    code, report = check_cmd(data)
    assert code == 0 and report["mismatched"] == [] and report["orphans"] == [], report
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_tmpfs)], check=True)
    again = run(server.base_url, paths, tmp_path, data, "-c", "1", "--batch-size", "3")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["summary"]["stored"] + doc["summary"]["skipped"] == len(paths)


# -- concurrent runs, changed files, check ---------------------------------------------------


def test_four_runs_at_once_leave_every_file_equal_to_its_row(
    server: Changing, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    paths = [f"c/{i % 40}/{i}.gif" for i in range(400)]
    procs = []
    for n in range(4):
        listing = tmp_path / f"paths{n}.txt"
        shuffled = paths[:]
        random.Random(n).shuffle(shuffled)
        listing.write_text("\n".join(shuffled) + "\n")
        args = run_args(server.base_url, listing, data, "--force", "-c", "8", "--batch-size", "50")
        procs.append(
            subprocess.Popen(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results = json.loads(out or b"{}").get("results", [])
        failures = [r["error"] for r in results if r["outcome"] == "failed"]
        assert proc.returncode == 0, (err.decode(), failures)
        assert b"Traceback" not in err
    code, report = check_cmd(data)
    assert code == 0, report
    assert report["intact"] == 400 and not report["mismatched"] and not report["orphans"]


def test_a_file_changed_behind_imgflows_back_is_fetched_again(
    server: Changing, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert run(server.base_url, ["x.gif"], tmp_path, data).returncode == 0
    (stored,) = files_on_disk(data)
    file = data / "images" / stored
    file.write_bytes(b"Z" * len(file.read_bytes()))  # same size, other bytes
    code, report = check_cmd(data)
    assert code == 1 and len(report["mismatched"]) == 1
    again = json.loads(run(server.base_url, ["x.gif"], tmp_path, data).stdout)
    assert again["summary"]["stored"] == 1
    assert check_cmd(data)[0] == 0


def test_check_repair_forgets_bad_rows_and_removes_orphans(
    server: Changing, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert run(server.base_url, ["a.gif", "b.gif", "c.gif"], tmp_path, data).returncode == 0
    host = data / "images" / server.base_url.removeprefix("http://")
    (host / "a.gif").unlink()
    (host / "b.gif").write_bytes(b"GIF89a broken")
    (host / "orphan.gif").write_bytes(b"GIF89a nobody's")  # the user's: never removed
    code, report = check_cmd(data)
    assert code == 1 and len(report["missing"]) == 1 and len(report["mismatched"]) == 1
    assert report["orphans"] == [] and report["foreign"] == [f"{host.name}/orphan.gif"]
    code, report = check_cmd(data, "--repair")
    assert code == 0 and (host / "orphan.gif").exists()
    code, report = check_cmd(data)
    assert code == 0 and report["intact"] == 1
    again = json.loads(run(server.base_url, ["a.gif", "b.gif", "c.gif"], tmp_path, data).stdout)
    assert again["summary"]["stored"] == 2 and again["summary"]["skipped"] == 1


def test_planning_a_large_job_beside_a_fetching_run_never_hits_a_lock(
    server: Changing, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    fetching = tmp_path / "fetching.txt"
    fetching.write_text("\n".join(f"f/{i}.gif" for i in range(3000)) + "\n")
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"p/{i}.gif" for i in range(100_000)) + "\n")
    quiet = {"env": env(), "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    first = subprocess.Popen(run_args(server.base_url, fetching, data), **quiet)  # type: ignore[call-overload]
    time.sleep(1.0)
    planner = subprocess.Popen(run_args("http://127.0.0.1:9", big, data), **quiet)  # type: ignore[call-overload]
    try:
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err.decode()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sqlite3.connect(data / "imgflow.db", timeout=30) as conn:
                row = conn.execute("SELECT total FROM runs ORDER BY started_at DESC").fetchone()
            if row and row[0] == 100_000:
                break
            time.sleep(0.5)
        assert row and row[0] == 100_000
    finally:
        planner.send_signal(signal.SIGTERM)
        _, err = planner.communicate(timeout=120)
    assert b"locked" not in err and b"Traceback" not in err, err.decode()
    assert planner.returncode == 130


# -- signals at any moment -------------------------------------------------------------------


def signal_ready(pid: int) -> bool:
    """True once the process catches SIGTERM (imgflow's first line has run)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("trial", range(20))
def test_sigterm_at_any_moment_is_one_line_and_130(
    server: Changing, tmp_path: Path, trial: int
) -> None:
    rng = random.Random(1100 + trial)
    data = tmp_path / "data"
    paths = [f"s/{i}.gif" for i in range(150)]
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    args = run_args(server.base_url, listing, data, "-c", "4", "--batch-size", "20")
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not signal_ready(proc.pid) and proc.poll() is None:
        time.sleep(0.0005)
    started = time.monotonic()
    if trial < 6:
        delay = rng.uniform(0, 0.1)  # the first 100 ms
    elif trial < 12:
        delay = None  # the last 100 ms: after every row is written
    else:
        delay = rng.uniform(0.1, 2.0)
    if delay is not None:
        time.sleep(max(0.0, delay - (time.monotonic() - started)))
    else:
        deadline = time.monotonic() + 60
        while (
            proc.poll() is None and time.monotonic() < deadline and not all_done(data, len(paths))
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.1))
    ended_before = proc.poll() is not None  # a fast machine can finish within 2 s
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    text = err.decode()
    assert "Traceback" not in text, text
    if proc.returncode == 0:  # it had finished its work before the signal arrived
        assert delay is None or ended_before or all_done(data, len(paths)), text
    else:
        assert proc.returncode == 130, (proc.returncode, text)
        # one error line, and the command that continues the run
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("continue with: ")), text
    if (data / "imgflow.db").exists():
        _code, report = check_cmd(data)
        assert not report["orphans"] and not report["mismatched"] and not report["missing"], report


def all_done(data: Path, count: int) -> bool:
    try:
        with sqlite3.connect(data / "imgflow.db", timeout=1) as conn:
            (done,) = conn.execute(
                "SELECT COUNT(*) FROM results WHERE outcome != 'pending'"
            ).fetchone()
    except sqlite3.Error:
        return False
    return int(done) >= count
