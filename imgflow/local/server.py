"""`imgflow serve`: start local runs over HTTP with the original request body.

``POST <api.route>`` (default ``/jobs``) takes ``{"baseUrl", "resourcePaths",
"lambdaConcur"}``, exactly what the original pipeline's HTTP API took, validates it, queues
the run and answers ``202 {"run": ID, "state": "queued"}``; a bad body gets
``400 {"error": "<one line>"}``. Runs execute one at a time, in order, in a worker thread.
``GET /runs`` lists recent runs and ``GET /runs/<id>`` returns the same JSON document as
``imgflow status <id> --output json``.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from imgflow.config import Config
from imgflow.engine.job import parse_job_json
from imgflow.errors import ImgflowError
from imgflow.local.db import Database
from imgflow.local.runner import DB_NAME, LocalJob, new_run_id, run_job
from imgflow.render import write_json

MAX_BODY = 10 * 1024 * 1024


@dataclass(frozen=True)
class _Queued:
    run_id: str
    job: LocalJob


class JobServer:
    """An HTTP server that queues local runs; `serve_forever` until `close`."""

    def __init__(self, cfg: Config, data_dir: Path, host: str, port: int) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.queue: queue.Queue[_Queued | None] = queue.Queue()
        self.queued: dict[str, str] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self.worker = threading.Thread(target=self._work, name="imgflow-runs", daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_forever(self) -> None:
        """Serve until `close` (or Ctrl-C in the caller)."""
        self.worker.start()
        self.httpd.serve_forever()

    def close(self) -> None:
        """Stop taking requests; the run in progress finishes first."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.queue.put(None)
        if self.worker.is_alive():
            self.worker.join()

    def submit(self, body: bytes) -> str:
        """Validate an original-format body and queue its run; the run id."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadRequest("request body: not UTF-8 text") from None
        try:
            base, paths, concurrency = parse_job_json(text, "request body")
        except ImgflowError as exc:
            raise _BadRequest(str(exc)) from None
        run_id = new_run_id()
        job = LocalJob(
            base_url=base,
            paths=lambda: iter(paths),
            concurrency=concurrency or self.cfg.job.concurrency,
            batch_size=self.cfg.job.batch_size,
            max_batches=self.cfg.job.max_batches,
        )
        with self._lock:
            self.queued[run_id] = "queued"
        self.queue.put(_Queued(run_id, job))
        return run_id

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            with self._lock:
                self.queued[item.run_id] = "running"
            try:
                run_job(item.job, self.cfg, self.data_dir, run_id=item.run_id)
            except ImgflowError as exc:
                with self._lock:
                    self.queued[item.run_id] = f"error: {exc}"
                continue
            with self._lock:
                self.queued.pop(item.run_id, None)

    def run_document(self, run_id: str) -> dict[str, Any] | None:
        """The run's JSON document, a queued stub, or None when unknown."""
        with self._lock:
            pending = self.queued.get(run_id)
        if pending is not None and pending != "running":
            return {"run": run_id, "backend": "local", "state": pending}
        db_path = self.data_dir / DB_NAME
        if not db_path.exists():
            return None
        db = Database(db_path)
        try:
            info = db.run_info(run_id)
            if info is None:
                return None
            out = io.StringIO()
            extra = {"state": info.state, "duplicates": info.duplicates}
            write_json(out, run_id, info.backend, db.summary(run_id), db.records(run_id), extra)
        finally:
            db.close()
        document: dict[str, Any] = json.loads(out.getvalue())
        return document

    def runs_document(self) -> dict[str, Any]:
        """Recent runs, newest first."""
        db_path = self.data_dir / DB_NAME
        if not db_path.exists():
            return {"runs": []}
        db = Database(db_path)
        try:
            runs = db.recent_runs()
        finally:
            db.close()
        return {
            "runs": [
                {
                    "run": r.id,
                    "state": r.state,
                    "baseUrl": r.base_url,
                    "summary": r.summary.to_json(),
                }
                for r in runs
            ]
        }


class _BadRequest(Exception):
    """A request the server answers with 400 and this message."""


def _handler(server: JobServer) -> type[BaseHTTPRequestHandler]:
    route = server.cfg.api.route.rstrip("/") or "/"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "imgflow"

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0].rstrip("/") not in (route.rstrip("/"), ""):
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"POST jobs to {route}"})
                return
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():
                self._reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
                return
            if int(length) > MAX_BODY:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body over 10 MB"})
                return
            body = self.rfile.read(int(length))
            try:
                run_id = server.submit(body)
            except _BadRequest as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            self._reply(HTTPStatus.ACCEPTED, {"run": run_id, "state": "queued"})

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/runs":
                self._reply(HTTPStatus.OK, server.runs_document())
                return
            if path.startswith("/runs/"):
                document = server.run_document(path.removeprefix("/runs/"))
                if document is None:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "no such run"})
                else:
                    self._reply(HTTPStatus.OK, document)
                return
            self._reply(HTTPStatus.NOT_FOUND, {"error": "try POST /jobs or GET /runs"})

        def _reply(self, status: HTTPStatus, document: dict[str, Any]) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
