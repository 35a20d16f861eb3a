"""Many hosts: 20 hosts (nginx server blocks on 20 loopback ports, one corpus), `PER_HOST`
images each, shuffled into one table of full URLs. imgflow (`--urls-file`, a CSV with a
caption column) against `aria2c -i` (`--max-connection-per-server`), `wget -i` and
img2dataset on the same table (its natural input: `--input_format csv --url_col url
--caption_col caption`): images/s, CPU per image and peak RSS.

Each host's own peak in flight is counted from its server block's access log (one per
port: the end time and duration of every request, `$msec $request_time`, 1 ms resolution),
emptied before each run of a tool and read after it.
"""

from __future__ import annotations

import contextlib
import csv
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.corpus import corpus_paths
from harness.paths import WORK
from harness.report import Goal
from harness.servers import NGINX_CONF, free_port, nginx
from harness.tools import OUT, Case, Tools, run_rounds

HOSTS = 20
PER_HOST = 2_500
PER_HOST_QUICK = 250
CAP = 4  # requests in flight per host asked of every tool that has such a setting
GOALS = {"vs_img2dataset": 2.0, "vs_aria2c": 1.0}

# formatted twice: here (the port), then by nginx() (the root)
_SERVER = (
    "    server {{{{\n        listen 127.0.0.1:{port} backlog=4096;\n"
    "        access_log {{dir}}/access-{port}.log timing;\n"
    "        root {{root}};\n    }}}}\n"
)
_TIMING = "    log_format timing '$msec $request_time';\n"


def _template(ports: list[int]) -> str:
    """NGINX_CONF with one server block per extra port (the first is nginx()'s own), each
    with its access log of request times."""
    extra = "".join(_SERVER.format(port=port) for port in ports)
    conf = NGINX_CONF.replace("    access_log off;\n", "    access_log off;\n" + _TIMING, 1)
    main_log = "        access_log {dir}/access-main.log timing;\n"
    conf = conf.replace("        root {root};\n", main_log + "        root {root};\n", 1)
    return conf.replace("    server {{\n", extra + "    server {{\n", 1)


def peak_in_flight(log: Path) -> int:
    """The most requests one server had in flight at once, from its access log."""
    events: list[tuple[float, int]] = []
    for line in log.read_text().splitlines():
        end, took = (float(v) for v in line.split())
        events += [(end - took, 1), (end, -1)]
    most = current = 0
    for _, step in sorted(events):  # (an end sorts before a start at the same ms)
        current += step
        most = max(most, current)
    return most


@contextlib.contextmanager
def _counting(folder: Path, peaks: dict[str, list[int]], name: str) -> Iterator[None]:
    """Empty the servers' access logs, then keep each server's peak of this run."""
    logs = sorted(folder.glob("access-*.log"))
    for log in logs:
        log.write_bytes(b"")  # (nginx appends: its next line lands at the start)
    yield
    peaks[name] = [peak_in_flight(log) for log in logs]


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


def cases(tools: Tools, files: dict[str, Path]) -> list[Case]:
    out = [
        Case(f"imgflow --urls-file, -c {CAP}", "imgflow", 64, [
            tools.imgflow, "run", "--urls-file", str(files["csv"]), "-c", str(CAP),
            "--max-batches", "16", "--data-dir", OUT, "--output", "json"]),
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
    extra = [free_port() for _ in range(HOSTS - 1)]
    log = WORK / "logs" / "hosts.log"
    folder = WORK / "nginx-hosts"
    peaks: dict[str, list[int]] = {}  # each server's peak in flight, of a tool's last run
    with nginx(corpus, folder, _template(extra)) as port:
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
            around=lambda case: _counting(folder, peaks, case.name),
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
        " peak in flight per server (min-max) |",
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
    """imgflow's images/s against img2dataset's (2x) and aria2c's (1x)."""
    if "hosts" not in data:
        return []
    rows = {r["tool"]: r for r in data["hosts"]["rows"]}
    mine = rows.get("imgflow")
    out: list[Goal] = []
    for tool, key in (("img2dataset", "vs_img2dataset"), ("aria2c", "vs_aria2c")):
        if mine and tool in rows and rows[tool]["images_per_s"]:
            ratio = mine["images_per_s"] / rows[tool]["images_per_s"]
            target = GOALS[key]
            out.append((f"many hosts: images/s vs {tool}", f">= {target:g}x", f"{ratio:.2f}x",
                        ratio >= target))  # fmt: skip
    return out
