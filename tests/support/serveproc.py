"""`imgflow serve` as a real process for tests: start, talk to it, signal it, read its log.

    with ServeProcess(tmp_path, config={"serve": {"max_queued": 2}}) as serve:
        answer = serve.client().post("/jobs", json=body)
        serve.stop(signal.SIGTERM)              # the exit code; the log stays readable

The process runs in `folder` (its data folder is ``folder/imgflow-data``) with an
imgflow.yaml written from `config`, on a free port of 127.0.0.1, in the environment of
`support.cli_run` with `env` on top. Its stderr is collected (``serve.log``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from support.cli_run import cli_argv, cli_env
from support.processes import ServerProcess, free_port, signalled

TERMINAL = ("succeeded", "failed", "cancelled")


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
        base: dict[str, Any] = {"local": {"fsync": False}, "fetch": {"retries": 0}}
        for section, values in (config or {}).items():
            base.setdefault(section, {}).update(values)
        (folder / "imgflow.yaml").write_text(yaml.safe_dump(base))
        self.env = dict(env or {})
        self._server: ServerProcess | None = None
        if start:
            self.start()

    def start(self, timeout: float = 60) -> None:
        """Start the process and wait for its 'taking jobs at' line."""
        self._server = ServerProcess(
            cli_argv("serve", "--port", str(self.port), *self.args),
            lambda: "taking jobs at" in self.log,
            timeout=timeout,
            cwd=self.folder,
            env=cli_env(self.env),
            stdin=subprocess.DEVNULL,
            **signalled(),
        )
        self._server.start()
        found = re.search(r"token for this start: (\S+)", self.log)
        if found:
            self.token = found.group(1)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The process."""
        assert self._server is not None
        return self._server.proc

    @property
    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self._server.log if self._server is not None else ""

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
        """Send `sig` and wait for the exit (a kill after `timeout` s); the exit code."""
        assert self._server is not None
        return self._server.stop(sig, timeout)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop(signal.SIGTERM, timeout=30)
