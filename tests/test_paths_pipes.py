"""`--paths-file` reads what a shell hands it: `<(cmd)`, a named pipe, /dev/null."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
from pathlib import Path

from support.cli_run import cli_argv, cli_env, run_cli, site
from support.nginx import Nginx, Server

from imgflow.sources.paths import from_paths_file


def test_process_substitution_is_read(tmp_path: Path) -> None:
    root = site(tmp_path, 3)
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        command = " ".join(
            [shlex.join(cli_argv("run", "--base-url", web.url(0, "/"))),
             "--paths-file", "<(printf '0.gif\\n1.gif\\n2.gif\\n')", "-o", "json"]
        )  # fmt: skip
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=cli_env(), capture_output=True,
            text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["stored"] == 3


def test_a_named_pipe_is_read_once_and_replayed(tmp_path: Path) -> None:
    pipe = tmp_path / "paths.fifo"
    os.mkfifo(pipe)

    def write() -> None:
        with pipe.open("w") as out:
            out.write("a.gif\n# a comment\nb/c.gif\n")

    writer = threading.Thread(target=write)
    writer.start()
    source = from_paths_file("http://example.test/", str(pipe))
    writer.join(5)
    try:
        assert source.count == 2
        assert [item.url for item in source.items()] == [
            "http://example.test/a.gif",
            "http://example.test/b/c.gif",
        ]
        assert sum(1 for _ in source.items()) == 2  # read again: the pipe was spooled
    finally:
        source.cleanup()
    assert source.spool is not None and not source.spool.exists()


def test_dev_null_is_an_empty_paths_file(tmp_path: Path) -> None:
    done = run_cli(
        "run", "--base-url", "http://127.0.0.1:9/", "--paths-file", "/dev/null",
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "imgflow: error: /dev/null: no paths (the file is empty or only comments)"
    ], done.stderr
