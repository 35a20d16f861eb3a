"""`imgflow serve` as a real process: the original request body starts local runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.processes import signalled

from imgflow.demo.server import StaticServer

REFERENCE = Path(__file__).resolve().parent / "data" / "requests"
FAIL_BODY = {
    "resourcePaths": ["cn/cn.gif", "in/in.gif", "us/us.gif", "mx/mx.gif", "zz/zz.gif"],
    "baseUrl": "https://www.fluentpython.com/data/flags",
    "lambdaConcur": 2,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGFLOW_")}
    env["IMGFLOW_LOCAL_FSYNC"] = "false"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgflow.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        **signalled(),
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "taking jobs at" in line, line
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert proc.returncode == 0


def wait_for(url: str, run_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = httpx.get(f"{url}/runs/{run_id}").json()
        if doc.get("state") in ("succeeded", "failed"):
            return dict(doc)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_the_original_fail_body_starts_a_local_run(server: str, flag_server: StaticServer) -> None:
    body = {**FAIL_BODY, "baseUrl": flag_server.base_url}
    original = json.loads((REFERENCE / "fail.json").read_text())
    assert original["resourcePaths"] == body["resourcePaths"]
    answer = httpx.post(f"{server}/jobs", content=json.dumps(body))
    assert answer.status_code == 202
    run_id = answer.json()["run"]
    doc = wait_for(server, run_id)
    assert doc["state"] == "failed"
    assert doc["summary"] == {"total": 5, "stored": 4, "skipped": 0, "failed": 1}
    results = doc["results"]
    assert isinstance(results, list)
    assert results[-1]["error"] == f"Could not find: {flag_server.base_url}/zz/zz.gif"
    listed = httpx.get(f"{server}/runs").json()["runs"]
    assert [r["run"] for r in listed] == [run_id]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "not valid JSON"),
        (b'{"baseUrl": "file:///etc", "resourcePaths": ["a"]}', "only http:// and https://"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["../../x"]}', "uses .. to leave"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": -1}', "at least 1"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_bodies_get_400_with_one_line(server: str, body: bytes, problem: str) -> None:
    answer = httpx.post(f"{server}/jobs", content=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert problem in error and "\n" not in error
    assert httpx.get(f"{server}/runs").json() == {"runs": []}
