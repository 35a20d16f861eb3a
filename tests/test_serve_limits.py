"""`imgflow serve` limits and refusals, each hit against the real process.

Every refusal is a status with a one-line JSON error; the connection is closed where the
request's body may still be on it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.cli_run import run_cli
from support.faultserver import FaultServer, Stall
from support.processes import signalled
from support.serveproc import ServeProcess

LIMITS = {
    "max_body_bytes": 4096,
    "read_timeout": 3,
    "max_connections": 4,
    "max_queued": 2,
    "max_json_depth": 5,
    "allowed_origins": ["http://allowed.example"],
}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def stuck() -> Iterator[FaultServer]:
    """Never answers: a job against it runs until it is cancelled."""
    with FaultServer(fallback=Stall(after_headers=False, seconds=120)) as server:
        yield server


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("limits")
    config = {"serve": LIMITS, "fetch": {"timeout": 120, "retries": 0}}
    with ServeProcess(folder, config=config) as process:
        yield process


def raw(serve: ServeProcess, data: bytes, then: bytes = b"", timeout: float = 20) -> bytes:
    """Send `data` (then `then`, ignoring a closed connection); all bytes until EOF."""
    try:
        sock = socket.create_connection(("127.0.0.1", serve.port), timeout=timeout)
    except ConnectionRefusedError:
        assert serve.proc is not None
        raise AssertionError(
            f"serve not listening (exit {serve.proc.poll()}):\n{serve.log}"
        ) from None
    with sock:
        sock.sendall(data)
        if then:
            time.sleep(0.2)
            with contextlib.suppress(OSError):
                sock.sendall(then)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def head(serve: ServeProcess, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{serve.port}"]
    lines += [f"Authorization: Bearer {serve.token}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def responses(data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Each (status, JSON body) in a byte stream of HTTP/1.1 responses."""
    found = []
    while data:
        top, _, rest = data.partition(b"\r\n\r\n")
        status = int(top.split()[1])
        length = next(
            int(line.split(b":")[1])
            for line in top.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        found.append((status, json.loads(rest[:length])))
        data = rest[length:]
    return found


def error_of(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    return str(body["error"])


def test_a_body_over_the_limit_is_413_and_the_connection_closes(serve: ServeProcess) -> None:
    smuggled = head(serve, "GET", "/runs", {})
    body = smuggled + b" " * (5000 - len(smuggled))
    data = head(serve, "POST", "/jobs", {**JSON, "Content-Length": "5000"})
    got = responses(raw(serve, data + body[:100], then=body[100:]))
    # One answer: the unread body is never taken for a new request.
    assert [status for status, _ in got] == [413]
    assert "serve.max_body_bytes" in got[0][1]["error"]


@pytest.mark.parametrize("size", [64 * 1024, 8 * 1024 * 1024])
def test_a_client_still_sending_its_body_reads_the_413(serve: ServeProcess, size: int) -> None:
    # The service half-closes and lingers instead of resetting the connection under a
    # client that sends its whole body before reading (httpx here, curl, requests).
    with serve.client() as client:
        answer = client.post("/jobs", content=b"x" * size, headers=JSON)
        assert "serve.max_body_bytes" in error_of(answer, 413)
        assert answer.headers["connection"] == "close"


def test_a_chunked_body_over_the_limit_is_413(serve: ServeProcess) -> None:
    data = head(serve, "POST", "/jobs", {**JSON, "Transfer-Encoding": "chunked"})
    chunk = b"x" * 3000
    chunks = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    got = responses(raw(serve, data + chunks, then=chunks * 2 + b"0\r\n\r\n"))
    assert [status for status, _ in got] == [413]


def test_a_request_that_does_not_arrive_in_time_is_408(serve: ServeProcess) -> None:
    partial = f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:{serve.port}\r\n".encode()
    started = time.monotonic()
    assert [s for s, _ in responses(raw(serve, partial))] == [408]
    assert time.monotonic() - started >= 2.5  # not before serve.read_timeout
    slow_body = head(serve, "POST", "/jobs", {**JSON, "Content-Length": "100"}) + b'{"base'
    got = responses(raw(serve, slow_body))
    assert got[0][0] == 408 and "serve.read_timeout" in got[0][1]["error"]
    assert [s for s, _ in responses(raw(serve, b""))] == [408]  # connected, silent


def test_connections_over_the_cap_get_503(serve: ServeProcess) -> None:
    idle = [socket.create_connection(("127.0.0.1", serve.port)) for _ in range(4)]
    try:
        time.sleep(0.3)
        with serve.client() as client:
            answer = client.get("/runs")
        assert "serve.max_connections" in error_of(answer, 503)
        assert answer.headers["retry-after"].isdigit()
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    with serve.client() as client:
        assert client.get("/runs").status_code == 200


def test_a_full_queue_is_503_with_retry_after(serve: ServeProcess, stuck: FaultServer) -> None:
    job = {"baseUrl": stuck.base_url, "resourcePaths": ["a.gif"]}
    running = serve.post_job(job)
    serve.wait_for(running, ("running",))
    queued = [serve.post_job(job), serve.post_job(job)]
    with serve.client() as client:
        answer = client.post("/jobs", json=job)
        assert "serve.max_queued" in error_of(answer, 503)
        assert int(answer.headers["retry-after"]) > 0
        assert len(client.get("/runs", params={"state": "queued"}).json()["runs"]) == 2
        for run_id in (*queued, running):
            assert client.delete(f"/runs/{run_id}").json()["state"] == "interrupted"


def test_json_nested_too_deep_is_400(serve: ServeProcess) -> None:
    with serve.client() as client:
        deep = {"baseUrl": "http://h", "resourcePaths": [[[[["a"]]]]]}
        answer = client.post("/jobs", json=deep)
        assert "nested deeper than 5 levels (serve.max_json_depth)" in error_of(answer, 400)
        bomb = b"[" * 4000
        assert "JSON" in error_of(client.post("/jobs", content=bomb, headers=JSON), 400)
        assert client.get("/runs").status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "problem"),
    [
        ({"Origin": "http://evil.example"}, 403, "origin 'http://evil.example'"),
        ({"Origin": "null"}, 403, "origin 'null'"),
        ({"Host": "evil.example"}, 403, "Host 'evil.example'"),
        ({"Host": "127.0.0.1:1"}, 403, "Host '127.0.0.1:1'"),
        ({"Content-Type": "text/plain"}, 415, "application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "application/json"),
        ({"Content-Type": "application/json; charset=latin-1"}, 415, "UTF-8"),
        ({"Authorization": "Bearer wrong-token-wrong-token"}, 401, "wrong bearer token"),
        ({"Authorization": ""}, 401, "no bearer token"),
    ],
)
def test_cross_site_rebinding_and_unauthenticated_requests_are_refused(
    serve: ServeProcess, headers: dict[str, str], status: int, problem: str
) -> None:
    body = json.dumps({"baseUrl": "http://h", "resourcePaths": ["a"]})
    with serve.client() as client:
        answer = client.post("/jobs", content=body, headers={**JSON, **headers})
        assert problem in error_of(answer, status)
        if status == 401:
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/runs", params={"state": "queued"}).json() == {"runs": []}


def test_allowed_origins_and_loopback_names_pass(serve: ServeProcess, stuck: FaultServer) -> None:
    job = json.dumps({"baseUrl": stuck.base_url, "resourcePaths": ["a.gif"]})
    for headers in (
        {"Origin": "http://allowed.example"},
        {"Host": f"localhost:{serve.port}"},
        {"Authorization": f"bearer {serve.token}"},
    ):
        with serve.client() as client:
            answer = client.post("/jobs", content=job, headers={**JSON, **headers})
            assert answer.status_code == 202, answer.text
            client.delete(f"/runs/{answer.json()['run']}")
    with httpx.Client() as anonymous:
        assert anonymous.get(f"{serve.url}/openapi.json").status_code == 200
        assert anonymous.get(f"{serve.url}/runs").status_code == 401


def test_malformed_http_gets_a_json_400(serve: ServeProcess) -> None:
    got = responses(raw(serve, b"HELLO THERE\r\n\r\n"))
    assert got[0][0] == 400 and "malformed HTTP request" in got[0][1]["error"]


def _serve_once(folder: Path, *args: str, config: str = "") -> subprocess.CompletedProcess[str]:
    (folder / "imgflow.yaml").write_text(config)
    return run_cli("serve", *args, cwd=folder, timeout=60, **signalled())


@pytest.mark.parametrize(
    ("args", "config", "problem"),
    [
        (("--host", "0.0.0.0", "--no-auth"), "", "refusing to listen on 0.0.0.0 without a token"),
        ((), "serve:\n  max_queued: 0\n", "serve.max_queued: must be at least 1"),
        ((), "serve:\n  token: short\n", "serve.token: use at least 16 characters"),
        ((), "serve:\n  read_timeout: -1\n", "serve.read_timeout: must be greater than 0"),
        (("--port", "70000"), "", "--port"),
    ],
)
def test_unsafe_or_bad_settings_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], config: str, problem: str
) -> None:
    done = _serve_once(tmp_path, *args, config=config)
    assert done.returncode == 2
    assert problem in done.stderr and "Traceback" not in done.stderr


def test_a_configured_token_and_no_auth(tmp_path: Path) -> None:
    token = "team-token-0123456789"
    with ServeProcess(tmp_path, config={"serve": {"token": token}}) as serve:
        assert serve.token is None and "token for this start" not in serve.log
        assert httpx.get(f"{serve.url}/runs").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{serve.url}/runs", headers=auth).status_code == 200
    with ServeProcess(tmp_path, args=("--no-auth",)) as open_serve:
        assert "no token required" in open_serve.log
        assert httpx.get(f"{open_serve.url}/runs").status_code == 200
