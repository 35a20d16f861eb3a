"""imgflow against peer downloaders on loopback; started by ``bench/run`` (see bench/README.md).

Cases: throughput (5,000 images from nginx), large images (200 of 1-8 MB from nginx: MB/s,
CPU per MB and peak RSS against curl and the aiohttp script), latency-bound efficiency (a
server that waits 50 ms and counts requests in flight), scale (50,000 images), start-up
(`imgflow --help`) and the AWS cost case (``bench/aws_cost.py`` when present). Every tool
runs as a child process measured with ``os.wait4``: wall time, user+sys CPU and peak RSS of
the process tree it waits for. Writes ``bench/results/<date>[-quick].md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
SUFFIXES = (".gif", ".png", ".jpg")
IMAGE_SUFFIXES = frozenset({".gif", ".png", ".jpg", ".jpeg"})
DELAY = 0.05

GOALS = {
    "vs_aiohttp_64": 1.0,
    "vs_img2dataset_64": 5.0,
    "cpu_ms_per_image": 0.3,
    "latency_efficiency": 0.97,
    "rss_ratio_50k": 1.1,
    "rss_mb_50k": 120.0,
    "help_seconds": 0.3,
    "aws_transitions_per_1000": 15,
    "aws_invocations_per_1000": 10,
    "large_vs_curl": 0.8,
    "large_rss_ratio": 1.5,
    "vs_baseline": 0.95,
}
LARGE_COUNT = 200
MB = 1024 * 1024


# -- measuring a child process ---------------------------------------------------------------


@dataclass
class Measure:
    """One run of one tool."""

    wall: float
    cpu: float
    rss_mb: float
    images: int
    rc: int


def measure(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    log: Path | None = None,
    stdout_to: Path | None = None,
) -> Measure:
    """Run `cmd` and return its wall time, CPU (user+sys) and peak RSS (not the image count)."""
    out = open(stdout_to, "wb") if stdout_to else subprocess.DEVNULL  # noqa: SIM115
    err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for handle in (out, err):
            if not isinstance(handle, int):
                handle.close()
    cpu = usage.ru_utime + usage.ru_stime
    return Measure(wall, cpu, usage.ru_maxrss / 1024, 0, proc.returncode)


def count_images(folder: Path) -> int:
    """Image files anywhere under `folder`."""
    total = 0
    for _, _, files in os.walk(folder):
        total += sum(1 for name in files if os.path.splitext(name)[1] in IMAGE_SUFFIXES)
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(500):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start-up (code {proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.01)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the corpus and the servers -------------------------------------------------------------


def corpus_paths(count: int) -> list[str]:
    """`count` distinct paths in a two-level tree such as ``3f/3f9a1c2e07b4.png``."""
    paths = []
    for i in range(count):
        digest = hashlib.sha1(str(i).encode()).hexdigest()
        paths.append(f"{digest[:2]}/{digest[:12]}{SUFFIXES[i % 3]}")
    return paths


def write_images(root: Path, marker: str, images: Sequence[tuple[str, int]], what: str) -> None:
    """Write each (path, size) image under `root` once: `marker` keeps them between runs."""
    done = root / marker
    if done.exists():
        return
    sys.path.insert(0, str(ROOT))
    from imgflow.demo.images import make_image

    print(f"generating {what} under {root} ...", flush=True)
    for path, size in images:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(make_image(path, size))
    done.touch()


def make_corpus(root: Path, count: int) -> None:
    """Write `count` images of 2-30 KB under `root` (kept between runs)."""
    paths = corpus_paths(count)
    images = [(path, random.Random(i).randint(2048, 30720)) for i, path in enumerate(paths)]
    write_images(root, f".complete-v2-{count}", images, f"{count:,} images")


NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types {{ image/gif gif; image/png png; image/jpeg jpg; }}
    default_type application/octet-stream;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
"""


@contextlib.contextmanager
def nginx(root: Path, folder: Path | None = None, template: str = NGINX_CONF) -> Iterator[int]:
    """nginx serving `root` on a free loopback port, with keep-alive; stopped on exit.

    `template` is NGINX_CONF or a variant of it (bench/wire.py's TLS one), written in
    `folder` (default bench/work/nginx) with the user, folder, port and root filled in."""
    folder = folder or WORK / "nginx"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = ""
    if os.geteuid() == 0:
        import pwd

        user = f"user {pwd.getpwuid(root.stat().st_uid).pw_name};\n"
    conf = folder / "nginx.conf"
    conf.write_text(template.format(user=user, dir=folder, port=port, root=root))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([binary, "-p", str(folder), "-c", str(conf)])
    try:
        wait_for_port(port, proc, "nginx")
        yield port
    finally:
        stop(proc)


