"""Too few file descriptors: the requests in flight fit RLIMIT_NOFILE (a real lowered limit).

The CLI runs as a child process whose soft and hard RLIMIT_NOFILE are both lowered (so it
cannot raise them) against a real nginx, with far more requests asked in flight than the
limit allows descriptors for.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from support.cli_run import run_cli, site
from support.nginx import Nginx, Server


def _limited(limit: int):  # type: ignore[no-untyped-def]
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return lower


def test_a_low_descriptor_limit_stores_every_image_and_warns_once(tmp_path: Path) -> None:
    count = 600
    root = site(tmp_path, count)
    (tmp_path / "paths.txt").write_text("".join(f"{i}.gif\n" for i in range(count)))
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        done = run_cli(
            "run", "--base-url", web.url(0, "/"), "--paths-file", "paths.txt", "-o", "json",
            "-c", "200", cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL,
            preexec_fn=_limited(256),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["summary"]["stored"] == count, doc["summary"]
    warned = [line for line in done.stderr.splitlines() if "file descriptors" in line]
    assert len(warned) == 1, done.stderr[-2000:]
    assert "256" in warned[0], done.stderr


def test_fit_caps_requests_to_a_limit_that_cannot_be_raised() -> None:
    probe = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256));"
        "from imgflow.local.descriptors import fit; print(fit(800)[0]); print(fit(10))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    capped, fits = done.stdout.splitlines()
    assert 1 <= int(capped) <= (256 - 64) // 2
    assert fits == "(10, '')"
