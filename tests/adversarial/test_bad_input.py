"""Bad input, table-driven: one line naming the problem, exit 2, nothing written.

Cases come from the config file, flags and IMGFLOW_* variables, the paths file, the job
JSON (``--job``) and the HTTP API body (the plan Lambda validates the execution input the
API passes on: `imgflow.aws.runtime.plan.plan_job`). tests/test_cli.py covers other cases
through a real process; these run the same CLI in process, except the 1,000,000-line file,
which runs as a process so its peak memory can be measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support.cli_run import cli_argv, cli_env
from typer.testing import CliRunner

from imgflow.aws.runtime.plan import plan_job
from imgflow.cli.app import app
from imgflow.errors import JobError

BASE = "http://127.0.0.1:9"

# (id, imgflow.yaml text or None, extra args, paths file bytes or None, env, expected words)
CLI_CASES: list[tuple[str, str | None, list[str], bytes | None, dict[str, str], str]] = [
    # the config file
    ("yaml-syntax", "job: [1, 2\n", [], b"a.gif", {}, "YAML syntax error"),
    ("yaml-unknown-top-key", "colour: red\n", [], b"a.gif", {}, "colour: unknown key"),
    ("yaml-wrong-type", "job:\n  concurrency: five\n", [], b"a.gif", {}, "job.concurrency"),
    ("yaml-zero-timeout", "fetch:\n  timeout: 0\n", [], b"a.gif", {}, "fetch.timeout"),
    ("yaml-list-top", "- a\n- b\n", [], b"a.gif", {}, "top level must be a mapping"),
    ("yaml-section-scalar", "job: 5\n", [], b"a.gif", {}, "job: expected a mapping"),
    ("yaml-bad-backend", "backend: gcp\n", [], b"a.gif", {}, "backend: expected"),
    ("yaml-bad-deployment", "deployment: Bad_Name\n", [], b"a.gif", {}, "deployment:"),
    ("yaml-bool-as-int", "job:\n  max_batches: true\n", [], b"a.gif", {}, "job.max_batches"),
    ("yaml-neg-retries", "fetch:\n  retries: -1\n", [], b"a.gif", {}, "fetch.retries"),
    ("config-missing", None, ["--config", "nope.yaml"], b"a.gif", {}, "config file not found"),
    # flags and environment
    ("env-zero-concurrency", None, [], b"a.gif", {"IMGFLOW_JOB_CONCURRENCY": "0"}, "concurrency"),
    ("base-query", None, ["--base-url", BASE + "/?x=1"], b"a.gif", {}, "query or fragment"),
    ("base-no-host", None, ["--base-url", "http://"], b"a.gif", {}, "no host"),
    ("base-bad-port", None, ["--base-url", "http://h:99999"], b"a.gif", {}, "invalid port"),
    ("base-ftp", None, ["--base-url", "ftp://h/x"], b"a.gif", {}, "only http:// and https://"),
    ("base-space", None, ["--base-url", "http://h/a b"], b"a.gif", {}, "spaces or control"),
    ("neither-input", None, ["--no-paths"], None, {}, "exactly one of"),
    # the paths file
    ("bare-percent", None, [], b"100%.gif", {}, "% that starts no %XX escape"),
    ("backslash", None, [], b"a\\b.gif", {}, "backslash"),
    ("fragment", None, [], b"a.gif#top", {}, "fragment"),
    ("dot-only", None, [], b".", {}, "names no resource"),
    ("dotdot-inside", None, [], b"a/../../b.gif", {}, "uses .."),
    ("long-path", None, [], b"x" * 1100 + b".gif", {}, "characters long"),
    ("tab", None, [], b"a\tb.gif", {}, "a tab: one path per line"),
    ("mailto", None, [], b"mailto:a@b.example", {}, "is a full URL"),
    ("line-number-counts-blanks", None, [], b"a.gif\n\n# c\n//x/y", {}, "line 4:"),
    ("latin-1", None, [], b"ok.gif\nx.gif\ncaf\xe9.gif", {}, "line 3: not UTF-8"),
    ("utf-16", None, [], "a.gif\n".encode("utf-16"), {}, "line 1: not UTF-8"),
    ("paths-dir", None, ["--paths-file", "."], None, {}, "is a folder, not a paths file"),
    ("whitespace-only", None, [], b"   \n\t\n", {}, "no paths"),
]

# (id, job file bytes, expected words)
JOB_CASES: list[tuple[str, bytes, str]] = [
    ("not-json", b"{baseUrl: 1}", "not valid JSON"),
    ("array", b"[]", "expected a JSON object"),
    ("unknown-field", b'{"baseUrl": "http://h", "resourcePaths": ["a"], "x": 1}', "unknown field"),
    ("missing-paths", b'{"baseUrl": "http://h"}', "missing field 'resourcePaths'"),
    ("paths-string", b'{"baseUrl": "http://h", "resourcePaths": "a.gif"}', "must be a list"),
    ("path-number", b'{"baseUrl": "http://h", "resourcePaths": [1]}', "must be a string"),
    (
        "concur-zero",
        b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": 0}',
        "at least 1",
    ),
    (
        "concur-str",  # a string of digits is accepted, as the original's int() took it
        b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "5x"}',
        "whole number",
    ),
    (
        "concur-bool",
        b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": true}',
        "whole number",
    ),
    ("js-base", b'{"baseUrl": "javascript:alert(1)", "resourcePaths": ["a"]}', "only http://"),
    ("empty-paths", b'{"baseUrl": "http://h", "resourcePaths": []}', "resourcePaths is empty"),
    ("other-host", b'{"baseUrl": "http://h", "resourcePaths": ["//evil/x"]}', "names another host"),
    ("base-number", b'{"baseUrl": 5, "resourcePaths": ["a"]}', "baseUrl must be a string"),
    ("not-utf8", b'{"baseUrl": "http://h", "resourcePaths": ["\xff"]}', "not UTF-8"),
    ("nul-escape", b'{"baseUrl": "http://h", "resourcePaths": ["a\\u0000b"]}', "NUL or control"),
    # JSON that parses but is not a job: a lone surrogate escape, a 5,000-digit number
    (
        "lone-surrogate",
        b'{"baseUrl": "http://h", "resourcePaths": ["\\ud800.png"]}',
        "resourcePaths[0]: not valid Unicode (a lone surrogate)",
    ),
    (
        "base-lone-surrogate",
        b'{"baseUrl": "http://h/\\udc00", "resourcePaths": ["a"]}',
        "base URL: not valid Unicode (a lone surrogate)",
    ),
    (
        "concur-5000-digits",
        b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": ' + b"9" * 5000 + b"}",
        "a number of more than 4300 digits",
    ),
    (
        "concur-str-5000-digits",
        b'{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "' + b"9" * 5000 + b'"}',
        "lambdaConcur: expected a whole number",
    ),
]

# (id, API body, expected words)
API_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("batch-zero", {"baseUrl": "http://h", "resourcePaths": ["a"], "batchSize": 0}, "batchSize"),
    ("batch-huge", {"baseUrl": "http://h", "resourcePaths": ["a"], "batchSize": 10**6}, "at most"),
    ("manifest-no-key", {"manifest": {"bucket": "b"}}, "manifest must name a bucket and a key"),
    ("extra-field", {"baseUrl": "http://h", "resourcePaths": ["a"], "callback": "x"}, "unknown"),
    ("file-base", {"baseUrl": "file:///etc/passwd", "resourcePaths": ["a"]}, "only http://"),
    ("dotdot", {"baseUrl": "http://h", "resourcePaths": ["ok", "../x"]}, "resourcePaths[1]"),
    ("nul", {"baseUrl": "http://h", "resourcePaths": ["a\x00b"]}, "NUL"),
    ("full-url", {"baseUrl": "http://h", "resourcePaths": ["https://evil/x"]}, "full URL"),
    ("long", {"baseUrl": "http://h", "resourcePaths": ["x" * 10_000]}, "characters long"),
    (
        "concur-neg",
        {"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": -1},
        "at least 1",
    ),
    ("no-base", {"resourcePaths": ["a"]}, "missing field 'baseUrl'"),
    ("surrogate", {"baseUrl": "http://h", "resourcePaths": ["\ud800.png"]}, "lone surrogate"),
    (
        "concur-5000-digits",
        {"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "9" * 5000},
        "whole number",
    ),
]


def invoke(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    clean = {k: None for k in os.environ if k.startswith("IMGFLOW_")}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, ["run", *args], env={**clean, **env})
    finally:
        os.chdir(cwd)
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_exit_2(tmp_path: Path, code: int, out: str, err: str, expected: str) -> None:
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err
    assert lines[0].startswith("imgflow: error: ") and out == ""
    assert not (tmp_path / "imgflow-data").exists()


@pytest.mark.parametrize(
    ("yaml_text", "args", "paths", "env", "expected"),
    [case[1:] for case in CLI_CASES],
    ids=[case[0] for case in CLI_CASES],
)
def test_cli_bad_input(
    tmp_path: Path,
    yaml_text: str | None,
    args: list[str],
    paths: bytes | None,
    env: dict[str, str],
    expected: str,
) -> None:
    if yaml_text is not None:
        (tmp_path / "imgflow.yaml").write_text(yaml_text)
    argv = list(args)
    if "--base-url" not in argv:
        argv = ["--base-url", BASE, *argv]
    if paths is not None:
        (tmp_path / "paths.txt").write_bytes(paths)
        argv += ["--paths-file", "paths.txt"]
    argv = [a for a in argv if a != "--no-paths"]
    code, out, err = invoke(tmp_path, argv, env)
    assert_one_line_exit_2(tmp_path, code, out, err, expected)


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in JOB_CASES], ids=[c[0] for c in JOB_CASES]
)
def test_job_json_bad_input(tmp_path: Path, body: bytes, expected: str) -> None:
    (tmp_path / "job.json").write_bytes(body)
    code, out, err = invoke(tmp_path, ["--job", "job.json"], {})
    assert_one_line_exit_2(tmp_path, code, out, err, expected)


class RecordingS3:
    """Just enough S3 for the plan step; records every write."""

    def __init__(self) -> None:
        self.puts: list[str] = []

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self.puts.append(str(kwargs.get("Key")))
        return {}

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("no manifest should be read")


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_api_body_bad_input(body: dict[str, Any], expected: str) -> None:
    s3 = RecordingS3()
    with pytest.raises(JobError) as caught:
        plan_job(s3, "bucket", "job-1", json.loads(json.dumps(body)))  # type: ignore[arg-type]
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message and expected in message, message
    assert s3.puts == []


MEASURE = textwrap.dedent(
    """
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(done.returncode, peak_kb, done.stdout.strip().replace("\\n", " "), sep="\\n")
    sys.stderr.write(done.stderr)
    """
)


def validate_in_process(tmp_path: Path, paths_file: Path) -> tuple[int, int, str, str]:
    """(exit code, peak RSS in KiB, stdout, stderr) of `imgflow run` on `paths_file`."""
    argv = cli_argv("run", "--base-url", BASE, "--paths-file", str(paths_file))
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(),
        timeout=120,
    )
    code, peak, out = [*done.stdout.splitlines(), "", "", ""][:3]
    return int(code), int(peak), out, done.stderr


def test_a_million_line_file_streams_and_names_its_last_line(tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_text("a.gif\n../x\n")
    big = tmp_path / "big.txt"
    with big.open("w") as out:
        for block in range(1000):
            out.write("".join(f"img/{block}/{i}-{'x' * 20}.gif\n" for i in range(1000)))
        out.write("../escape.gif\n")
    assert big.stat().st_size > 30_000_000
    code, small_peak, out, err = validate_in_process(tmp_path, small)
    assert code == 2 and "line 2:" in err
    code, big_peak, out, err = validate_in_process(tmp_path, big)
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "line 1000001: '../escape.gif' uses .." in lines[0]
    assert big_peak - small_peak < 30 * 1024, (small_peak, big_peak)  # KiB: the file is 30+ MB
    # A file this large is streamed while the run fetches (its first request goes out at
    # once), so its bad last line stops a run that has started: nothing is left half-written.
    data = tmp_path / "imgflow-data"
    assert not data.exists() or not any((data / "tmp").iterdir())
