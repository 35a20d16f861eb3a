"""What a newcomer meets in the first hour: version, completion, plain words, no wrapped
paths, warnings about likely mistakes, a user-level config, live counts, the demo's keys.

Every case runs the CLI as a real process (the pseudo-terminal cases in a real pty).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli_run import cli_argv, cli_env, run_cli, start_cli
from support.faultserver import Delay, FaultServer, Ok

from imgflow import __version__
from imgflow.demo.images import make_gif
from imgflow.demo.server import StaticServer, serve_directory
from imgflow.documents.text import plural, summary_line
from imgflow.engine.plan import item_for
from imgflow.engine.records import Summary

QUICK_ENV = {
    "IMGFLOW_FETCH_RETRIES": "0",
    "IMGFLOW_FETCH_TIMEOUT": "5",
    "IMGFLOW_LOCAL_FSYNC": "false",
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def imgflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=QUICK_ENV | (env or {}), stdin=subprocess.DEVNULL)


def in_pty(*args: str, cwd: Path, columns: int = 80, timeout: float = 60) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a real pseudo-terminal; (exit code, screen text)."""
    leader, follower = pty.openpty()
    env = cli_env(QUICK_ENV | {"COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"})
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        cli_argv(*args),
        cwd=cwd,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        start_new_session=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the other side closed: the process ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace"))


@pytest.fixture
def many_flags(tmp_path: Path) -> StaticServer:
    """A static server with 600 small GIFs (more than the table's 500 rows)."""
    root = tmp_path / "site"
    for i in range(600):
        folder = root / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.gif").write_bytes(make_gif(f"g{i}", 2))
    server = serve_directory(root)
    yield server
    server.close()


