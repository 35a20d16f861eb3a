"""A shard's bytes go to its temporary file, not into memory: a run storing 96 MB of
images into one shard peaks within 64 MB of the same run storing small images (peak RSS
of the real process, measured by /usr/bin/time)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli_run import FAST_ENV, cli_argv, cli_env, site
from support.nginx import Nginx, Server

TIME = shutil.which("time") or "/usr/bin/time"


def _peak_kb(tmp_path: Path, url: str, data: str, layout: str) -> int:
    done = subprocess.run(
        [TIME, "-f", "peak %M", *cli_argv(
            "run", "--base-url", url, "--paths-file", "paths.txt", "--data-dir", data,
            "-c", "4", "--layout", layout, "--shard-size", "100", "-o", "json")],
        cwd=tmp_path, env=cli_env(FAST_ENV), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stderr.strip().splitlines()[-1].split()[-1])


@pytest.mark.parametrize("layout", ["webdataset", "parquet"])
def test_a_shard_is_buffered_on_disk_not_in_memory(tmp_path: Path, layout: str) -> None:
    if not Path(TIME).exists():
        pytest.skip("no /usr/bin/time")
    (tmp_path / "s").mkdir()
    small = site(tmp_path / "s", 16)
    (tmp_path / "big").mkdir()
    large = site(tmp_path / "big", 16, size=6_000_000)
    (tmp_path / "paths.txt").write_text("".join(f"{i}.gif\n" for i in range(16)))
    servers = [Server(f"location / {{ root {small}; }}"), Server(f"location / {{ root {large}; }}")]
    with Nginx(tmp_path / "nginx", servers) as web:
        base = _peak_kb(tmp_path, web.url(0, "/"), "small", layout)
        peak = _peak_kb(tmp_path, web.url(1, "/"), "large", layout)
    assert sum(p.stat().st_size for p in large.iterdir()) > 90_000_000
    assert len(list((tmp_path / "large" / "shards").glob("00000*"))) >= 2  # one shard
    assert peak - base < 64 * 1024, (base, peak)
