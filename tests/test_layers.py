"""Imports point down: below the command line nothing loads terminal code, and importing
imgflow has no side effects (the command line installs its signal handlers in main)."""

from __future__ import annotations

import json
import subprocess
import sys

LIBRARY = (
    "imgflow",
    "imgflow.engine",
    "imgflow.local",
    "imgflow.aws",
    "imgflow.serve",
    "imgflow.serve.service",
    "imgflow.backends",
    "imgflow.backends.local",
    "imgflow.documents.run",
    "imgflow.documents.listing",
)
TERMINAL = ("rich", "typer")  # (click comes with uvicorn, which serve runs on)

# httpx's own command line (httpx._main) loads rich and click when they are installed:
# stood in for, so that what is checked is imgflow's imports.
PROBE = """
import importlib, json, signal, sys, types
stand_in = sys.modules["httpx._main"] = types.ModuleType("httpx._main")
stand_in.main = lambda: None
before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
for name in NAMES:
    importlib.import_module(name)
after = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
print(json.dumps({
    "loaded": sorted(m for m in TERMINAL if m in sys.modules),
    "handlers_changed": before != after,
}))
"""


def _probe(argv0: str, names: tuple[str, ...]) -> dict[str, object]:
    code = f"NAMES = {names!r}\nTERMINAL = {TERMINAL!r}\n" + PROBE
    # argv[0] "imgflow" is what the console script looks like
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv[0] = {argv0!r}\n" + code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_the_library_imports_no_terminal_code() -> None:
    assert _probe("-c", LIBRARY)["loaded"] == []


def test_importing_imgflow_installs_no_signal_handler_even_as_the_console_script() -> None:
    assert _probe("imgflow", ("imgflow", "imgflow.cli"))["handlers_changed"] is False


def test_the_command_line_loads_no_engine_http_client_or_aws_sdk_before_a_command_runs() -> None:
    # (what `imgflow --help` loads: the app with every command registered)
    probe = (
        "import json, sys\nimport imgflow.cli.app\n"
        "print(json.dumps(sorted(m for m in ('httpx', 'boto3', 'imgflow.engine', 'yaml')"
        " if m in sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(proc.stdout) == []
