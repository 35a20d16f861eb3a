"""Every `--output json` answer is one JSON document, valid against its command's schema
(tests/schemas/), also when there is nothing to show; etag and lastModified come from the
index."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from support.cli_run import FAST_ENV, run_cli
from support.faultserver import FaultServer, Ok
from support.json_schemas import validate

from imgflow.demo.images import make_gif

MODIFIED = "Tue, 03 Nov 2026 10:00:00 GMT"


def imgflow_json(tmp_path: Path, schema: str, *args: str, code: int = 0) -> Any:
    """`imgflow <args> -o json`: its one document, checked against `schema`."""
    done = run_cli(
        *args, "-o", "json", cwd=tmp_path, env=FAST_ENV, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == code, done.stderr
    return validate(json.loads(done.stdout), schema)


def test_empty_answers_are_documents_too(tmp_path: Path) -> None:
    assert imgflow_json(tmp_path, "status-list", "status") == {"runs": []}
    # No index yet: nothing to check, a report of zero rows (and, as a table, one line).
    checked = imgflow_json(tmp_path, "check", "check")
    assert (checked["checked"], checked["missing"], checked["orphans"]) == (0, [], [])
    table = run_cli("check", cwd=tmp_path, env=FAST_ENV, stdin=subprocess.DEVNULL)
    assert (table.returncode, table.stderr) == (0, ""), table.stderr
    assert table.stdout.startswith("nothing to check: ") and "no index" in table.stdout
    assert not (tmp_path / "imgflow-data" / "imgflow.db").exists()


def test_deploy_dry_run_without_an_account_is_a_document(tmp_path: Path) -> None:
    no_files = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    done = run_cli(
        "deploy", "--dry-run", "--region", "eu-west-1", "-o", "json", cwd=tmp_path,
        env={**FAST_ENV, **no_files}, drop=("AWS_",), timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = validate(json.loads(done.stdout), "deploy")
    assert plan["outputs"] is None and plan["dryRun"] is True
    assert plan["summary"]["create"] == len(plan["steps"]) > 10
    assert "no AWS credentials" in done.stderr


def test_run_status_retry_documents_and_validators(tmp_path: Path) -> None:
    gif = make_gif("v", 4)
    with FaultServer() as server:
        server.set("/a.gif", Ok(gif, headers={"ETag": '"v1"', "Last-Modified": MODIFIED}))
        (tmp_path / "paths.txt").write_text("a.gif\n")
        args = ["--base-url", server.base_url, "--paths-file", "paths.txt"]
        ran = imgflow_json(tmp_path, "run", "run", *args)
        (record,) = ran["results"]
        assert (record["etag"], record["lastModified"]) == ('"v1"', MODIFIED)
        shown = imgflow_json(tmp_path, "run", "status", ran["run"])
        assert shown["results"] == ran["results"]
        listed = imgflow_json(tmp_path, "status-list", "status")
        assert [r["run"] for r in listed["runs"]] == [ran["run"]]
        nothing = imgflow_json(tmp_path, "retry-nothing", "retry", ran["run"])
        assert nothing == {"run": None, "parent": ran["run"], "retried": 0}
    page = imgflow_json(tmp_path, "report", "report", ran["run"], "--no-thumbnails")
    assert page["run"] == ran["run"] and Path(page["report"]).is_file()
    other = imgflow_json(tmp_path, "report", "report", "-f", "page.html", "--no-thumbnails")
    assert other == {"run": None, "report": str(tmp_path / "page.html")}
    checked = imgflow_json(tmp_path, "check", "check")
    assert (checked["checked"], checked["intact"]) == (1, 1)


def test_profile_and_region_on_every_command_that_reaches_aws(tmp_path: Path) -> None:
    arn = "arn:aws:states:eu-west-1:123456789012:execution:imgflow:x"  # (an ARN is aws's)
    for command in (["run", "--paths-file", "-", "--backend", "aws"], ["status", arn],
                    ["retry", arn], ["report", arn]):  # fmt: skip
        done = run_cli(
            *command, "--profile", "nosuch", "--region", "eu-west-1",
            cwd=tmp_path, env=FAST_ENV, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert "No such option" not in done.stderr, (command, done.stderr)
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_demo_document(tmp_path: Path) -> None:
    demo = imgflow_json(tmp_path, "run", "demo", "--data-dir", str(tmp_path / "data"))
    assert (demo["summary"]["failed"], demo["state"]) == (1, "failed")  # zz.gif, on purpose