def test_version_and_completion(tmp_path: Path) -> None:
    done = imgflow("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"imgflow {__version__}"
    shown = imgflow("--help", cwd=tmp_path)
    assert "--install-completion" in shown.stdout
    assert "--version" in shown.stdout
    # What an installed completion runs; --show-completion would guess the shell from the
    # parent processes, which a suite started as a background job may not have.
    script = subprocess.run(
        [str(Path(sys.executable).with_name("imgflow"))],
        env=cli_env(QUICK_ENV | {"_IMGFLOW_COMPLETE": "source_bash"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0, script.stderr
    assert "COMPREPLY" in script.stdout


def test_plural_words() -> None:
    assert plural(1, "image") == "1 image"
    assert plural(2, "image") == "2 images"
    assert plural(1, "batch", "batches") == "1 batch"
    assert plural(1000, "batch", "batches") == "1,000 batches"
    one = Summary(total=1, stored=1, skipped=0, failed=0)
    assert summary_line(one, duplicates=1).startswith("1 image: 1 stored")
    assert "(1 duplicate path fetched once)" in summary_line(one, duplicates=1)


def test_unknown_imgflow_variable_is_named_with_the_closest_key(tmp_path: Path) -> None:
    done = imgflow("status", cwd=tmp_path, env={"IMGFLOW_FECH_TIMEOUT": "3"})
    lines = [line for line in done.stderr.splitlines() if "IMGFLOW_FECH_TIMEOUT" in line]
    assert len(lines) == 1, done.stderr
    assert "did you mean IMGFLOW_FETCH_TIMEOUT (fetch.timeout)?" in lines[0]
    # the variables deploy gives the Lambdas and notify.command's are not warned about
    quiet = imgflow("status", cwd=tmp_path, env={"IMGFLOW_RUN_ID": "x", "IMGFLOW_BUCKET": "b"})
    assert "not an imgflow setting" not in quiet.stderr


def test_user_level_config_sets_the_data_folder_once(
    flag_server: StaticServer, tmp_path: Path
) -> None:
    shared = tmp_path / "everywhere-data"
    user_config = tmp_path / "xdg" / "imgflow" / "imgflow.yaml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text(f"local:\n  data_dir: {shared}\n")
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    project = tmp_path / "project"
    project.mkdir()
    (project / "paths.txt").write_text("ad/ad.gif\n")
    run = ("run", "--base-url", flag_server.base_url, "--paths-file", "paths.txt")
    done = imgflow(*run, cwd=project, env=xdg)
    assert done.returncode == 0, done.stderr
    assert (shared / "imgflow.db").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = imgflow("status", cwd=elsewhere, env=xdg)
    assert listed.returncode == 0, listed.stderr
    assert str(shared) in listed.stdout
    # the project's own file still wins over the user-level one
    (project / "imgflow.yaml").write_text("local:\n  data_dir: mine\n")
    again = imgflow(*run, cwd=project, env=xdg)
    assert again.returncode == 0, again.stderr
    assert (project / "mine" / "imgflow.db").exists()


@pytest.mark.parametrize(
    ("config", "expect_file"),
    [
        ("notify:\n  command: 'cat > notified.json'\n  shell: true\n", True),
        ("notify:\n  command: [sh, -c, 'cat > notified.json']\n", True),
    ],
)
def test_notify_command_forms(
    flag_server: StaticServer, tmp_path: Path, config: str, expect_file: bool
) -> None:
    (tmp_path / "imgflow.yaml").write_text(config)
    (tmp_path / "paths.txt").write_text("ad/ad.gif\nzz/zz.gif\n")
    done = imgflow(
        "run", "--base-url", flag_server.base_url, "--paths-file", "paths.txt", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert "notify.command" not in done.stderr, done.stderr
    sent = json.loads((tmp_path / "notified.json").read_text())
    assert sent == [f"Could not find: {flag_server.base_url}/zz/zz.gif"]


def test_a_path_that_repeats_the_base_path_is_warned_about(
    flag_server: StaticServer, tmp_path: Path
) -> None:
    (tmp_path / "paths.txt").write_text("/ad/ad.gif\n")
    base = flag_server.base_url + "/ad"
    done = imgflow("run", "--base-url", base, "--paths-file", "paths.txt", cwd=tmp_path)
    assert done.returncode == 1  # fetched from /ad/ad/ad.gif: not found
    warning = [line for line in done.stderr.splitlines() if "repeats the base URL's path" in line]
    assert len(warning) == 1, done.stderr
    assert f"{base}/ad/ad.gif" in warning[0]
    # no warning for an ordinary job
    plain = imgflow(
        "run", "--base-url", flag_server.base_url, "--paths-file", "paths.txt", cwd=tmp_path
    )
    assert plain.returncode == 0, plain.stderr
    assert "repeats" not in plain.stderr


def test_stderr_to_a_pipe_never_wraps_paths(flag_server: StaticServer, tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"a-rather-long-folder-name-{i}" for i in range(4)])
    deep.mkdir(parents=True)
    (deep / "paths.txt").write_text("ad/ad.gif\nzz/zz.gif\n")
    done = imgflow(
        "run",
        "--base-url",
        flag_server.base_url,
        "--paths-file",
        "paths.txt",
        cwd=deep,
        env={"COLUMNS": "80"},
    )
    assert done.returncode == 1
    failures = [line for line in done.stderr.splitlines() if line.startswith("failures: ")]
    assert len(failures) == 1, done.stderr
    path = Path(failures[0].removeprefix("failures: "))
    assert len(str(path)) > 80
    assert path.is_file()


def test_a_large_successful_run_ends_with_a_plain_summary(
    many_flags: StaticServer, tmp_path: Path
) -> None:
    paths = [f"d{i % 10}/{i}.gif" for i in range(600)]
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    done = imgflow(
        "run", "--base-url", many_flags.base_url, "--paths-file", "paths.txt", "-c", "8",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "only failures are listed" not in done.stdout
    assert "┏" not in done.stdout and "+--" not in done.stdout  # no table box at all
    assert re.search(r"^600 images: 600 stored, 0 skipped, 0 failed in [\d.]+s \[succeeded\]$",
                     done.stdout, re.M), done.stdout  # fmt: skip


def test_progress_on_a_terminal_has_an_eta_and_the_end_is_readable(
    tmp_path: Path,
) -> None:
    with FaultServer() as server:
        for i in range(30):
            server.set(f"/slow/{i}.gif", Delay(0.05, Ok(make_gif(f"s{i}", 2))))
        paths = [f"slow/{i}.gif" for i in range(30)] + ["slow/missing.gif"]
        (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
        code, screen = in_pty(
            "run", "--base-url", server.base_url, "--paths-file", "paths.txt", "-c", "2",
            cwd=tmp_path,
        )  # fmt: skip
    assert code == 1, screen
    assert "ETA" in screen, screen
    assert "31 images: 30 stored, 0 skipped, 1 failed" in screen, screen
    failures = [line for line in screen.splitlines() if line.startswith("failures: ")]
    assert len(failures) == 1, screen
    assert Path(failures[0].removeprefix("failures: ").strip()).is_file(), screen


def test_status_shows_live_counts_while_a_run_works(tmp_path: Path) -> None:
    """Records reach the index at least every second, not only at the end of a batch."""
    with FaultServer() as server:
        for i in range(200):
            server.set(f"/s/{i}.gif", Delay(0.05, Ok(make_gif(f"s{i}", 2))))
        (tmp_path / "paths.txt").write_text("\n".join(f"s/{i}.gif" for i in range(200)) + "\n")
        proc = start_cli(
            "run", "--base-url", server.base_url, "--paths-file", "paths.txt",
            "-c", "1", "--batch-size", "200",
            cwd=tmp_path, env=QUICK_ENV, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            db = tmp_path / "imgflow-data" / "imgflow.db"
            seen = 0
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if db.exists() and len(server.requests) >= 60:
                    conn = sqlite3.connect(db, timeout=5)
                    try:
                        (seen,) = conn.execute(
                            "SELECT count(*) FROM results WHERE outcome = 'stored'"
                        ).fetchone()
                    finally:
                        conn.close()
                    break
                time.sleep(0.05)
            running = proc.poll() is None
        finally:
            proc.wait(timeout=120)
    assert running, "the run ended before the check: make the server slower"
    assert seen > 0, "no stored record reached the index while the one batch was running"


def test_demo_keys_do_not_depend_on_the_port(tmp_path: Path) -> None:
    item = item_for("http://127.0.0.1:40123", "ad/ad.gif", key_base="http://127.0.0.1:8765")
    assert item.url == "http://127.0.0.1:40123/ad/ad.gif"
    assert item.key == "127.0.0.1:8765/ad/ad.gif"
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8765))
    except OSError:
        blocker.close()
        pytest.skip("port 8765 is in use here; the unit check above still ran")
    blocker.listen()
    try:
        done = imgflow("demo", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    finally:
        blocker.close()
    assert done.returncode == 0, done.stderr
    assert "port 8765 is busy" in done.stderr
    assert (tmp_path / "data" / "images" / "127.0.0.1:8765" / "ad" / "ad.gif").is_file()
