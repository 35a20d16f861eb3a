"""`imgflow export` of a shard layout's run: every stored image's row names its shard file
and its member (read back from the tar), a sample has no path of its own, and a failed
image has neither (a files-layout run's columns: tests/test_url_tables.py)."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

from support.cli_run import FAST_ENV, run_cli

from imgflow.demo.server import StaticServer
from imgflow.documents.export import COLUMNS


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--data-dir", "data", cwd=tmp_path, env=FAST_ENV, timeout=120)


def test_a_webdataset_runs_rows_name_their_shard_and_member(
    tmp_path: Path, flag_server: StaticServer
) -> None:
    (tmp_path / "paths.txt").write_text("ad/ad.gif\nae/ae.gif\nzz/zz.gif\n")
    run = ("run", "--base-url", flag_server.base_url, "--paths-file", "paths.txt")
    done = _cli(tmp_path, *run, "--layout", "webdataset", "-o", "json")
    assert done.returncode == 1, done.stderr  # zz/zz.gif is missing
    assert _cli(tmp_path, "export", "--format", "jsonl", "-o", "x.jsonl").returncode == 0
    rows = {r["url"]: r for r in map(json.loads, (tmp_path / "x.jsonl").read_text().splitlines())}
    assert list(rows[flag_server.url("ad/ad.gif")])[: len(COLUMNS) + 2] == [
        *COLUMNS,
        "shard",
        "member",
    ]
    for name in ("ad/ad.gif", "ae/ae.gif"):
        row = rows[flag_server.url(name)]
        assert row["outcome"] == "stored" and row["path"] is None
        with tarfile.open(row["shard"]) as tar:
            assert (
                tar.extractfile(row["member"]).read()
                == (  # type: ignore[union-attr]
                    flag_server.root / name
                ).read_bytes()
            )
    missing = rows[flag_server.url("zz/zz.gif")]
    assert (missing["shard"], missing["member"], missing["outcome"]) == (None, None, "failed")
