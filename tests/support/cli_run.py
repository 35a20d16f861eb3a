"""Run `imgflow run` as a real process against a site, with a clean environment.

    doc = imgflow_run(tmp_path, base_url, ["0.gif", "1.gif"], "-c", "8")
    doc["summary"], doc["records"], doc["stderr"], doc["exit"]

The process runs in `tmp_path` (its data folder is `tmp_path/imgflow-data`), with no
IMGFLOW_ variable of the caller's, fsync off and short backoffs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from imgflow.demo.images import make_gif


def cli_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without IMGFLOW_ settings, plus fast test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGFLOW_")}
    env.update(
        {
            "IMGFLOW_LOCAL_FSYNC": "false",
            "IMGFLOW_FETCH_BACKOFF_BASE": "0.1",
            "IMGFLOW_FETCH_BACKOFF_MAX": "1",
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        }
    )
    return env


def imgflow_run(tmp_path: Path, base_url: str, paths: list[str], *flags: str) -> dict[str, object]:
    """`imgflow run -o json` of `paths`; its JSON document with "stderr" and "exit" added."""
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "imgflow.cli", "run", "--base-url", base_url,
         "--paths-file", "paths.txt", "-o", "json", *flags],
        cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    doc["stderr"] = done.stderr
    doc["exit"] = done.returncode
    return doc


def site(tmp_path: Path, count: int, size: int = 0) -> Path:
    """`tmp_path/site` with `count` GIFs named 0.gif, 1.gif, ... (about `size` bytes each)."""
    root = tmp_path / "site"
    root.mkdir()
    for i in range(count):
        (root / f"{i}.gif").write_bytes(make_gif(f"t{i}", 4, target_bytes=size))
    return root
