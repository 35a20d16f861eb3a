"""Helpers for tests that run a real process: free ports, readiness, stopping, signals.

A test run started as a background job (``pytest ... &`` in a script, CI runners) begins with
SIGINT ignored, and children inherit that: Python then never raises KeyboardInterrupt, and a
test's SIGINT is silently dropped. `signalled` gives the child its own session (no terminal's
process group is involved in any delivery) and SIGINT's default handling back.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 10) -> None:
    """Wait until 127.0.0.1:`port` accepts connections; fail with the process's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}): {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{proc.args[0]} did not listen on {port}: {_tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the process (kill it after 5 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signalled() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` of a child the test will signal."""
    return {"start_new_session": True, "preexec_fn": _default_sigint}
