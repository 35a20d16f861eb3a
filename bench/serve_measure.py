#!/usr/bin/env python3
"""Measure `imgflow serve` (report only, no goals): memory under idle connections and a full
queue, and how fast it answers ``GET /runs/<id>`` while a 50,000-image job runs.

    .venv/bin/python bench/serve_measure.py [--connections 200] [--queued 20]
        [--body-mb 6] [--images 50000] [--seconds 10]

Everything runs on 127.0.0.1: the service as a real process in a temporary folder, nginx
serving one small GIF for every path (the 50,000-image job), and a listening socket that
never answers (a job that holds the worker while the queue fills). Peak RSS is the
service's VmHWM from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.paths import ROOT
from harness.servers import NGINX_CONF, free_port, stop, wait_for_port

# The harness's nginx, answering every path with the same small GIF.
NGINX_ONE_FILE = NGINX_CONF.replace(
    "root {root};",
    "root {root};\n        location / {{ default_type image/gif; try_files /one.gif =404; }}",
)


def memory(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of `pid`, in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


class Service:
    """`imgflow serve` in `folder` with `settings` merged into imgflow.yaml."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        config: dict[str, Any] = {"local": {"fsync": False}, "fetch": {"retries": 0}}
        for section, values in settings.items():
            config.setdefault(section, {}).update(values)
        (folder / "imgflow.yaml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imgflow.cli", "serve", "--port", str(self.port)],
            cwd=folder,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 60
        while not any("taking jobs at" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("serve did not start:\n" + "".join(self.lines))
            time.sleep(0.05)
        token = next(line for line in self.lines if "token for this start" in line).split()[5]
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def post(self, body: bytes) -> httpx.Response:
        return self.client.post("/jobs", content=body, headers={"Content-Type": "application/json"})

    def close(self) -> None:
        self.client.close()
        stop(self.proc)  # type: ignore[arg-type]


@contextmanager
def service(settings: dict[str, Any]) -> Iterator[Service]:
    with tempfile.TemporaryDirectory(prefix="serve-measure-") as folder:
        running = Service(Path(folder), settings)
        try:
            yield running
        finally:
            running.close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A base URL whose connections are accepted by the kernel and never answered."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextmanager
def one_gif_nginx() -> Iterator[str]:
    """nginx answering every path with the same small GIF."""
    sys.path.insert(0, str(ROOT))
    from imgflow.demo.images import make_gif

    with tempfile.TemporaryDirectory(prefix="serve-nginx-") as folder:
        www = Path(folder) / "www"
        www.mkdir()
        (www / "one.gif").write_bytes(make_gif("one"))
        port = free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = Path(folder) / "nginx.conf"
        conf.write_text(NGINX_ONE_FILE.format(user=user, dir=folder, port=port, root=www))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        proc = subprocess.Popen([binary, "-p", folder, "-c", str(conf)])
        try:
            wait_for_port(port, proc, "nginx")  # type: ignore[arg-type]
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)  # type: ignore[arg-type]


def idle_connections(count: int) -> dict[str, Any]:
    """RSS before and with `count` connections that each sent half a request head."""
    settings = {"serve": {"max_connections": count + 10, "read_timeout": 300}}
    with service(settings) as serve:
        serve.client.get("/runs")
        before = memory(serve.proc.pid)
        socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", serve.port))
            sock.sendall(f"GET /runs HTTP/1.1\r\nHost: 127.0.0.1:{serve.port}\r\n".encode())
            socks.append(sock)
        time.sleep(2)
        during = memory(serve.proc.pid)
        still = serve.client.get("/runs").status_code
        for sock in socks:
            sock.close()
    return {"connections": count, "before": before, "during": during, "answers_meanwhile": still}


