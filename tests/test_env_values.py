"""IMGFLOW_* values: the plain ones (true, false, a decimal integer) are read without the YAML
parser, as YAML reads them (imgflow/config.py); the bench's fsync-off runs set one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imgflow.config import _env_value

RAW = (
    "true", "false", "True", "FALSE", "yes", "no", "on", "off", "0", "7", "12", "007", "010",
    "08", "+3",
    "-3", "1_000", "0x1f", "1e3", "2.5", ".5", " 4", "4 ", "null", "~", "", "abc",
    "\u0661", "99999999999999999999999",
)  # fmt: skip


@pytest.mark.parametrize("tp", [bool, int, float, int | None, float | None])
def test_a_variable_reads_as_yaml_reads_it(tp: object) -> None:
    for raw in RAW:
        try:
            expected = yaml.safe_load(raw)
        except yaml.YAMLError:
            expected = raw
        found = _env_value(raw, tp)
        assert (type(found), found) == (type(expected), expected), raw


def test_a_list_variable_is_still_split_on_commas() -> None:
    assert _env_value("12", tuple[str, ...]) == ["12"]
    assert _env_value("true, 3", tuple[str, ...]) == ["true", "3"]
    assert _env_value('["a,b", "c"]', tuple[str, ...]) == ["a,b", "c"]


def test_plain_variables_do_not_load_yaml(tmp_path: Path) -> None:
    probe = "import sys\nfrom imgflow.config import load\nload()\nprint('yaml' in sys.modules)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMGFLOW_")}
    clean.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    clean.update(IMGFLOW_LOCAL_FSYNC="false", IMGFLOW_JOB_CONCURRENCY="12")
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=clean,
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "False"
