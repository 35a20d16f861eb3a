"""Find what running handlers under Lambda's conditions needs: the runtime's Python and a
private mount namespace for read-only folders (tests skip with the reason when absent)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

RUNTIME_VERSION = (3, 12)


def runtime_python() -> str | None:
    """A python3.12 interpreter on this machine, or None."""
    name = "python{}.{}".format(*RUNTIME_VERSION)
    candidates = [shutil.which(name)]
    for base in (os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")):
        if base:
            candidates += sorted(glob.glob(f"{base}/versions/{name[6:]}*/bin/{name}"))
    check = f"import sys; sys.exit(sys.version_info[:2] != {RUNTIME_VERSION!r})"
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "-c", check], capture_output=True).returncode == 0
        ):
            return candidate
    return None


def can_mount_read_only() -> bool:
    """True when `unshare --mount` works here (root, or a user namespace allowed)."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return done.returncode == 0


def isolation_missing() -> str | None:
    """Why handlers cannot run under Lambda's conditions here, or None."""
    if runtime_python() is None:
        return "no python3.12 interpreter on this machine (pyenv or PATH)"
    if not can_mount_read_only():
        return "unshare --mount is not permitted (needs root)"
    return None