def full_queue(queued: int, body_mb: float) -> dict[str, Any]:
    """Peak RSS while `queued` jobs of `body_mb` MB each fill the queue behind a stuck job."""
    per_path = len('"aa/aa000000.gif", ')
    paths = [f"aa/aa{i:06d}.gif" for i in range(int(body_mb * 1024 * 1024 / per_path))]
    settings = {"serve": {"max_queued": queued}, "fetch": {"timeout": 600}}
    with silent_server() as stuck, service(settings) as serve:
        first = serve.post(json.dumps({"baseUrl": stuck, "resourcePaths": ["x.gif"]}).encode())
        assert first.status_code == 202, first.text
        body = json.dumps({"baseUrl": stuck, "resourcePaths": paths}).encode()
        before = memory(serve.proc.pid)
        started = time.monotonic()
        codes = [_status(serve, body) for _ in range(queued)]
        took = time.monotonic() - started
        refused = _status(serve, body)
        after = memory(serve.proc.pid)
        problems = [line for line in serve.lines if " ERROR " in line or "Error" in line]
    return {
        "jobs": queued,
        "body_mb": round(len(body) / 1024 / 1024, 1),
        "paths_per_job": len(paths),
        "accepted": codes.count(202),
        "answers": codes,
        "seconds_to_accept_all": round(took, 1),
        "next_post": refused,
        "server_errors": problems[-20:],
        "before": before,
        "after": after,
    }


def _status(serve: Service, body: bytes) -> int | str:
    """The answer's status (and Retry-After), or the client's error."""
    try:
        answer = serve.post(body)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    retry = answer.headers.get("retry-after")
    return answer.status_code if retry is None else f"{answer.status_code} Retry-After {retry}"


def poll_rate(images: int, seconds: float) -> dict[str, Any]:
    """GET /runs/<id> per second, idle and while a job of `images` images runs."""
    with one_gif_nginx() as base, service({"job": {"max_batches": 4}}) as serve:
        paths = [f"img/{i // 1000}/{i}.gif" for i in range(images)]
        warm = serve.post(json.dumps({"baseUrl": base, "resourcePaths": ["warm.gif"]}).encode())
        warm_id = warm.json()["run"]
        while serve.client.get(f"/runs/{warm_id}").json()["state"] != "succeeded":
            time.sleep(0.05)
        idle = _rate(serve, warm_id, seconds)
        answer = serve.post(
            json.dumps({"baseUrl": base, "resourcePaths": paths, "lambdaConcur": 20}).encode()
        )
        run_id = answer.json()["run"]
        while serve.client.get(f"/runs/{run_id}?results=false").json()["state"] == "queued":
            time.sleep(0.05)
        busy = _rate(serve, run_id, seconds)
        full_started = time.monotonic()
        full = serve.client.get(f"/runs/{run_id}")
        full_took = time.monotonic() - full_started
        head = serve.client.get(f"/runs/{run_id}?results=false").json()
        while head["state"] == "running":
            time.sleep(0.5)
            head = serve.client.get(f"/runs/{run_id}?results=false").json()
        mem = memory(serve.proc.pid)
    return {
        "images": images,
        "idle_requests_per_s": idle,
        "running_requests_per_s": busy,
        "full_document_while_running": {
            "bytes": len(full.content),
            "seconds": round(full_took, 2),
        },
        "job": head["state"],
        "job_summary": head["summary"],
        "job_seconds": _seconds(head),
        "memory_after": mem,
    }


def _rate(serve: Service, run_id: str, seconds: float) -> dict[str, Any]:
    done = 0
    live: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        document = serve.client.get(f"/runs/{run_id}?results=false").json()
        live.append(document["summary"]["stored"])
        done += 1
    rate = done / (time.monotonic() - started)
    return {"rate": round(rate, 1), "stored_first_last": [live[0], live[-1]]}


def _seconds(head: dict[str, Any]) -> float | None:
    import calendar

    if not head.get("startedAt") or not head.get("finishedAt"):
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    start = calendar.timegm(time.strptime(head["startedAt"], fmt))
    end = calendar.timegm(time.strptime(head["finishedAt"], fmt))
    return float(end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--queued", type=int, default=20)
    parser.add_argument("--body-mb", type=float, default=6.0)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["idle", "queue", "rate"])
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.only in (None, "idle"):
        results["idle_connections"] = idle_connections(args.connections)
        print(json.dumps(results["idle_connections"]), flush=True)
    if args.only in (None, "queue"):
        results["full_queue"] = full_queue(args.queued, args.body_mb)
        print(json.dumps(results["full_queue"]), flush=True)
    if args.only in (None, "rate"):
        results["poll_rate"] = poll_rate(args.images, args.seconds)
        print(json.dumps(results["poll_rate"]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
