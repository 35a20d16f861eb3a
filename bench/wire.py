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

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bench as core

# bench.py's nginx, listening with TLS and a session cache.
TLS_CONF = core.NGINX_CONF.replace(
    "    server {{\n", "    ssl_session_cache shared:SSL:10m;\n    server {{\n"
).replace(
    "listen 127.0.0.1:{port} backlog=4096;",
    "listen 127.0.0.1:{port} ssl backlog=4096;\n"
    "        ssl_certificate {dir}/cert.pem;\n"
    "        ssl_certificate_key {dir}/key.pem;",
)
assert "ssl_session_cache" in TLS_CONF and "ssl_certificate_key" in TLS_CONF


def _certificate(folder: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (its own CA); returns the PEM to trust."""
    cert = folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(folder / "key.pem"), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert


@contextlib.contextmanager
def tls_nginx(root: Path) -> Iterator[tuple[int, Path]]:
    """nginx serving `root` over https on a free port: (port, the certificate to trust)."""
    folder = core.WORK / "nginx-tls"
    folder.mkdir(parents=True, exist_ok=True)
    cert = _certificate(folder)
    with core.nginx(root, folder, TLS_CONF) as port:
        yield port, cert


@contextlib.contextmanager
def tinyproxy() -> Iterator[str]:
    """tinyproxy on a free port, in the foreground; yields its URL."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not Path(binary).exists():
        raise FileNotFoundError("tinyproxy is not installed")
    folder = core.WORK / "tinyproxy"
    folder.mkdir(parents=True, exist_ok=True)
    port = core.free_port()
    conf = folder / "tinyproxy.conf"
    conf.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 512\n"
        f'LogFile "{folder}/tinyproxy.log"\nLogLevel Warning\nAllow 127.0.0.1\n'
    )
    log = (core.WORK / "logs" / "tinyproxy.log").open("ab")
    proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=log, stderr=log)
    try:
        core.wait_for_port(port, proc, "tinyproxy")
        yield f"http://127.0.0.1:{port}"
    finally:
        core.stop(proc)
        log.close()


def _pair(
    tools: core.Tools, base: str, files: dict[str, Path], imgflow_extra: list[str],
    curl_extra: list[str],
) -> list[core.Case]:  # fmt: skip
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    cases = [
        core.Case("imgflow -c 16 x 4, fsync off", "imgflow", 64,
                  [*core.imgflow_argv(tools, base, files["paths"], 16, 4), *imgflow_extra],
                  env=no_fsync),
    ]  # fmt: skip
    if tools.curl:
        cases.append(core.Case("curl --parallel-max 64", "curl", 64, [
            tools.curl, "-s", "--parallel", "--parallel-max", "64", "--create-dirs",
            "-K", str(files["curl"]), "--output-dir", core.OUT, *curl_extra]))  # fmt: skip
    return cases


def _measure(cases: list[core.Case], count: int, repeats: int, label: str) -> dict[str, Any]:
    log = core.WORK / "logs" / f"{label}.log"
    for repeat in range(repeats):
        for case in cases:
            r = core.run_case(case, count, log)
            print(
                f"  [{repeat + 1}/{repeats}] {label}: {case.name:<32} {count / r.wall:>8.0f} "
                f"img/s {1000 * r.cpu / count:>6.3f} ms CPU/img",
                flush=True,
            )
    rows = [
        {"name": c.name, "tool": c.tool, "concurrency": c.concurrency}
        | core.summarise(c.runs, count)
        for c in cases
    ]
    ratio = None
    if len(rows) == 2:
        ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    return {"rows": rows, "ratio": ratio}


def proxied(tools: core.Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    """imgflow and curl through tinyproxy."""
    paths = core.corpus_paths(count)
    with core.nginx(corpus) as port, tinyproxy() as proxy:
        base = f"http://127.0.0.1:{port}"
        files = core.write_lists(base, paths, core.WORK / f"lists-{count}")
        cases = _pair(tools, base, files, ["--proxy", proxy], ["--proxy", proxy])
        return _measure(cases, count, repeats, "proxy")


def tls(tools: core.Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    """imgflow and curl over https from nginx."""
    paths = core.corpus_paths(count)
    with tls_nginx(corpus) as (port, cert):
        base = f"https://127.0.0.1:{port}"
        files = core.write_lists(base, paths, core.WORK / f"lists-tls-{count}")
        cases = _pair(tools, base, files, ["--ca-bundle", str(cert)], ["--cacert", str(cert)])
        return _measure(cases, count, repeats, "tls")


def baseline(tools: core.Tools, corpus: Path, count: int, repeats: int) -> dict[str, Any]:
    """This imgflow against IMGFLOW_BASELINE_PYTHON's, plain http, 64 in flight."""
    other = os.environ.get("IMGFLOW_BASELINE_PYTHON")
    if not other:
        return {"note": "IMGFLOW_BASELINE_PYTHON is not set"}
    old = str(Path(other).parent / "imgflow")
    paths = core.corpus_paths(count)
    no_fsync = {**os.environ, "IMGFLOW_LOCAL_FSYNC": "false"}
    with core.nginx(corpus) as port:
        base = f"http://127.0.0.1:{port}"
        files = core.write_lists(base, paths, core.WORK / f"lists-{count}")
        argv = core.imgflow_argv(tools, base, files["paths"], 16, 4)
        cases = [
            core.Case("imgflow (this checkout)", "imgflow", 64, argv, env=no_fsync),
            core.Case("imgflow (baseline)", "imgflow-baseline", 64, [old, *argv[1:]],
                      env=no_fsync),
        ]  # fmt: skip
        result = _measure(cases, count, repeats, "baseline")
    new, before = result["rows"]
    result["cpu_ratio"] = new["cpu_ms_per_image"] / before["cpu_ms_per_image"]
    return result


def markdown(data: dict[str, Any]) -> list[str]:
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


def run(
    cases: set[str], tools: core.Tools, corpus: Path, count: int, repeats: int
) -> dict[str, Any]:
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
