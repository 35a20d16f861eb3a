"""The CLI as a real process: run, status, demo, exit codes, bad input, interrupts."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from support.cli_run import run_cli, start_cli
from support.faultserver import Delay, FaultServer, Ok
from support.processes import signalled

from imgflow.demo.images import make_gif
from imgflow.demo.server import StaticServer

FLAGS = ["ad/ad.gif", "ae/ae.gif", "af/af.gif", "ag/ag.gif"]
QUICK_ENV = {
    "IMGFLOW_FETCH_RETRIES": "0",
    "IMGFLOW_FETCH_TIMEOUT": "2",
    "IMGFLOW_LOCAL_FSYNC": "false",
}


def imgflow(
    *args: str, cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        *args,
        cwd=cwd,
        input=stdin.decode() if stdin is not None else None,
        env=QUICK_ENV | (env or {}),
    )


def write_paths(folder: Path, paths: list[str]) -> Path:
    file = folder / "paths.txt"
    file.write_text("# flags\n\n" + "\n".join(paths) + "\n")
    return file


def test_run_json_and_exit_codes(flag_server: StaticServer, tmp_path: Path) -> None:
    paths = write_paths(tmp_path, [*FLAGS, "zz/zz.gif"])
    done = imgflow(
        "run",
        "--base-url",
        flag_server.base_url,
        "--paths-file",
        str(paths),
        "--concurrency",
        "2",
        "--output",
        "json",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["backend"] == "local" and doc["run"]
    assert {k: doc["summary"][k] for k in ("total", "stored", "skipped", "failed")} == {
        "total": 5,
        "stored": 4,
        "skipped": 0,
        "failed": 1,
    }
    record = doc["results"][0]
    assert set(record) == {
        "url",
        "path",
        "outcome",
        "statusCode",
        "key",
        "bytes",
        "sha256",
        "contentType",
        "error",
        "attempts",
        "etag",
        "lastModified",
        "failureKind",
        "width",  # read from the stored image's header
        "height",
    }
    assert (record["width"], record["height"]) == (16, 16)
    assert record["outcome"] == "stored" and record["path"] == "ad/ad.gif"
    failed = doc["results"][-1]
    assert failed["error"] == f"Could not find: {flag_server.url('zz/zz.gif')}"
    assert (tmp_path / "imgflow-data" / "runs" / doc["run"] / "failures.json").is_file()

    status = imgflow("status", doc["run"], "--output", "json", cwd=tmp_path)
    assert status.returncode == 1
    again = json.loads(status.stdout)
    assert again["results"] == doc["results"] and again["summary"] == doc["summary"]

    tolerated = imgflow(
        "run",
        "--base-url",
        flag_server.base_url,
        "--paths-file",
        str(paths),
        "--tolerate-failures",
        "25",
        cwd=tmp_path,
    )
    assert tolerated.returncode == 0, tolerated.stderr
    assert "5 images: 0 stored, 4 skipped, 1 failed" in tolerated.stdout


def test_table_output_and_status_list(flag_server: StaticServer, tmp_path: Path) -> None:
    paths = write_paths(tmp_path, FLAGS)
    done = imgflow(
        "run", "--base-url", flag_server.base_url, "--paths-file", str(paths), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "ad/ad.gif" not in done.stdout  # stored images are a count, not rows
    assert "4 images: 4 stored, 0 skipped, 0 failed" in done.stdout
    listed = imgflow("status", "--output", "json", cwd=tmp_path)
    assert listed.returncode == 0
    runs = json.loads(listed.stdout)["runs"]
    assert len(runs) == 1 and runs[0]["state"] == "succeeded"
    every = imgflow("status", runs[0]["run"], "--all", cwd=tmp_path)
    assert "ad/ad.gif" in every.stdout and "ag/ag.gif" in every.stdout


def test_paths_from_stdin_and_job_json(flag_server: StaticServer, tmp_path: Path) -> None:
    done = imgflow(
        "run",
        "--base-url",
        flag_server.base_url,
        "--paths-file",
        "-",
        "-o",
        "json",
        cwd=tmp_path,
        stdin="\n".join(FLAGS).encode(),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["stored"] == 4
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps({"baseUrl": flag_server.base_url, "resourcePaths": FLAGS, "lambdaConcur": 2})
    )
    done = imgflow("run", "--job", str(job), "-o", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["skipped"] == 4


def test_demo_command(tmp_path: Path) -> None:
    done = imgflow("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "102 images: 101 stored, 0 skipped, 1 failed" in done.stdout
    assert "zz/zz.gif is missing on purpose" in " ".join(done.stderr.split())


def test_help_lists_every_command_and_the_exit_codes(tmp_path: Path) -> None:
    done = imgflow("--help", cwd=tmp_path)
    assert done.returncode == 0
    for command in ("run", "status", "demo"):
        assert command in done.stdout
        sub = imgflow(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "Usage" in sub.stdout
    assert "Exit codes" in done.stdout


BAD_INPUTS: list[tuple[str, list[str], str | None, dict[str, str], str]] = [
    # (id, args after "run", paths file text, extra env, expected words in the one error line)
    ("file-url", ["--base-url", "file:///etc"], "a.gif", {}, "only http:// and https://"),
    ("js-url", ["--base-url", "javascript:alert(1)"], "a.gif", {}, "only http:// and https://"),
    ("no-base", [], "a.gif", {}, "--base-url is required"),
    (
        "dotdot",
        ["--base-url", "{base}"],
        "../../etc/passwd",
        {},
        "line 1: '../../etc/passwd' uses ..",
    ),
    ("other-host", ["--base-url", "{base}"], "a.gif\n//evil.example/x", {}, "line 2:"),
    ("full-url", ["--base-url", "{base}"], "http://evil.example/x.gif", {}, "is a full URL"),
    ("nul", ["--base-url", "{base}"], "a\x00b.gif", {}, "NUL or control"),
    ("long", ["--base-url", "{base}"], "x" * 10_000, {}, "characters long"),
    ("empty", ["--base-url", "{base}"], "", {}, "no paths"),
    ("comments-only", ["--base-url", "{base}"], "# nothing\n\n", {}, "no paths"),
    ("zero-concurrency", ["--base-url", "{base}", "-c", "0"], "a.gif", {}, "'--concurrency'"),
    ("negative-concurrency", ["--base-url", "{base}", "-c", "-3"], "a.gif", {}, "'--concurrency'"),
    (
        "zero-batch-size",
        ["--base-url", "{base}", "--batch-size", "0"],
        "a.gif",
        {},
        "'--batch-size'",
    ),
    (
        "tolerate-over-100",
        ["--base-url", "{base}", "--tolerate-failures", "150"],
        "a.gif",
        {},
        "'--tolerate-failures'",
    ),
    (
        "env-type",
        ["--base-url", "{base}"],
        "a.gif",
        {"IMGFLOW_JOB_BATCH_SIZE": "x"},
        "IMGFLOW_JOB_BATCH_SIZE",
    ),
    (
        "missing-file",
        ["--base-url", "{base}", "--paths-file", "nope.txt"],
        None,
        {},
        "paths file not found",
    ),
    (
        "not-an-integer",
        ["--base-url", "{base}", "-c", "abc"],
        "a.gif",
        {},
        "Invalid value for '--concurrency'",
    ),
    (
        "unknown-option",
        ["--base-url", "{base}", "--concurency", "3"],
        "a.gif",
        {},
        "No such option: --concurency",
    ),
    ("bad-output", ["--base-url", "{base}", "-o", "xml"], "a.gif", {}, "'xml' is not one of"),
    (
        "force-on-aws",
        ["--base-url", "{base}", "--backend", "aws", "--force"],
        "a.gif",
        {},
        "go with the local backend",
    ),
    (
        "local-only-flag",
        ["--base-url", "{base}", "--no-wait"],
        "a.gif",
        {},
        "go with --backend aws",
    ),
    ("both-inputs", ["--base-url", "{base}", "--job", "job.json"], "a.gif", {}, "exactly one of"),
]


@pytest.mark.parametrize(
    ("args", "text", "env", "expected"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], text: str | None, env: dict[str, str], expected: str
) -> None:
    argv = ["run", *[a.replace("{base}", "http://127.0.0.1:9") for a in args]]
    if text is not None:
        (tmp_path / "paths.txt").write_text(text)
        if "--paths-file" not in argv:
            argv += ["--paths-file", "paths.txt"]
    done = imgflow(*argv, cwd=tmp_path, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "imgflow-data").exists()


def test_non_utf8_paths_file(tmp_path: Path) -> None:
    (tmp_path / "paths.txt").write_bytes(b"a.gif\n\xff\xfe.gif\n")
    done = imgflow(
        "run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths.txt", cwd=tmp_path
    )
    assert done.returncode == 2 and "line 2: not UTF-8 text" in done.stderr
    assert not (tmp_path / "imgflow-data").exists()


def test_bad_config_file(tmp_path: Path) -> None:
    (tmp_path / "imgflow.yaml").write_text("job:\n  concurency: 3\n")
    (tmp_path / "paths.txt").write_text("a.gif\n")
    done = imgflow(
        "run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths.txt", cwd=tmp_path
    )
    assert done.returncode == 2 and "job.concurency: unknown key" in done.stderr
    assert not (tmp_path / "imgflow-data").exists()


def test_unknown_run_id(tmp_path: Path, flag_server: StaticServer) -> None:
    paths = write_paths(tmp_path, FLAGS[:1])
    imgflow("run", "--base-url", flag_server.base_url, "--paths-file", str(paths), cwd=tmp_path)
    done = imgflow("status", "no-such-run", cwd=tmp_path)
    assert done.returncode == 2 and "not found" in done.stderr


def _count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.gif") if p.is_file()) if folder.exists() else 0


@pytest.mark.parametrize("fsync", ["false", "true"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_is_consistent_and_a_rerun_completes(
    fault_server: FaultServer, tmp_path: Path, sig: signal.Signals, fsync: str
) -> None:
    """Killed or interrupted while images are being stored (with fsync on, while files
    wait for their group's sync): every index row has its whole file, and a rerun
    fetches exactly the rest."""
    gif = make_gif("k")
    paths = [f"k/{i}.gif" for i in range(120)]
    for path in paths:
        fault_server.set("/" + path, Delay(0.02, Ok(gif)))
    write_paths(tmp_path, paths)
    proc = start_cli(
        "run", "--base-url", fault_server.base_url, "--paths-file", "paths.txt",
        "-c", "2", "--batch-size", "10", "--max-batches", "2",
        cwd=tmp_path, env={**QUICK_ENV, "IMGFLOW_LOCAL_FSYNC": fsync},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **signalled(),
    )  # fmt: skip
    images = tmp_path / "imgflow-data" / "images"
    deadline = time.monotonic() + 30
    while _count_files(images) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (-signal.SIGKILL, 130), stderr
    if sig == signal.SIGINT:
        assert b"interrupted" in stderr
    db = tmp_path / "imgflow-data" / "imgflow.db"
    with sqlite3.connect(db) as conn:
        indexed = {k for (k,) in conn.execute("SELECT key FROM images")}
    on_disk = {p.relative_to(images).as_posix() for p in images.rglob("*.gif")}
    assert indexed <= on_disk  # every index row has its whole file
    assert len(on_disk) < len(paths)

    rerun = imgflow(
        "run",
        "--base-url",
        fault_server.base_url,
        "--paths-file",
        "paths.txt",
        "-o",
        "json",
        cwd=tmp_path,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)["summary"]
    assert summary["total"] == 120 and summary["failed"] == 0
    assert summary["skipped"] == len(indexed)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT url) FROM images").fetchone() == (
            120,
            120,
        )
    assert _count_files(images) == 120
    assert not any((tmp_path / "imgflow-data" / "tmp").glob("*/*.part"))


def test_a_large_run_lists_only_its_failures_in_the_table(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    gif = make_gif("t")
    paths = [f"t/{i}.gif" for i in range(600)]
    for path in paths[:-2]:
        fault_server.set("/" + path, Ok(gif))
    write_paths(tmp_path, paths)
    done = imgflow(
        "run", "--base-url", fault_server.base_url, "--paths-file", "paths.txt", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert "t/599.gif" in done.stdout and "t/598.gif" in done.stdout
    assert "t/0.gif" not in done.stdout
    assert "598 stored or skipped images not listed (--all lists them)" in done.stdout
    assert "600 images: 598 stored, 0 skipped, 2 failed" in done.stdout
