"""`imgflow serve` as a real process: the original scripts' requests, the API, runs, the log.

Limits and refusals are in test_serve_limits.py, durability (SIGTERM, crashes, restarts)
in test_serve_durable.py, the OpenAPI fuzz in test_serve_fuzz.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.cli_run import run_cli
from support.faultserver import Delay, FaultServer, Ok, Stall
from support.processes import signalled
from support.serveproc import ServeProcess

from imgflow.demo.images import make_gif
from imgflow.demo.server import StaticServer

REFERENCE = Path(__file__).resolve().parent / "data" / "requests"
ORIGINAL_BASE = "https://www.fluentpython.com/data/flags"
GIF = make_gif("serve")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path) as process:
        yield process


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One service for the tests that store nothing."""
    with ServeProcess(tmp_path_factory.mktemp("shared")) as process:
        yield process


@pytest.fixture
def slow_server() -> Iterator[FaultServer]:
    """Every image after 0.3 s."""
    with FaultServer(fallback=Delay(0.3, Ok(GIF))) as server:
        yield server


@pytest.fixture
def stuck_server() -> Iterator[FaultServer]:
    """Never answers (within the test's fetch timeout): a job against it runs until stopped."""
    with FaultServer(fallback=Stall(after_headers=False, seconds=120)) as server:
        yield server


