"""Every `--output json` answer is one JSON document, valid against its command's schema
(tests/schemas/), also when there is nothing to show; etag and lastModified come from the
index."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support.cli_run import FAST_ENV, run_cli
from support.faultserver import FaultServer, Ok

from imgflow.demo.images import make_gif

SCHEMAS = Path(__file__).parent / "schemas"
MODIFIED = "Tue, 03 Nov 2026 10:00:00 GMT"


def imgflow_json(tmp_path: Path, schema: str, *args: str, code: int = 0) -> Any:
    """`imgflow <args> -o json`: its one document, checked against `schema`."""
    done = run_cli(
        *args, "-o", "json", cwd=tmp_path, env=FAST_ENV, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == code, done.stderr
    document = json.loads(done.stdout)
    validator = jsonschema.Draft202012Validator(_schema(f"{schema}.json"), registry=_registry())
    validator.validate(document)
    return document


def _schema(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text())


def _registry() -> Registry[Any]:
    """tests/schemas/, each schema by its file name (for "$ref": "common.json#...")."""
    return Registry().with_resources(
        (path.name, Resource.from_contents(_schema(path.name), DRAFT202012))
        for path in SCHEMAS.glob("*.json")
    )


def test_empty_answers_are_documents_too(tmp_path: Path) -> None:
    assert imgflow_json(tmp_path, "status-list", "status") == {"runs": []}


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
