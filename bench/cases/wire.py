"""Wire cases of the benchmark: the throughput corpus through a proxy and over TLS.

``bench/run --cases proxy,tls`` (and ``baseline``): imgflow at 64 in flight against curl at
64 on the same 5,000 images,

- proxy: through tinyproxy (Debian's), both tools with ``--proxy``;
- tls: from nginx over https with a self-signed certificate made here by ``openssl``,
  trusted with ``--ca-bundle`` / ``--cacert``;
- baseline: plain http, this checkout's imgflow against another one
  (``IMGFLOW_BASELINE_PYTHON``: the python of a venv with the older imgflow installed),
  interleaved in one run, to compare images/s and CPU per image of two commits.

Each case reports imgflow's ratio to its peer in the same run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from harness.corpus import corpus_paths
from harness.measure import summarise
from harness.paths import WORK
from harness.servers import nginx, tinyproxy, tls_nginx
from harness.tools import (
    OUT,
    Case,
    Tools,
    imgflow_argv,
    run_case,
    write_lists,
)


def _pair(
    tools: Tools, base: str, files: dict[str, Path], imgflow_extra: list[str],
    curl_extra: list[str],
) -> list[Case]:  # fmt: skip
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    cases = [
        Case("imgflow -c 16 x 4, fsync off", "imgflow", 64,
                  [*imgflow_argv(tools, base, files["paths"], 16, 4), *imgflow_extra],
                  env=no_fsync),
    ]  # fmt: skip
    if tools.curl:
        cases.append(Case("curl --parallel-max 64", "curl", 64, [
            tools.curl, "-s", "--parallel", "--parallel-max", "64", "--create-dirs",
            "-K", str(files["curl"]), "--output-dir", OUT, *curl_extra]))  # fmt: skip
    return cases


def _measure(cases: list[Case], count: int, repeats: int, label: str) -> dict[str, Any]:
    log = WORK / "logs" / f"{label}.log"
    for repeat in range(repeats):
        for case in cases:
            r = run_case(case, count, log)
            print(
                f"  [{repeat + 1}/{repeats}] {label}: {case.name:<32} {count / r.wall:>8.0f} "
                f"img/s {1000 * r.cpu / count:>6.3f} ms CPU/img",
                flush=True,
            )
    rows = [
        {"name": c.name, "tool": c.tool, "concurrency": c.concurrency} | summarise(c.runs, count)
        for c in cases
    ]
    ratio = None
    if len(rows) == 2:
        ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    return {"rows": rows, "ratio": ratio}


def proxied(tools: Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    """imgflow and curl through tinyproxy."""
    paths = corpus_paths(count)
    with nginx(corpus) as port, tinyproxy() as proxy:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, paths, WORK / f"lists-{count}")
        cases = _pair(tools, base, files, ["--proxy", proxy], ["--proxy", proxy])
        return _measure(cases, count, repeats, "proxy")


def tls(tools: Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    """imgflow and curl over https from nginx."""
    paths = corpus_paths(count)
    with tls_nginx(corpus) as (port, cert):
        base = f"https://127.0.0.1:{port}"
        files = write_lists(base, paths, WORK / f"lists-tls-{count}")
        cases = _pair(tools, base, files, ["--ca-bundle", str(cert)], ["--cacert", str(cert)])
        return _measure(cases, count, repeats, "tls")


def baseline(tools: Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    """This imgflow against IMGFLOW_BASELINE_PYTHON's, plain http, 64 in flight."""
    other = os.environ.get("IMGFLOW_BASELINE_PYTHON")
    if not other:
        return {"note": "IMGFLOW_BASELINE_PYTHON is not set"}
    old = str(Path(other).parent / "imgflow")
    paths = corpus_paths(count)
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    with nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = write_lists(base, paths, WORK / f"lists-{count}")
        argv = imgflow_argv(tools, base, files["paths"], 16, 4)
        cases = [
            Case("imgflow (this checkout)", "imgflow", 64, argv, env=no_fsync),
            Case("imgflow (baseline)", "imgflow-baseline", 64, [old, *argv[1:]],
                      env=no_fsync),
        ]  # fmt: skip
        result = _measure(cases, count, repeats, "baseline")
    new, before = result["rows"]
    result["cpu_ratio"] = new["cpu_ms_per_image"] / before["cpu_ms_per_image"]
    return result


def section(data: dict[str, Any]) -> list[str]:
    """The wire cases' section of the results file."""
    out: list[str] = []
    titles = {
        "proxy": "Through a proxy: the throughput corpus via tinyproxy",
        "tls": "Over TLS: the throughput corpus from nginx over https",
        "baseline": "This checkout against a baseline imgflow (plain http, fsync off)",
    }
    for key, title in titles.items():
        case = data.get(key)
        if case is None:
            continue
        out += ["", f"## {title}", ""]
        if "rows" not in case:
            out.append(case.get("note", "not run"))
            continue
        out += [
            "| tool | in flight | images/s | CPU ms/image | stored |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in case["rows"]:
            out.append(
                f"| {r['name']} | {r['concurrency']} | {r['images_per_s']:,.0f} | "
                f"{r['cpu_ms_per_image']:.3f} | {r['stored_min']}/{r['images']} |"
            )
        if case.get("ratio") is not None:
            peer = "the baseline" if key == "baseline" else "curl"
            out.append(f"\nimgflow / {peer}: {case['ratio']:.2f}x images/s")
        if "cpu_ratio" in case:
            out.append(f"CPU per image, this / baseline: {case['cpu_ratio']:.2f}x")
    return out


def run(cases: set[str], tools: Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    """The wire cases named in `cases`; a case that cannot run gets a note with the cause."""
    data: dict[str, Any] = {}
    for name, case in (("proxy", proxied), ("tls", tls), ("baseline", baseline)):
        if name not in cases:
            continue
        print(f"{name}: {count:,} images, {repeats} run(s) per tool", flush=True)
        try:
            data[name] = case(tools, corpus, count, repeats)
        except (OSError, subprocess.CalledProcessError, SystemExit) as exc:
            data[name] = {"note": f"failed: {exc}"}
            print(f"  {name} failed: {exc}", flush=True)
    return data
