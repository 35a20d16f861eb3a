"""Many hosts: 20 hosts (nginx server blocks on 20 loopback ports, one corpus), `PER_HOST`
images each, shuffled into one table of full URLs. imgflow (`--urls-file`, a CSV with a
caption column) against `aria2c -i` (`--max-connection-per-server`), `wget -i` and
img2dataset on the same table (its natural input: `--input_format csv --url_col url
--caption_col caption`): images/s, CPU per image and peak RSS.

Each host's peak of open connections (an upper bound on its requests in flight: nginx
answers these small files within its log's 1 ms resolution, so its access log cannot tell
requests in flight apart) is sampled with `ss` every 20 ms during each tool's run.
"""

from __future__ import annotations

import contextlib
import csv
import random
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.corpus import corpus_paths
from harness.paths import WORK
from harness.report import Goal
from harness.servers import NGINX_CONF, free_ports, nginx
from harness.tools import OUT, Case, Tools, run_rounds

HOSTS = 20
PER_HOST = 2_500
PER_HOST_QUICK = 250
CAP = 4  # requests in flight per host asked of every tool that has such a setting
GOALS = {"vs_img2dataset": 2.0, "vs_aria2c": 1.0}

# formatted twice: here (the port), then by nginx() (the root)
_SERVER = (
    "    server {{{{\n        listen 127.0.0.1:{port} backlog=4096;\n"
    "        root {{root}};\n    }}}}\n"
)
SAMPLE = 0.02  # seconds between two samples of the open connections


def _template(ports: list[int]) -> str:
    """NGINX_CONF with one server block per extra port (the first is nginx()'s own)."""
    extra = "".join(_SERVER.format(port=port) for port in ports)
    return NGINX_CONF.replace("    server {{\n", extra + "    server {{\n", 1)


def open_connections(ports: set[int]) -> dict[int, int]:
    """How many established connections each of `ports` (a server's) has now (`ss`)."""
    done = subprocess.run(
        ["ss", "-Htn", "state", "established"], capture_output=True, text=True, check=False
    )
    counts = dict.fromkeys(ports, 0)
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            port = int(fields[2].rsplit(":", 1)[1])  # (the local address: the server's side)
            if port in counts:
                counts[port] += 1
    return counts


@contextlib.contextmanager
def _counting(ports: list[int], peaks: dict[str, list[int]], name: str) -> Iterator[None]:
    """Sample every server's open connections while a tool runs; keep each one's peak."""
    most = dict.fromkeys(ports, 0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE):
            for port, count in open_connections(set(ports)).items():
                most[port] = max(most[port], count)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()
        peaks[name] = [most[port] for port in ports]


def _table(ports: list[int], paths: list[str], folder: Path) -> dict[str, Path]:
    """The shuffled table as CSV (imgflow, img2dataset) and a URL list (wget, aria2c)."""
    folder.mkdir(parents=True, exist_ok=True)
    urls = [f"http://127.0.0.1:{port}/{path}" for port in ports for path in paths]
    random.Random(24).shuffle(urls)
    files = {"csv": folder / "urls.csv", "urls": folder / "urls.txt", "aria2": folder / "aria2"}
    with files["csv"].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["url", "caption"])
        writer.writerows([url, f"image {n}"] for n, url in enumerate(urls))
    files["urls"].write_text("".join(f"{url}\n" for url in urls))
    # aria2c names a file by its URL's last segment: each host gets a folder of its own
    files["aria2"].write_text(
        "".join(f"{url}\n  out={url.removeprefix('http://').replace(':', '_')}\n" for url in urls)
    )
    return files


def _imgflow(imgflow: str, files: dict[str, Path], *extra: str) -> list[str]:
    return [
        imgflow, "run", "--urls-file", str(files["csv"]), "-c", str(CAP),
        "--max-batches", "16", *extra, "--data-dir", OUT, "--output", "json",
    ]  # fmt: skip