@contextlib.contextmanager
def slow_server(python: str) -> Iterator[int]:
    """bench/slow_server.py on a free loopback port; stopped on exit."""
    port = free_port()
    proc = subprocess.Popen([python, str(BENCH / "slow_server.py"), str(port), str(DELAY)])
    (WORK / "slow_server.pid").write_text(str(proc.pid))
    try:
        wait_for_port(port, proc, "slow server")
        yield port
    finally:
        stop(proc)


def server_stats(port: int, what: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_{what}", timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


# -- the tools ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    """Where each tool lives (None: not installed)."""

    imgflow: str
    imgflow_python: str
    peers_python: str | None
    img2dataset: str | None
    curl: str | None
    wget: str | None
    aria2c: str | None
    baseline: str | None = None  # imgflow of IMGFLOW_BASELINE's commit
    baseline_name: str = ""
    only: str = ""  # --tools: only these tools in the throughput and large cases


OUT = "{out}"


@dataclass
class Case:
    """One line of the throughput table: a tool at a concurrency; `{out}` in argv is its folder."""

    name: str
    tool: str
    concurrency: int
    argv: list[str]
    env: dict[str, str] | None = None
    runs: list[Measure] = field(default_factory=list)

    def build(self, out: Path) -> list[str]:
        return [arg.replace(OUT, str(out)) for arg in self.argv]


def imgflow_argv(
    tools: Tools, base: str, paths: Path, per_batch: int, batches: int, binary: str = ""
) -> list[str]:
    return [
        binary or tools.imgflow, "run", "--base-url", base, "--paths-file", str(paths),
        "-c", str(per_batch), "--max-batches", str(batches), "--data-dir", OUT,
        "--output", "json",
    ]  # fmt: skip


def throughput_cases(tools: Tools, base: str, files: dict[str, Path]) -> list[Case]:
    """Every tool of the throughput case that is installed."""
    cases: list[Case] = []
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    paths = files["paths"]
    for total, per_batch in ((16, 4), (64, 16)):
        cases.append(
            Case(f"imgflow -c {per_batch} x 4 batches", "imgflow", total,
                 imgflow_argv(tools, base, paths, per_batch, 4))
        )  # fmt: skip
    cases.append(
        Case("imgflow -c 16 x 4, fsync off", "imgflow-nofsync", 64,
             imgflow_argv(tools, base, paths, 16, 4), env=no_fsync)
    )  # fmt: skip
    # The same with httpx's own transport (fetch.transport: httpx), for comparison.
    cases.append(
        Case("imgflow -c 16 x 4, fsync off, httpx transport", "imgflow-httpx", 64,
             imgflow_argv(tools, base, paths, 16, 4),
             env={**no_fsync, "IMGFLOW_FETCH_TRANSPORT": "httpx"})
    )  # fmt: skip
    cases += baseline_cases(tools, base, paths, no_fsync)
    for n in (16, 64):
        if tools.curl:
            cases.append(Case(f"curl --parallel-max {n}", "curl", n, [
                tools.curl, "-s", "--parallel", "--parallel-max", str(n), "--create-dirs",
                "-K", str(files["curl"]), "--output-dir", OUT]))  # fmt: skip
        if tools.aria2c:
            cases.append(Case(f"aria2c -j {n}", "aria2c", n, [
                tools.aria2c, "-q", "-i", str(files["aria2"]), "-d", OUT, "-j", str(n),
                "--file-allocation=none", "--allow-overwrite=true",
                "--auto-file-renaming=false", "--console-log-level=error"]))  # fmt: skip
        if tools.peers_python:
            script = str(BENCH / "peers" / "aiohttp_fetch.py")
            cases.append(Case(f"aiohttp script, {n} workers", "aiohttp", n, [
                tools.peers_python, script, base, str(paths), OUT, str(n)]))  # fmt: skip
    if tools.wget:
        cases.append(Case("wget -i (sequential)", "wget", 1, [
            tools.wget, "-q", "-i", str(files["urls"]), "-x", "-nH", "-P", OUT]))  # fmt: skip
    if tools.img2dataset:
        cases.append(Case("img2dataset 2 procs x 16 threads", "img2dataset", 32, [
            tools.img2dataset, "--url_list", str(files["urls"]), "--input_format", "txt",
            "--output_folder", OUT, "--output_format", "files", "--resize_mode", "no",
            "--processes_count", "2", "--thread_count", "16",
            "--number_sample_per_shard", "1000", "--enable_wandb", "False",
            "--retries", "0", "--timeout", "20"]))  # fmt: skip
    return cases


def baseline_cases(
    tools: Tools, base: str, paths: Path, no_fsync: dict[str, str], batch_size: int = 0
) -> list[Case]:
    """imgflow at 64 in flight, fsync on and off, as built from the baseline commit."""
    if tools.baseline is None:
        return []
    extra = ["--batch-size", str(batch_size)] if batch_size else []
    argv = imgflow_argv(tools, base, paths, 16, 4, tools.baseline) + extra
    name = tools.baseline_name
    return [
        Case(f"imgflow at {name} -c 16 x 4 batches", "imgflow-baseline", 64, argv),
        Case(f"imgflow at {name} -c 16 x 4, fsync off", "imgflow-baseline-nofsync", 64, argv,
             env=no_fsync),
    ]  # fmt: skip


def write_lists(base: str, paths: Sequence[str], folder: Path) -> dict[str, Path]:
    """The same URL list in each tool's input format."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / name for name in ("paths", "urls", "curl", "aria2")}
    files["paths"].write_text("".join(f"{p}\n" for p in paths))
    files["urls"].write_text("".join(f"{base}/{p}\n" for p in paths))
    files["curl"].write_text("".join(f'url = "{base}/{p}"\noutput = "{p}"\n' for p in paths))
    files["aria2"].write_text("".join(f"{base}/{p}\n  out={p}\n" for p in paths))
    return files


def selected(cases: list[Case], tools: str) -> list[Case]:
    """The cases of the tools named in `tools` (comma-separated, `imgflow*` for every
    imgflow row; empty: all)."""
    names = [t.strip() for t in tools.split(",") if t.strip()]

    def chosen(tool: str) -> bool:
        return any(tool == n or (n.endswith("*") and tool.startswith(n[:-1])) for n in names)

    return [c for c in cases if not names or chosen(c.tool)]


def run_case(case: Case, expected: int, log: Path) -> Measure:
    out = WORK / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with log.open("a") as handle:
        handle.write(f"\n== {case.name}\n")
    result = measure(case.build(out), env=case.env, log=log, timeout=600)
    result.images = count_images(out)
    if result.images != expected:
        print(f"  note: {case.name} stored {result.images} of {expected} images", flush=True)
    case.runs.append(result)
    shutil.rmtree(out, ignore_errors=True)
    return result


def summarise(runs: Sequence[Measure], expected: int) -> dict[str, Any]:
    """Medians over the runs: images/s by wall time, CPU ms per image, peak RSS."""
    return {
        "runs": len(runs),
        "images": expected,
        "stored_min": min(r.images for r in runs),
        "wall_s": statistics.median(r.wall for r in runs),
        "images_per_s": statistics.median(expected / r.wall for r in runs),
        "cpu_ms_per_image": statistics.median(1000 * r.cpu / expected for r in runs),
        "peak_rss_mb": statistics.median(r.rss_mb for r in runs),
        "all_runs": [asdict(r) for r in runs],
    }


# -- the cases ------------------------------------------------------------------------------


def throughput(tools: Tools, corpus: Path, count: int, repeats: int) -> list[dict[str, Any]]:
    paths = corpus_paths(count)
    log = WORK / "logs" / "throughput.log"
    with nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, paths, WORK / f"lists-{count}")
        cases = selected(throughput_cases(tools, base, files), tools.only)
        return run_rounds(
            cases,
            count,
            repeats,
            log,
            lambda r: (
                f"{count / r.wall:>8.0f} img/s {1000 * r.cpu / count:>6.3f} ms CPU/img "
                f"{r.rss_mb:>6.1f} MB"
            ),
        )


def run_rounds(
    cases: list[Case], count: int, repeats: int, log: Path, show: Callable[[Measure], str]
) -> list[dict[str, Any]]:
    """Run every case `repeats` times, interleaved; one summary row per case.

    Every other round runs in reverse order (A B C, C B A, A B C), so no row always runs
    first or always follows the same neighbour: on a shared machine a run pays for what
    the one before left behind (dirty pages being written back, a deleted tree)."""
    for repeat in range(repeats):
        for case in cases if repeat % 2 == 0 else cases[::-1]:
            r = run_case(case, count, log)
            print(f"  [{repeat + 1}/{repeats}] {case.name:<36} {show(r)}", flush=True)
    return [
        {"name": c.name, "tool": c.tool, "concurrency": c.concurrency} | summarise(c.runs, count)
        for c in cases
    ]


def scale(tools: Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    paths = corpus_paths(count)
    log = WORK / "logs" / "scale.log"
    with nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, paths, WORK / f"lists-{count}")
        case = Case("imgflow -c 16 x 4 batches", "imgflow", 64,
                    imgflow_argv(tools, base, files["paths"], 16, 4))  # fmt: skip
        for repeat in range(repeats):
            r = run_case(case, count, log)
            print(
                f"  [{repeat + 1}/{repeats}] {count:,} images {count / r.wall:>8.0f} img/s "
                f"{1000 * r.cpu / count:>6.3f} ms CPU/img {r.rss_mb:>6.1f} MB",
                flush=True,
            )
    return {"name": case.name, "concurrency": 64} | summarise(case.runs, count)


def large_paths(count: int) -> list[tuple[str, int]]:
    """`count` (path, size) pairs of 1-8 MB images, such as ``l/3f9a1c2e07b4.jpg``."""
    pairs = []
    for i in range(count):
        digest = hashlib.sha1(f"large-{i}".encode()).hexdigest()
        size = random.Random(f"large-{i}").randint(1 * MB, 8 * MB)
        pairs.append((f"l/{digest[:12]}{SUFFIXES[i % 3]}", size))
    return pairs


def make_large_corpus(root: Path, count: int) -> None:
    """Write `count` images of 1-8 MB under `root` (kept between runs)."""
    write_images(root, f".complete-large-{count}", large_paths(count), f"{count} large images")


def large_images(tools: Tools, corpus: Path, count: int, repeats: int) -> list[dict[str, Any]]:
    """imgflow, curl and the aiohttp script at 64 in flight on 1-8 MB images: MB/s, CPU
    ms per MB and peak RSS (the memory a streamed body needs, against small images)."""
    pairs = large_paths(count)
    total_mb = sum(size for _, size in pairs) / MB
    log = WORK / "logs" / "large.log"
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    with nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, [p for p, _ in pairs], WORK / f"lists-large-{count}")
        paths = files["paths"]
        per_batch = ["--batch-size", str(count // 4)]
        argv = imgflow_argv(tools, base, paths, 16, 4) + per_batch
        cases = [
            Case("imgflow -c 16 x 4 batches", "imgflow", 64, argv),
            Case("imgflow -c 16 x 4, fsync off", "imgflow-nofsync", 64, argv, env=no_fsync),
            *baseline_cases(tools, base, paths, no_fsync, count // 4),
        ]
        if tools.curl:
            curl = [tools.curl, "-s", "--parallel", "--parallel-max", "64", "--create-dirs",
                    "-K", str(files["curl"]), "--output-dir", OUT]  # fmt: skip
            cases.append(Case("curl --parallel-max 64", "curl", 64, curl))
            # imgflow fsyncs every image by default; curl never does. This row is curl made
            # as durable: each file it wrote fsynced afterwards (coreutils' sync FILE...).
            durable = f"{shlex.join(curl)} && find {OUT} -type f -exec sync {{}} +"
            cases.append(Case("curl --parallel-max 64, then fsync each file", "curl-fsync",
                              64, ["sh", "-c", durable]))  # fmt: skip
        if tools.peers_python:
            script = str(BENCH / "peers" / "aiohttp_fetch.py")
            cases.append(Case("aiohttp script, 64 workers", "aiohttp", 64, [
                tools.peers_python, script, base, str(paths), OUT, "64"]))  # fmt: skip
        cases = selected(cases, tools.only)
        rows = run_rounds(
            cases,
            count,
            repeats,
            log,
            lambda r: (
                f"{total_mb / r.wall:>8.0f} MB/s {1000 * r.cpu / total_mb:>6.2f} ms CPU/MB "
                f"{r.rss_mb:>6.1f} MB"
            ),
        )
    for row, case in zip(rows, cases, strict=True):
        row["total_mb"] = total_mb
        row["mb_per_s"] = statistics.median(total_mb / r.wall for r in case.runs)
        row["cpu_ms_per_mb"] = statistics.median(1000 * r.cpu / total_mb for r in case.runs)
    return rows


LATENCY_SETTINGS = ((5, 1), (16, 1), (64, 1), (5, 4), (16, 4))
LATENCY_BATCH = 250


def latency(tools: Tools, rounds: int, repeats: int) -> list[dict[str, Any]]:
    """imgflow against a server that waits 50 ms: efficiency and the most seen in flight."""
    rows = []
    log = WORK / "logs" / "latency.log"
    with slow_server(tools.imgflow_python) as port:
        base = f"http://127.0.0.1:{port}"
        for per_batch, batches in LATENCY_SETTINGS:
            cap = per_batch * batches
            count = rounds * cap
            folder = WORK / f"lists-slow-{count}"
            folder.mkdir(parents=True, exist_ok=True)
            paths = folder / "paths"
            paths.write_text("".join(f"s/{i:06d}.gif\n" for i in range(count)))
            argv = imgflow_argv(tools, base, paths, per_batch, batches)
            argv += ["--batch-size", str(LATENCY_BATCH)]
            efficiencies, peaks, walls = [], [], []
            for _ in range(repeats):
                server_stats(port, "reset")
                out = WORK / "out"
                shutil.rmtree(out, ignore_errors=True)
                r = measure([a.replace(OUT, str(out)) for a in argv], log=log)
                stats = server_stats(port, "stats")
                shutil.rmtree(out, ignore_errors=True)
                ideal = cap / DELAY
                rate = stats["served"] / stats["span"] if stats["span"] else 0.0
                efficiencies.append(rate / ideal)
                peaks.append(int(stats["max_in_flight"]))
                walls.append(r.wall)
                print(
                    f"  -c {per_batch} x {batches}: {stats['served']} served, "
                    f"efficiency {rate / ideal:.1%}, max in flight {stats['max_in_flight']}"
                    f" (cap {cap})",
                    flush=True,
                )
            rows.append(
                {
                    "concurrency": per_batch,
                    "max_batches": batches,
                    "cap": cap,
                    "images": count,
                    "efficiency": statistics.median(efficiencies),
                    "max_in_flight": max(peaks),
                    "within_cap": max(peaks) <= cap,
                    "wall_s": statistics.median(walls),
                    "all_efficiencies": efficiencies,
                }
            )
    return rows


def startup(tools: Tools, repeats: int) -> dict[str, Any]:
    """Wall time of `imgflow --help` (and of a bare interpreter, for scale)."""
    walls = [measure([tools.imgflow, "--help"]).wall for _ in range(repeats)]
    bare = [measure([tools.imgflow_python, "-c", "pass"]).wall for _ in range(repeats)]
    return {
        "help_s": statistics.median(walls),
        "python_bare_s": statistics.median(bare),
        "all_runs": walls,
    }


def aws_cost(python: str) -> dict[str, Any]:
    """bench/aws_cost.py: imgflow's state machine and the original design on moto."""
    script = BENCH / "aws_cost.py"
    if not script.exists():
        return {"status": "pending", "note": "bench/aws_cost.py is not written yet"}
    summary_file = WORK / "aws_cost.json"
    summary_file.parent.mkdir(parents=True, exist_ok=True)
    summary_file.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [python, str(script), "--designs", "imgflow,original", "--sizes", "500,1000",
             "--json", str(summary_file)],
            capture_output=True, text=True, timeout=420, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "note": "bench/aws_cost.py took over 420 s"}
    output = done.stdout.strip()
    stderr_tail = done.stderr.strip().splitlines()[-5:]
    status = "ok"
    if done.returncode != 0:
        # The cause is the last line of the traceback (or of whatever the script printed).
        cause = stderr_tail[-1] if stderr_tail else (output.splitlines() or ["no output"])[-1]
        status = f"failed (exit {done.returncode}): {cause}"
    result: dict[str, Any] = {
        "status": status,
        "seconds": time.perf_counter() - start,
        "output": output,
        "stderr_tail": stderr_tail,
    }
    if done.returncode == 0 and summary_file.exists():
        result["summary"] = json.loads(summary_file.read_text())
    return result


