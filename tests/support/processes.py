"""Helpers for tests that run a real process: free ports, servers as processes, signals.

A test run started as a background job (``pytest ... &`` in a script, CI runners) begins with
SIGINT ignored, and children inherit that: Python then never raises KeyboardInterrupt, and a
test's SIGINT is silently dropped. `signalled` gives the child its own session (no terminal's
process group is involved in any delivery) and SIGINT's default handling back.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(*ports: int) -> Callable[[], bool]:
    """A readiness check: every one of `ports` on 127.0.0.1 accepts connections."""

    def check() -> bool:
        for port in ports:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            except OSError:
                return False
        return True

    return check


def port_written(file: Path) -> Callable[[], bool]:
    """A readiness check: the server wrote its port into `file`."""
    return lambda: file.exists() and bool(file.read_text())


class ServerProcess:
    """A server as a child process: started, waited for until `ready()`, stopped at the end.

        with ServerProcess([NGINX, "-c", conf], listening(port), output=log) as server:
            server.proc.pid

    Its stdout and stderr go to `output` (appended); without `output` its stdout is dropped
    and its stderr collected by a thread (`log`), so a chatty server never blocks on a full
    pipe. When it exits or is not ready in `timeout` seconds, the error carries the tail of
    what it wrote.
    """

    def __init__(
        self,
        argv: Sequence[str],
        ready: Callable[[], bool],
        *,
        output: Path | None = None,
        timeout: float = 10,
        **popen: Any,
    ) -> None:
        self.argv = list(argv)
        self._ready = ready
        self._output = output
        self._timeout = timeout
        self._popen = popen
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: list[bytes] = []
        self._lock = threading.Lock()

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The running (or ended) process."""
        assert self._proc is not None, "not started"
        return self._proc

    @property
    def log(self) -> str:
        """What the process wrote: its collected stderr, or all of `output`."""
        if self._output is not None:
            return _read(self._output)
        with self._lock:
            return b"".join(self._lines).decode(errors="replace")

    def start(self) -> None:
        """Start the process and wait until it is ready; stop it and raise when it is not."""
        self._lines = []
        if self._output is None:
            self._proc = subprocess.Popen(
                self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **self._popen
            )
            threading.Thread(target=self._collect, args=(self._proc,), daemon=True).start()
        else:
            with self._output.open("ab") as out:
                self._proc = subprocess.Popen(
                    self.argv, stdout=out, stderr=subprocess.STDOUT, **self._popen
                )
        deadline = time.monotonic() + self._timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.argv[0]} exited ({self._proc.returncode}): {self._tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} was not ready: {self._tail()}")
            time.sleep(0.05)

    def _collect(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._lock:
                self._lines.append(line)

    def _tail(self) -> str:
        return self.log[-2000:] or "(nothing written)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5) -> int:
        """Send `sig` (kill after `timeout` s), reap the process; its exit code."""
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServedByProcess:
    """A test server that is one `ServerProcess`: `process()` writes its configuration and
    says how to start it; the ``with`` block starts it and stops it."""

    _server: ServerProcess | None = None

    def process(self) -> ServerProcess:
        """The process to start (its configuration written)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._server = self.process()
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signalled() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` of a child the test will signal."""
    return {"start_new_session": True, "preexec_fn": _default_sigint}


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """Kills and waits for `proc` on the way out if it is still running (a failed test)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def peak_rss_until_exit(proc: subprocess.Popen[Any]) -> int:
    """The child's own peak RSS (VmHWM), read from /proc while it runs.

    Not ru_maxrss from wait4: on Linux a child's ru_maxrss starts from the high-water mark
    of the process that forked it, so a test worker grown to 1 GB would be measured, not
    imgflow. VmHWM belongs to the child's own address space and only grows.
    """
    status = Path(f"/proc/{proc.pid}/status")
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(0.02)
    return peak