def curl_like_the_original(url: str, body: str, token: str | None) -> tuple[int, str, str]:
    """The original scripts' request: curl -i --globoff -X POST, their Content-Type, -d."""
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    done = subprocess.run(
        [
            "curl",
            "-i",
            "--silent",
            "--globoff",
            "-X",
            "POST",
            "-H",
            "Content-Type:application/json;chartset=UTF-8",
            *auth,
            "-d",
            body,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        **signalled(),
    )
    head, _, payload = done.stdout.partition("\n\n")  # text mode turned \r\n into \n
    status = int(head.split()[1])
    return status, head, payload


@pytest.mark.parametrize(
    ("name", "state", "summary"),
    [
        ("fail", "failed", {"total": 5, "stored": 4, "skipped": 0, "failed": 1}),
        ("success", "succeeded", {"total": 101, "stored": 101, "skipped": 0, "failed": 0}),
    ],
)
def test_the_original_scripts_requests_start_local_runs(
    serve: ServeProcess,
    flag_server: StaticServer,
    name: str,
    state: str,
    summary: dict[str, int],
) -> None:
    original = (REFERENCE / f"{name}.json").read_text()
    assert ORIGINAL_BASE in original
    body = original.replace(ORIGINAL_BASE, flag_server.base_url)
    status, head, payload = curl_like_the_original(f"{serve.url}/jobs", body, serve.token)
    assert status == 202, payload
    run_id = json.loads(payload)["run"]
    assert f"location: /runs/{run_id}" in head.lower()
    document = serve.wait_for(run_id)
    assert document["state"] == state
    assert document["summary"] == summary
    assert document["lambdaConcur"] == json.loads(original)["lambdaConcur"]
    with serve.client() as client:
        failures = client.get(f"/runs/{run_id}/failures").json()
        full = client.get(f"/runs/{run_id}").json()
    if name == "fail":
        assert failures == [f"Could not find: {flag_server.base_url}/zz/zz.gif"]
        assert full["results"][-1]["error"] == failures[0]
    else:
        assert failures == []
        assert document["duplicates"] == 1
    assert len(full["results"]) == summary["total"]


def test_lambda_concur_as_a_string_of_digits(
    serve: ServeProcess, flag_server: StaticServer
) -> None:
    run_id = serve.post_job(
        {"baseUrl": flag_server.base_url, "resourcePaths": ["ad/ad.gif"], "lambdaConcur": "3"}
    )
    document = serve.wait_for(run_id)
    assert (document["state"], document["lambdaConcur"]) == ("succeeded", 3)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"baseUrl": "file:///etc", "resourcePaths": ["a"]}', "only http:// and https://"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["../../x"]}', "uses .. to leave"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": -1}', "at least 1"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "x"}', "whole number"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": 99999}', "at most"),
        (b'{"baseUrl": "http://h", "resourcePaths": []}', "is empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["\\ud800.png"]}', "lone surrogate"),
        (
            b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": '
            + b"9" * 5000
            + b"}",
            "more than 4300 digits",
        ),
        (
            b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "'
            + b"9" * 5000
            + b'"}',
            "whole number",
        ),
        (b"{}", "expected baseUrl with resourcePaths, or urls"),
        (b'{"lambdaConcur": 2}', "expected baseUrl with resourcePaths, or urls"),
        (b'{"baseUrl": "http://h", "resourcePaths": ["a"], "urls": ["http://h/a"]}', "not both"),
        (b'{"urls": ["http://h/a"], "resourcePaths": ["a"]}', "not both"),
        (b'{"urls": []}', "urls is empty"),
        (b'{"urls": "http://h/a"}', "urls must be a list"),
        (b'{"urls": ["http://h/a"], "lambdaConcur": 0}', "at least 1"),
        (b'{"urls": ["http://h/a"], "extra": 1}', "unknown field 'extra'"),
    ],
)
def test_bad_bodies_get_400_with_one_line_and_store_nothing(
    shared: ServeProcess, body: bytes, problem: str
) -> None:
    with shared.client() as client:
        answer = client.post("/jobs", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert problem in error and "\n" not in error
        assert client.get("/runs").json() == {"runs": []}


def test_a_job_of_urls_from_several_hosts_runs_beside_the_original_body(
    serve: ServeProcess, flag_server: StaticServer, slow_server: FaultServer
) -> None:
    urls = [
        flag_server.url("ad/ad.gif"),
        {"url": slow_server.url("/a/b.gif"), "caption": "slow", "n": 2},
        flag_server.url("zz/zz.gif"),
        flag_server.url("ad/ad.gif"),  # a duplicate
        "ftp://h/b.gif",  # bad entries fail alone, as on aws; the others run
        {"caption": "x"},
        3,
    ]
    run_id = serve.post_job({"urls": urls, "lambdaConcur": 1})
    document = serve.wait_for(run_id)
    assert document["state"] == "failed"
    assert document["summary"] == {"total": 6, "stored": 2, "skipped": 0, "failed": 4}
    assert (document["baseUrl"], document["lambdaConcur"], document["duplicates"]) == (None, 1, 1)
    with serve.client() as client:
        failures = client.get(f"/runs/{run_id}/failures").json()
        full = client.get(f"/runs/{run_id}").json()
    bad = {
        "urls[4]": "job urls[4]: only http:// and https:// URLs are supported, got 'ftp://h/b.gif'",
        "urls[5]": "job urls[5]: an object without a url field",
        "urls[6]": "job urls[6]: expected a URL string, got 3",
    }
    assert failures == [f"Could not find: {flag_server.url('zz/zz.gif')}", *bad.values()]
    rejected = [r for r in full["results"] if r["failureKind"] == "invalid-url"]
    assert {r["path"]: r["error"] for r in rejected} == bad
    assert all(r["outcome"] == "failed" and r["attempts"] == 0 for r in rejected)
    stored = {r["url"]: r["key"] for r in full["results"] if r["outcome"] == "stored"}
    slow_host = slow_server.base_url.split("://")[1]
    assert stored == {
        flag_server.url("ad/ad.gif"): f"{flag_server.base_url.split('://')[1]}/ad/ad.gif",
        slow_server.url("/a/b.gif"): f"{slow_host}/a/b.gif",
    }
    [db_path] = serve.folder.rglob("imgflow.db")
    with sqlite3.connect(db_path) as conn:
        metas = dict(
            conn.execute("SELECT url, meta FROM results WHERE run_id = ?", (document["localRun"],))
        )
    assert {url: json.loads(meta) for url, meta in metas.items() if meta} == {
        slow_server.url("/a/b.gif"): {"caption": "slow", "n": 2}
    }
    # the original body still runs as before, in the same service
    again = serve.post_job({"baseUrl": flag_server.base_url, "resourcePaths": ["ad/ad.gif"]})
    assert serve.wait_for(again)["summary"]["skipped"] == 1  # the same key as from its URL


def test_wrong_methods_and_paths_get_json_errors(shared: ServeProcess) -> None:
    with shared.client() as client:
        answer = client.get("/jobs")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        assert "GET /jobs is not allowed" in answer.json()["error"]
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and "no such endpoint" in missing.json()["error"]
        unknown = client.get("/runs/20990101-000000-abcdef")
        assert unknown.status_code == 404 and "no run" in unknown.json()["error"]
        assert client.delete("/runs/nope").status_code == 404
        assert client.get("/runs", params={"state": "sleeping"}).status_code == 400
        assert client.get("/runs", params={"limit": "0"}).status_code == 400
        spec = client.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.") and "/jobs" in spec["paths"]


def test_queued_runs_are_listed_and_cancelled(
    serve: ServeProcess, stuck_server: FaultServer
) -> None:
    job = {"baseUrl": stuck_server.base_url, "resourcePaths": ["a.gif"], "lambdaConcur": 1}
    first, second, third = (serve.post_job(job) for _ in range(3))
    serve.wait_for(first, ("running",))
    with serve.client() as client:
        queued = client.get("/runs", params={"state": "queued"}).json()["runs"]
        assert [r["run"] for r in queued] == [second, third]
        assert all(r["summary"]["total"] == 1 for r in queued)
        everything = client.get("/runs").json()["runs"]
        assert [r["run"] for r in everything] == [third, second, first]

        cancelled = client.delete(f"/runs/{second}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "interrupted"
        stopped = client.delete(f"/runs/{first}")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["state"] == "interrupted"  # the word `imgflow status` says
        shown = run_cli("status", first, "-o", "json", cwd=serve.folder, timeout=60)
        assert json.loads(shown.stdout)["state"] == "interrupted", shown.stderr
        again = client.delete(f"/runs/{first}")
        assert again.status_code == 200  # cancelling twice is harmless
    serve.wait_for(third, ("running",))
    with serve.client() as client:
        assert client.delete(f"/runs/{third}").json()["state"] == "interrupted"
        assert client.get("/runs", params={"state": "queued"}).json() == {"runs": []}
    assert f"run {first} interrupted" in serve.log


def test_counts_are_live_while_a_run_runs(serve: ServeProcess, slow_server: FaultServer) -> None:
    paths = [f"img/{i}.gif" for i in range(20)]
    run_id = serve.post_job(
        {"baseUrl": slow_server.base_url, "resourcePaths": paths, "lambdaConcur": 1}
    )
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        document = serve.run(run_id)
        if document["state"] == "running":
            seen.append(document["summary"]["stored"])
            if document["summary"]["stored"] >= 3:
                break
        elif document["state"] != "queued":
            break
        time.sleep(0.05)
    # One batch of 250 holds all 20 paths: only live counts move before it ends.
    assert seen and max(seen) >= 3, seen
    assert serve.run(run_id)["summary"]["total"] == 20
    with serve.client() as client:
        partial = client.get(f"/runs/{run_id}").json()
        assert partial["state"] == "running" and isinstance(partial["results"], list)
        client.delete(f"/runs/{run_id}")


def test_one_log_line_per_request_and_per_run(tmp_path: Path, flag_server: StaticServer) -> None:
    log_file = tmp_path / "serve.log"
    with ServeProcess(tmp_path, config={"serve": {"log_file": str(log_file)}}) as serve:
        run_id = serve.post_job({"baseUrl": flag_server.base_url, "resourcePaths": ["ad/ad.gif"]})
        serve.wait_for(run_id)
        httpx.get(f"{serve.url}/runs")  # no token: 401
    lines = log_file.read_text().splitlines()
    assert any(f"run {run_id} queued: 1 paths" in line for line in lines)
    assert sum(f"run {run_id} started" in line for line in lines) == 1
    assert sum(f"run {run_id} finished: succeeded" in line for line in lines) == 1
    assert any('"POST /jobs" 202' in line for line in lines)
    assert any('"GET /runs" 401' in line for line in lines)
    assert all(line[:4].isdigit() for line in lines)  # each a timestamped line
    assert "taking jobs at" in serve.log and "queued" not in serve.log


def test_a_second_service_on_the_same_data_folder_is_refused(
    serve: ServeProcess, tmp_path: Path
) -> None:
    second = ServeProcess(tmp_path, start=False)
    done = run_cli(
        "serve", "--port", str(second.port), cwd=tmp_path, env=second.env, timeout=60,
        **signalled(),
    )  # fmt: skip
    assert done.returncode == 2
    assert f"(pid {serve.pid}) already uses the data folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_has_an_html_report(serve: ServeProcess, flag_server: StaticServer) -> None:
    run_id = serve.post_job(
        {"baseUrl": flag_server.base_url, "resourcePaths": ["ad/ad.gif", "zz/zz.gif"]}
    )
    serve.wait_for(run_id)
    with serve.client() as client:
        page = client.get(f"/runs/{run_id}/report")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert run_id in page.text
        assert client.get("/runs/nope/report").status_code == 404