# -- report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def shell(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return "unavailable"

    return {
        "nproc": shell(["nproc"]),
        "free_g": shell(["free", "-g"]),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            "nginx": shell(["nginx", "-v"]) or "see stderr",
            "curl": shell(["curl", "--version"]).split("\n")[0],
            "wget": shell(["wget", "--version"]).split("\n")[0],
            "aria2c": shell(["aria2c", "--version"]).split("\n")[0],
        },
    }


def goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, target, measured, met) for each goal of the issue that this run measured."""
    rows: list[tuple[str, str, str, bool | None]] = []
    by_name = {r["name"]: r for r in data.get("throughput", [])}

    def rate(tool: str, concurrency: int) -> float | None:
        for r in data.get("throughput", []):
            if r["tool"] == tool and r["concurrency"] == concurrency:
                return float(r["images_per_s"])
        return None

    ours = rate("imgflow", 64)
    for peer, key, label in (
        ("aiohttp", "vs_aiohttp_64", "aiohttp script at 64"),
        ("img2dataset", "vs_img2dataset_64", "img2dataset"),
    ):
        theirs = rate(peer, 64) if peer == "aiohttp" else rate(peer, 32)
        if ours and theirs:
            ratio = ours / theirs
            rows.append((f"imgflow at 64 vs {label}", f">= {GOALS[key]:.1f}x",
                         f"{ratio:.2f}x", ratio >= GOALS[key]))  # fmt: skip
        else:
            rows.append((f"imgflow at 64 vs {label}", f">= {GOALS[key]:.1f}x", "not run", None))
    # The aiohttp script writes files without fsync: the like-for-like comparison.
    same_work, script = rate("imgflow-nofsync", 64), rate("aiohttp", 64)
    if same_work and script:
        ratio = same_work / script
        rows.append(("imgflow at 64, fsync off (the script's work) vs aiohttp script at 64",
                     f">= {GOALS['vs_aiohttp_64']:.1f}x", f"{ratio:.2f}x",
                     ratio >= GOALS["vs_aiohttp_64"]))  # fmt: skip
    cpu_rows = [r for r in by_name.values() if r["tool"] in ("imgflow", "imgflow-nofsync")]
    if "scale" in data:
        cpu_rows.append(data["scale"] | {"name": f"{data['scale']['images']:,} images"})
    for r in cpu_rows:
        cpu = r["cpu_ms_per_image"]
        rows.append((f"CPU per image, {r['name']}", "<= 0.3 ms", f"{cpu:.3f} ms",
                     cpu <= GOALS["cpu_ms_per_image"]))  # fmt: skip
    for r in data.get("latency", []):
        eff = r["efficiency"]
        rows.append(
            (f"latency-bound efficiency, -c {r['concurrency']} x {r['max_batches']}",
             ">= 97%", f"{eff:.1%}", eff >= GOALS["latency_efficiency"])
        )  # fmt: skip
        rows.append(
            (f"max in flight, -c {r['concurrency']} x {r['max_batches']}",
             f"<= {r['cap']}", str(r["max_in_flight"]), bool(r["within_cap"]))
        )  # fmt: skip
    small = next((r for r in cpu_rows if r.get("concurrency") == 64 and r["images"] < 10_000),
                 None)  # fmt: skip
    if "scale" in data and small:
        big = data["scale"]["peak_rss_mb"]
        ratio = big / small["peak_rss_mb"]
        rows.append(("peak RSS 50k / 5k", "<= 1.1x", f"{ratio:.2f}x",
                     ratio <= GOALS["rss_ratio_50k"]))  # fmt: skip
        rows.append(("peak RSS at 50k", "<= 120 MB", f"{big:.0f} MB",
                     big <= GOALS["rss_mb_50k"]))  # fmt: skip
    rows += large_goals(data) + baseline_goals(data)
    if data.get("throttle"):
        import throttle

        rows += throttle.goals(data["throttle"])
    if "startup" in data:
        help_s = data["startup"]["help_s"]
        rows.append(("imgflow --help", "<= 0.3 s", f"{help_s:.3f} s",
                     help_s <= GOALS["help_seconds"]))  # fmt: skip
    aws = data.get("aws_cost", {}).get("summary", {}).get("designs", {}).get("imgflow", {})
    if "cost_per_million" in aws:
        per = aws["cost_per_million"]
        for key, label in (
            ("transitions", "state transitions"),
            ("invocations", "Lambda invocations"),
        ):
            value, target = per[f"{key}_per_1000"], GOALS[f"aws_{key}_per_1000"]
            rows.append((f"AWS {label} per 1,000 images (moto)", f"<= {target}", f"{value:.1f}",
                         value <= target))  # fmt: skip
    return rows


def _row(rows: list[dict[str, Any]], tool: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["tool"] == tool and r["concurrency"] == 64), None)


def large_goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """imgflow's MB/s against curl's on large images; its peak RSS against small images."""
    rows: list[tuple[str, str, str, bool | None]] = []
    large = data.get("large", [])
    curl = _row(large, "curl")
    target = GOALS["large_vs_curl"]
    for tool in ("imgflow", "imgflow-nofsync"):
        ours = _row(large, tool)
        if ours and curl:
            ratio = ours["mb_per_s"] / curl["mb_per_s"]
            rows.append((f"large images: {ours['name']} vs curl at 64, MB/s", f">= {target}x",
                         f"{ratio:.2f}x", ratio >= target))  # fmt: skip
        durable = _row(large, "curl-fsync")
        if tool == "imgflow" and ours and durable:  # both fsync every file
            ratio = ours["mb_per_s"] / durable["mb_per_s"]
            rows.append((f"large images: {ours['name']} vs curl then fsync of each file, MB/s",
                         f">= {target}x", f"{ratio:.2f}x", ratio >= target))  # fmt: skip
        small = _row(data.get("throughput", []), tool)
        if ours and small:
            ratio = ours["peak_rss_mb"] / small["peak_rss_mb"]
            limit = GOALS["large_rss_ratio"]
            rows.append((f"peak RSS, large / small images, {ours['name']}", f"<= {limit}x",
                         f"{ratio:.2f}x ({ours['peak_rss_mb']:.0f} / "
                         f"{small['peak_rss_mb']:.0f} MB)", ratio <= limit))  # fmt: skip
    return rows


def baseline_goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """This checkout's imgflow at 64 in flight against the baseline commit's, same run."""
    rows: list[tuple[str, str, str, bool | None]] = []
    target = GOALS["vs_baseline"]
    for tool in ("imgflow", "imgflow-nofsync"):
        ours = _row(data.get("throughput", []), tool)
        theirs = _row(data.get("throughput", []), tool.replace("imgflow", "imgflow-baseline"))
        if not (ours and theirs):
            continue
        speed = ours["images_per_s"] / theirs["images_per_s"]
        cpu = theirs["cpu_ms_per_image"] / ours["cpu_ms_per_image"]
        label = f"{ours['name']} vs {theirs['name']}"
        rows.append((f"images/s, {label}", f">= {target}x", f"{speed:.2f}x", speed >= target))
        rows.append((f"CPU per image (inverse ratio), {label}", f">= {target}x",
                     f"{cpu:.2f}x", cpu >= target))  # fmt: skip
    return rows


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    out = [
        f"# imgflow benchmark, {data['date']}{' (quick)' if data['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, `nproc` = {m['nproc']}, kernel {m['kernel']}, "
        f"Python {m['python']}. Command: `{data['command']}`; total {data['seconds']:.0f} s.",
        "",
        "```",
        "$ free -g",
        m["free_g"],
        "```",
        "",
        f"All traffic on 127.0.0.1. Medians of {data['repeats']} runs. Rates are by wall time "
        "of the whole process (start-up included); CPU is user+sys of the process tree; RSS is "
        "the peak of the largest process.",
        "",
        "## Throughput: 5,000 images of 2-30 KB from nginx (keep-alive)",
        "",
        "| tool | in flight | images/s | CPU ms/image | peak RSS MB | stored |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in data.get("throughput", []):
        out.append(
            f"| {r['name']} | {r['concurrency']} | {r['images_per_s']:,.0f} | "
            f"{r['cpu_ms_per_image']:.3f} | {r['peak_rss_mb']:.1f} | "
            f"{r['stored_min']}/{r['images']} |"
        )
    for note in data.get("notes", []):
        out.append(f"\nNote: {note}")
    if "large" in data:
        total = data["large"][0]["total_mb"] if data["large"] else 0
        out += [
            "",
            f"## Large images: {LARGE_COUNT} images of 1-8 MB ({total:,.0f} MB) from nginx",
            "",
            "| tool | in flight | MB/s | CPU ms/MB | peak RSS MB | stored |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in data["large"]:
            out.append(
                f"| {r['name']} | {r['concurrency']} | {r['mb_per_s']:,.0f} | "
                f"{r['cpu_ms_per_mb']:.2f} | {r['peak_rss_mb']:.1f} | "
                f"{r['stored_min']}/{r['images']} |"
            )
    if "latency" in data:
        out += [
            "",
            f"## Latency-bound: server waits {DELAY * 1000:.0f} ms per response",
            "",
            f"{LATENCY_BATCH} paths per batch, 50 rounds of the cap. Efficiency = images/s "
            "between the first request and the last response, seen by the server, "
            "/ (cap / 0.05 s).",
            "",
            "| -c | batches | cap in flight | images | efficiency | max in flight seen |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in data["latency"]:
            out.append(
                f"| {r['concurrency']} | {r['max_batches']} | {r['cap']} | {r['images']} | "
                f"{r['efficiency']:.1%} | {r['max_in_flight']} |"
            )
    if "scale" in data:
        s = data["scale"]
        out += [
            "",
            f"## Scale: {s['images']:,} images, imgflow -c 16 x 4 batches",
            "",
            "| images | images/s | CPU ms/image | peak RSS MB | stored |",
            "|---:|---:|---:|---:|---:|",
            f"| {s['images']:,} | {s['images_per_s']:,.0f} | {s['cpu_ms_per_image']:.3f} | "
            f"{s['peak_rss_mb']:.1f} | {s['stored_min']}/{s['images']} |",
        ]
    if "startup" in data:
        st = data["startup"]
        out += [
            "",
            "## Start-up",
            "",
            f"`imgflow --help`: {st['help_s']:.3f} s (median); a bare `python -c pass`: "
            f"{st['python_bare_s']:.3f} s.",
        ]
    aws = data.get("aws_cost", {})
    out += ["", "## AWS cost (bench/aws_cost.py, on moto)", ""]
    if aws.get("output"):
        out += [f"Status: {aws['status']}.", "", "```", aws["output"], "```"]
    else:
        out.append(f"{aws.get('status', 'pending')}: {aws.get('note', '')}")
    if aws.get("stderr_tail") and not str(aws.get("status")).startswith("ok"):
        out += ["", "Its last lines on stderr:", "", "```", *aws["stderr_tail"], "```"]
    if data.get("wire"):
        import wire

        out += wire.markdown(data["wire"])
    if data.get("throttle"):
        import throttle

        out += throttle.markdown(data["throttle"])
    out += ["", "## Goals", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    for goal, target, measured, met in goals(data):
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        out.append(f"| {goal} | {target} | {measured} | {mark} |")
    return "\n".join(out) + "\n"


def find_tools(args: argparse.Namespace) -> Tools:
    imgflow_python = args.imgflow_python
    imgflow = str(Path(imgflow_python).parent / "imgflow")
    peers = WORK / "venv-peers"
    i2d = WORK / "venv-i2d"
    return Tools(
        imgflow=imgflow,
        imgflow_python=imgflow_python,
        peers_python=str(peers / "bin" / "python") if (peers / ".ok").exists() else None,
        img2dataset=(
            str(i2d / "bin" / "img2dataset")
            if (i2d / ".ok").exists() and not args.no_img2dataset
            else None
        ),
        curl=shutil.which("curl"),
        wget=shutil.which("wget"),
        aria2c=shutil.which("aria2c"),
        baseline=(
            str(Path(args.baseline_python).parent / "imgflow") if args.baseline_python else None
        ),
        baseline_name=args.baseline_name,
        only=args.tools,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per case (< 3 minutes)")
    parser.add_argument("--imgflow-python", default=sys.executable)
    parser.add_argument("--cases", default="throughput,large,latency,scale,startup,aws,proxy,tls")
    parser.add_argument("--baseline-python", help="python of a venv with another imgflow")
    parser.add_argument("--baseline-name", default="baseline", help="its label (a git ref)")
    parser.add_argument("--no-img2dataset", action="store_true")
    parser.add_argument(
        "--tools",
        default="",
        help="only these tools in the throughput and large cases, e.g. "
        "'imgflow*,curl,aiohttp' (imgflow* is every imgflow row, the baseline's too)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only; write no results")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    cases = set(args.cases.split(","))
    repeats = 1 if args.quick else 3
    tools = find_tools(args)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    corpus = WORK / "corpus"
    data: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "quick": args.quick,
        "repeats": repeats,
        "command": "bench/run" + (" --quick" if args.quick else ""),
        "machine": machine(),
        "notes": [],
    }
    for name, path in (
        ("aiohttp", tools.peers_python),
        ("img2dataset", tools.img2dataset),
        ("curl", tools.curl),
        ("wget", tools.wget),
        ("aria2c", tools.aria2c),
    ):
        if path is None:
            data["notes"].append(f"{name} is not installed, so it was skipped.")  # fmt: skip
    small, large = 5_000, 50_000
    wire_cases = cases & {"proxy", "tls", "baseline"}  # bench/wire.py
    if cases & {"throughput", "scale"} or wire_cases:
        make_corpus(corpus, large if "scale" in cases else small)
    if "throughput" in cases:
        print(f"throughput: {small:,} images, {repeats} run(s) per tool", flush=True)
        data["throughput"] = throughput(tools, corpus, small, repeats)
    if "large" in cases:
        print(f"large images: {LARGE_COUNT} of 1-8 MB, {repeats} run(s) per tool", flush=True)
        large_corpus = WORK / "corpus-large"
        make_large_corpus(large_corpus, LARGE_COUNT)
        data["large"] = large_images(tools, large_corpus, LARGE_COUNT, repeats)
    if "latency" in cases:
        print("latency-bound: server waits 50 ms", flush=True)
        data["latency"] = latency(tools, 50, repeats)
    if "scale" in cases:
        print(f"scale: {large:,} images", flush=True)
        data["scale"] = scale(tools, corpus, large, repeats)
    if "startup" in cases:
        data["startup"] = startup(tools, 7)
        print(f"start-up: imgflow --help {data['startup']['help_s']:.3f} s", flush=True)
    if "aws" in cases:
        print("aws cost: bench/aws_cost.py (imgflow and the original design, on moto)", flush=True)
        data["aws_cost"] = aws_cost(tools.imgflow_python)
        print(f"  {data['aws_cost']['status']}", flush=True)
        for line in (
            data["aws_cost"].get("stderr_tail", []) if data["aws_cost"]["status"] != "ok" else []
        ):
            print(f"    {line}", flush=True)
    if wire_cases:
        import wire

        data["wire"] = wire.run(wire_cases, tools, corpus, small, repeats)
    if cases & {"throttle", "aws-throttle"}:  # bench/throttle.py, one run per case
        import throttle

        print("throttle: imgflow against nginx's limit_req and limit_conn", flush=True)
        data["throttle"] = throttle.run(tools, cases)
    data["seconds"] = time.perf_counter() - started
    text = markdown(data)
    print("\n" + text)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stem = RESULTS / (data["date"] + ("-quick" if args.quick else ""))
        stem.with_suffix(".md").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
    main()
