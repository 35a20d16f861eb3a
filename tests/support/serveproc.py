"""`imgflow serve` as a real process for tests: start, talk to it, signal it, read its log.

    with ServeProcess(tmp_path, config={"serve": {"max_queued": 2}}) as serve:
        answer = serve.client().post("/jobs", json=body)
        serve.stop(signal.SIGTERM)              # the exit code; the log stays readable

The process runs in `folder` (its data folder is ``folder/imgflow-data``) with an
imgflow.yaml written from `config`, on a free port of 127.0.0.1. Its stderr is collected by a
thread (``serve.log``), so a chatty server never blocks on a full pipe.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from support.processes import signalled

TERMINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """One `imgflow serve` process (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        config: dict[str, Any] | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
        start: bool = True,
    ) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.token: str | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        base: dict[str, Any] = {"local": {"fsync": False}, "fetch": {"retries": 0}}
        for section, values in (config or {}).items():
            base.setdefault(section, {}).update(values)
        (folder / "imgflow.yaml").write_text(yaml.safe_dump(base))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IMGFLOW_")}
        self.env.update(env or {})
        self.proc: subprocess.Popen[str] | None = None
        if start:
            self.start()

    def start(self, timeout: float = 60) -> None:
        """Start the process and wait for its 'taking jobs at' line."""
        self._lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imgflow.cli", "serve", "--port", str(self.port), *self.args],
            cwd=self.folder,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            **signalled(),
        )
        threading.Thread(target=self._collect, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while "taking jobs at" not in self.log:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.wait(timeout=10)
                raise AssertionError(f"serve did not start:\n{self.log}")
            time.sleep(0.05)
        found = re.search(r"token for this start: (\S+)", self.log)
        if found:
            self.token = found.group(1)

    def _collect(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._lock:
                self._lines.append(line)

    @property
    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        with self._lock:
            return "".join(self._lines)

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    def headers(self) -> dict[str, str]:
        """The Authorization header (none when the service needs no token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the service, with the token."""
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=30, **kwargs)

    def post_job(self, body: dict[str, Any]) -> str:
        """POST a job; its run id (asserts 202)."""
        with self.client() as client:
            answer = client.post("/jobs", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["run"])

    def run(self, run_id: str, results: bool = False) -> dict[str, Any]:
        """GET /runs/<id>."""
        with self.client() as client:
            answer = client.get(f"/runs/{run_id}", params={"results": str(results).lower()})
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document

    def wait_for(
        self, run_id: str, states: tuple[str, ...] = TERMINAL, timeout: float = 60
    ) -> dict[str, Any]:
        """Poll GET /runs/<id> until its state is one of `states`."""
        deadline = time.monotonic() + timeout
        while True:
            document = self.run(run_id)
            if document["state"] in states:
                return document
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} stayed {document['state']}:\n{self.log}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `sig` and wait for the exit; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
