"""A user whose HOME they may not read (``su`` without ``-``, cron) runs imgflow as if there
were no user config: the user-level file cannot be there for them.

Run as a real non-root process (root reads every folder): the test drops to ``nobody`` and
runs this checkout with the system's Python of the same version and the venv's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

import imgflow

ROOT = Path(imgflow.__file__).resolve().parents[1]
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")
NOBODY = 65534


def _readable_by_all(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o005 == 0o005 for p in [path, *path.parents])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as nobody")
def test_an_unreadable_home_is_no_user_config() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    if not SYSTEM_PYTHON.exists() or not (_readable_by_all(ROOT) and _readable_by_all(site)):
        pytest.skip("no system python of this version, or the checkout is not world-readable")
    top = Path(tempfile.mkdtemp(prefix="imgflow-home-"))  # pytest's own tmp is root's only
    try:
        top.chmod(0o755)
        _run_as_nobody(top, site)
    finally:
        shutil.rmtree(top)


def _run_as_nobody(top: Path, site: Path) -> None:
    home = top / "home"  # root's own, as after `su` without `-`
    (home / ".config" / "imgflow").mkdir(parents=True)
    (home / ".config" / "imgflow" / "imgflow.yaml").write_text("job: [broken\n")
    home.chmod(0o700)
    data = top / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)

    def as_nobody() -> None:
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": f"{ROOT}:{site}"}
    done = subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "imgflow.cli", "status", "--data-dir", str(data)],
        env=env,
        cwd=str(data),
        preexec_fn=as_nobody,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Permission denied" not in done.stderr, done.stderr
    # The command ran: an empty data folder has no runs yet (its usual answer, exit 2).
    assert done.returncode == 2 and "no runs yet" in done.stderr, done.stderr
