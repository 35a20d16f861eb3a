"""The input mistakes a new user makes, each named in one line: a folder or a table given
as the paths file, a mistyped config key, a concurrency no single host takes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.cli_run import FAST_ENV, run_cli


def imgflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=tmp_path, env=FAST_ENV, timeout=60, stdin=subprocess.DEVNULL)


def test_a_folder_as_the_paths_file_is_named_a_folder(tmp_path: Path) -> None:
    (tmp_path / "paths").mkdir()
    done = imgflow(tmp_path, "run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths")
    assert done.returncode == 2
    assert done.stderr == "imgflow: error: paths: is a folder, not a paths file\n"


def test_tabs_in_the_paths_file_point_to_a_table_of_urls(tmp_path: Path) -> None:
    (tmp_path / "paths.txt").write_text("a.gif\nb.gif\tb-name\n")
    done = imgflow(tmp_path, "run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths.txt")
    assert done.returncode == 2
    assert done.stderr == (
        "imgflow: error: paths.txt line 2: a tab: one path per line"
        " (a table of URLs is not supported yet)\n"
    )


def test_a_mistyped_config_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "imgflow.yaml").write_text("job:\n  concurency: 4\n")
    done = imgflow(tmp_path, "status")
    assert done.returncode == 2
    assert "job.concurency: unknown key; did you mean concurrency?" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_a_concurrency_no_host_takes_is_warned_of(tmp_path: Path) -> None:
    (tmp_path / "paths.txt").write_text("a.gif\n")
    done = imgflow(
        tmp_path, "run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths.txt",
        "-c", "100000",
    )  # fmt: skip
    assert "imgflow: warning: -c 100,000: more than 64 requests at once to one host" in (
        done.stderr
    ), done.stderr
    quiet = imgflow(
        tmp_path, "run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths.txt", "-c", "8"
    )
    assert "warning: -c" not in quiet.stderr


def test_deploy_dry_run_without_credentials_shows_the_plan(tmp_path: Path) -> None:
    no_files = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    done = run_cli(
        "deploy", "--dry-run", "--region", "eu-west-1", cwd=tmp_path,
        env={**FAST_ENV, **no_files}, drop=("AWS_",), timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for kind, name in [
        ("s3 bucket", "imgflow-images-"),
        ("dynamodb table", "imgflow-index"),
        ("lambda function", "imgflow-download"),
        ("state machine", "imgflow-pipeline"),
        ("http api", "imgflow-api"),
    ]:
        assert any(kind in line and name in line for line in done.stdout.splitlines()), done.stdout
    assert "no AWS credentials" in done.stderr and "docs/aws.md" in done.stderr, done.stderr


def test_check_repair_removes_only_files_imgflow_wrote(tmp_path: Path) -> None:
    import sqlite3

    from support.faultserver import FaultServer, Ok

    from imgflow.demo.images import make_gif

    with FaultServer() as server:
        server.set("/a.gif", Ok(make_gif("a", 4)))
        server.set("/b.gif", Ok(make_gif("b", 4)))
        (tmp_path / "paths.txt").write_text("a.gif\nb.gif\n")
        ran = imgflow(tmp_path, "run", "--base-url", server.base_url, "--paths-file", "paths.txt")
        assert ran.returncode == 0, ran.stderr
    images = tmp_path / "imgflow-data" / "images"
    (host,) = list(images.iterdir())
    mine = host / "mine.gif"  # a file the user copied in
    mine.write_bytes(make_gif("m", 4))
    with sqlite3.connect(tmp_path / "imgflow-data" / "imgflow.db") as conn:
        conn.execute("DELETE FROM images WHERE url LIKE '%/b.gif'")  # imgflow's orphan
    done = imgflow(tmp_path, "check", "--repair")
    assert done.returncode == 0, done.stderr
    assert mine.is_file(), done.stdout
    assert not (host / "b.gif").exists(), done.stdout
    assert f"not imgflow's (left alone): {host.name}/mine.gif" in done.stdout, done.stdout