def cases(tools: Tools, files: dict[str, Path]) -> list[Case]:
    out = [
        Case(f"imgflow --urls-file, -c {CAP}", "imgflow", 64, _imgflow(tools.imgflow, files)),
        # both cores, as img2dataset's two processes use them (the caps held across both)
        Case(f"imgflow --urls-file, -c {CAP}, --workers 2", "imgflow", 64,
             _imgflow(tools.imgflow, files, "--workers", "2")),
    ]  # fmt: skip
    if tools.baseline is not None:  # the same two as built from the baseline commit
        name = tools.baseline_name
        out += [
            Case(f"imgflow at {name} --urls-file, -c {CAP}", "imgflow-baseline", 64,
                 _imgflow(tools.baseline, files)),
            Case(f"imgflow at {name} --urls-file, -c {CAP}, --workers 2", "imgflow-baseline",
                 64, _imgflow(tools.baseline, files, "--workers", "2")),
        ]  # fmt: skip
    if tools.aria2c:
        out.append(Case(f"aria2c -i -j 64 -x {CAP}", "aria2c", 64, [
            tools.aria2c, "-q", "-i", str(files["aria2"]), "-d", OUT, "-j", "64",
            f"--max-connection-per-server={CAP}", "--file-allocation=none",
            "--allow-overwrite=true", "--auto-file-renaming=false",
            "--console-log-level=error"]))  # fmt: skip
    if tools.wget:
        out.append(Case("wget -i (sequential)", "wget", 1, [
            tools.wget, "-q", "-i", str(files["urls"]), "-x", "-P", OUT]))  # fmt: skip
    if tools.img2dataset:
        out.append(Case("img2dataset 2 procs x 16 threads", "img2dataset", 32, [
            tools.img2dataset, "--url_list", str(files["csv"]), "--input_format", "csv",
            "--url_col", "url", "--caption_col", "caption",
            "--output_folder", OUT, "--output_format", "files", "--resize_mode", "no",
            "--processes_count", "2", "--thread_count", "16",
            "--number_sample_per_shard", "1000", "--enable_wandb", "False",
            "--retries", "0", "--timeout", "20"]))  # fmt: skip
    return out


def run(tools: Tools, corpus: Path, per_host: int, repeats: int) -> dict[str, Any]:
    """Every tool on the shuffled table of HOSTS hosts x `per_host` images."""
    paths = corpus_paths(per_host)
    count = HOSTS * per_host
    extra = free_ports(HOSTS - 1)
    log = WORK / "logs" / "hosts.log"
    peaks: dict[str, list[int]] = {}  # each server's peak of connections, a tool's last run
    with nginx(corpus, WORK / "nginx-hosts", _template(extra)) as port:
        files = _table([port, *extra], paths, WORK / f"lists-hosts-{per_host}")
        rows = run_rounds(
            cases(tools, files),
            count,
            repeats,
            log,
            lambda r: (
                f"{count / r.wall:>8.0f} img/s {1000 * r.cpu / count:>6.3f} ms CPU/img "
                f"{r.rss_mb:>6.1f} MB"
            ),
            around=lambda case: _counting([port, *extra], peaks, case.name),
        )
    for row in rows:
        row["server_peaks"] = peaks.get(row["name"], [])
    return {"hosts": HOSTS, "images": count, "rows": rows}


def section(data: dict[str, Any]) -> list[str]:
    """The many-hosts table, when the case ran."""
    if "hosts" not in data:
        return []
    h = data["hosts"]
    out = [
        "",
        f"## Many hosts: {h['hosts']} hosts, {h['images']:,} images in one shuffled table",
        "",
        "| tool | in flight | images/s | CPU ms/image | peak RSS MB | stored |"
        " peak connections per server (min-max) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in h["rows"]:
        peaks = r.get("server_peaks") or [0]
        out.append(
            f"| {r['name']} | {r['concurrency']} | {r['images_per_s']:,.0f} | "
            f"{r['cpu_ms_per_image']:.3f} | {r['peak_rss_mb']:.1f} | "
            f"{r['stored_min']}/{r['images']} | {min(peaks)}-{max(peaks)} |"
        )
    return out


def goals(data: dict[str, Any]) -> list[Goal]:
    """imgflow's best row's images/s against img2dataset's (2x) and aria2c's (1x)."""
    if "hosts" not in data:
        return []
    rows = {r["tool"]: r for r in data["hosts"]["rows"] if r["tool"] != "imgflow"}
    ours = [r for r in data["hosts"]["rows"] if r["tool"] == "imgflow"]
    mine = max(ours, key=lambda r: r["images_per_s"]) if ours else None  # its best row
    out: list[Goal] = []
    for tool, key in (("img2dataset", "vs_img2dataset"), ("aria2c", "vs_aria2c")):
        if mine and tool in rows and rows[tool]["images_per_s"]:
            ratio = mine["images_per_s"] / rows[tool]["images_per_s"]
            target = GOALS[key]
            out.append((f"many hosts: images/s vs {tool}", f">= {target:g}x", f"{ratio:.2f}x",
                        ratio >= target))  # fmt: skip
    return out
