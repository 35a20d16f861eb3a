"""Scratch folders that outlive a test: named after their process, swept once it has ended.

The in-process Lambda runner unpacks each deployed zip into a folder of the system temp
folder (``imgflow-lambda-code-<pid>-*``); a process removes its own at exit, and a test
session removes those of processes that are gone (a moto server process that was killed).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from imgflow.local.index import process_alive

LAMBDA_CODE_PREFIX = "imgflow-lambda-code-"


def lambda_code_folder() -> Path:
    """A new folder for unpacked Lambda code, removed when this process exits."""
    folder = Path(tempfile.mkdtemp(prefix=f"{LAMBDA_CODE_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def sweep_dead_lambda_code() -> None:
    """Remove the Lambda code folders whose process has ended."""
    for folder in Path(tempfile.gettempdir()).glob(f"{LAMBDA_CODE_PREFIX}*-*"):
        pid, dash, _ = folder.name.removeprefix(LAMBDA_CODE_PREFIX).partition("-")
        if dash and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
