"""Start-up: a run without a config file or IMGFLOW_* variables never loads the YAML parser
(imgflow/config.py imports it where a file or a variable is read)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
import imgflow.backends.local, imgflow.cli.commands.run, imgflow.local.runner
from imgflow.config import load
load()
print("yaml" in sys.modules)
"""


def _probe(cwd: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMGFLOW_")}
    clean.update(env, HOME=str(cwd), XDG_CONFIG_HOME=str(cwd / "xdg"))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=cwd, env=clean,
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return proc.stdout.strip()


def test_a_run_without_config_file_or_variables_does_not_load_yaml(tmp_path: Path) -> None:
    assert _probe(tmp_path) == "False"


def test_a_variable_is_still_read_as_yaml(tmp_path: Path) -> None:
    assert _probe(tmp_path, IMGFLOW_LOCAL_FSYNC="no") == "True"  # (YAML 1.1: false)
