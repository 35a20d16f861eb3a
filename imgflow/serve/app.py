"""The HTTP API of `imgflow serve`, on Starlette. Described in `imgflow.serve.openapi`.

- ``POST <api.route>`` (default ``/jobs``): the original pipeline's body (or ``urls``, full
  URLs from many hosts, each a string or ``{"url", <metadata>}``, instead of ``baseUrl`` and
  ``resourcePaths``); the job is stored in the data folder's imgflow.db, then
  ``202 {"run", "state"}`` with ``Location``.
- ``GET /runs[?state=&limit=]``, ``GET /runs/<id>[?results=false]``,
  ``GET /runs/<id>/failures``, ``DELETE /runs/<id>``, ``GET /openapi.json``.

Every refusal and error is ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgflow.config import Config
from imgflow.engine.job import number_too_long
from imgflow.errors import ImgflowError, JobError
from imgflow.serve.documents import Documents
from imgflow.serve.errors import Refusal, error_body, refusal_response
from imgflow.serve.guard import Access, Guard
from imgflow.serve.limits import json_depth, read_body
from imgflow.serve.queue import INTERRUPTED, QUEUED, RUNNING, STATES, Job, JobQueue, QueueFull
from imgflow.serve.worker import Worker
from imgflow.sources.job_json import UrlsSource, parse_job_document

# A local run's HTML report page: (data folder, run id) -> the page (imgflow.report).
RenderReport = Callable[[Path, str], str]

log = logging.getLogger("imgflow.serve")

MAX_CONCURRENCY = 10_000
MAX_LIST = 1000
RETRY_AFTER = 5
CANCEL_WAIT = 5.0
PARSING_AT_ONCE = 2


@dataclass(frozen=True)
class Submission:
    """A valid job body: paths under a base URL, or (base_url None) a list of URLs."""

    base_url: str | None
    paths: list[str]
    urls: UrlsSource | None
    concurrency: int


@dataclass(frozen=True)
class Limits:
    """Request limits of the API (serve.* config)."""

    max_body_bytes: int
    max_json_depth: int
    max_queued: int


class JobApi:
    """The route handlers, over the queue, the worker and the documents."""

    def __init__(
        self,
        cfg: Config,
        queue: JobQueue,
        worker: Worker,
        documents: Documents,
        limits: Limits,
        openapi: dict[str, Any],
        render_report: RenderReport,
    ) -> None:
        self.cfg = cfg
        self.queue = queue
        self.worker = worker
        self.documents = documents
        self.limits = limits
        self.openapi = openapi
        self.render_report = render_report
        self.accepting = True
        self._parsing = asyncio.Semaphore(PARSING_AT_ONCE)

    def routes(self) -> list[Route]:
        """The API's routes."""
        return [
            Route(self.cfg.api.route, self.submit, methods=["POST"]),
            Route("/runs", self.list_runs, methods=["GET"]),
            Route("/runs/{run_id}", self.get_run, methods=["GET"]),
            Route("/runs/{run_id}", self.cancel_run, methods=["DELETE"]),
            Route("/runs/{run_id}/failures", self.get_failures, methods=["GET"]),
            Route("/runs/{run_id}/report", self.get_report, methods=["GET"]),
            Route("/openapi.json", self.get_openapi, methods=["GET"]),
        ]

    # -- POST <api.route> --------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        """Store a job; 202 once it is durable."""
        if not self.accepting:
            raise Refusal(
                503, "the service is shutting down; retry later", _retry_after(), close=True
            )
        if await run_in_threadpool(self.queue.queued_count) >= self.limits.max_queued:
            raise self._queue_full()
        async with self._parsing:
            body = await read_body(request, self.limits.max_body_bytes)
            sub = await run_in_threadpool(self._parse, body)
            try:
                job = await run_in_threadpool(
                    self.queue.add,
                    sub.base_url,
                    sub.paths,
                    sub.concurrency,
                    self.limits.max_queued,
                    sub.urls,
                )
            except QueueFull:
                raise self._queue_full() from None
            except sqlite3.OperationalError as exc:  # locked past busy_timeout: nothing stored
                log.warning("run not queued: the job database is busy (%s)", exc)
                raise Refusal(
                    503, f"the job database is busy ({exc}); retry later", _retry_after()
                ) from None
        self.worker.wake()
        if sub.urls is not None:
            log.info("run %s queued: %d URLs", job.id, sub.urls.count)
        else:
            log.info("run %s queued: %d paths from %s", job.id, len(sub.paths), sub.base_url)
        return JSONResponse(
            {"run": job.id, "state": job.state},
            status_code=202,
            headers={"Location": f"/runs/{job.id}"},
        )

    def _parse(self, body: bytes) -> Submission:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, "request body: not UTF-8 text") from None
        depth = self.limits.max_json_depth
        too_deep = Refusal(
            400, f"request body: JSON nested deeper than {depth} levels (serve.max_json_depth)"
        )
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Refusal(
                400, f"request body: not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from None
        except ValueError:  # an integer over Python's digit limit
            raise Refusal(400, f"request body: not a job: {number_too_long()}") from None
        except RecursionError:
            raise too_deep from None
        if json_depth(document) > depth:
            raise too_deep
        try:
            source = parse_job_document(document, "request body")
        except JobError as exc:
            raise Refusal(400, str(exc)) from None
        concurrency = source.concurrency
        if concurrency is not None and concurrency > MAX_CONCURRENCY:
            raise Refusal(
                400, f"request body: lambdaConcur: at most {MAX_CONCURRENCY}, got {concurrency}"
            )
        concurrency = concurrency or self.cfg.job.concurrency
        if isinstance(source, UrlsSource):  # a bad entry fails alone when the job runs
            return Submission(None, [], source, concurrency)
        return Submission(source.base_url, list(source.paths()), None, concurrency)

    def _queue_full(self) -> Refusal:
        return Refusal(
            503,
            f"{self.limits.max_queued} jobs are already queued (serve.max_queued); retry later",
            _retry_after(),
            close=True,
        )

    # -- GET /runs ---------------------------------------------------------------------

    async def list_runs(self, request: Request) -> Response:
        """The service's runs, newest first; ?state= filters, ?limit= caps."""
        state = request.query_params.get("state")
        if state is not None and state not in STATES:
            raise Refusal(400, f"state: expected one of {', '.join(STATES)}, got {state!r}")
        limit = _int_param(request, "limit", 50, 1, MAX_LIST)

        def listing() -> dict[str, Any]:
            return {"runs": [self.documents.head(j) for j in self.queue.jobs(state, limit)]}

        return JSONResponse(await run_in_threadpool(listing))

    # -- /runs/<id> --------------------------------------------------------------------

    async def get_run(self, request: Request) -> Response:
        """The run's document; its results are left out with ?results=false."""
        with_results = _bool_param(request, "results", True)
        job = await self._job(request)
        if not with_results:
            return JSONResponse(await run_in_threadpool(self.documents.head, job))
        spooled = await run_in_threadpool(self.documents.spool, job)
        return StreamingResponse(_chunks(spooled), media_type="application/json")

    async def get_failures(self, request: Request) -> Response:
        """The run's failure messages, the original pipeline's JSON array."""
        job = await self._job(request)
        return JSONResponse(await run_in_threadpool(self.documents.failures, job))

    async def get_report(self, request: Request) -> Response:
        """The run's HTML report (imgflow report), once it has started."""
        job = await self._job(request)
        if job.run_id is None:
            raise Refusal(404, f"run {job.id} has not started; its report comes once it runs")
        try:
            page = await run_in_threadpool(self.render_report, self.documents.data_dir, job.run_id)
        except ImgflowError as exc:
            raise Refusal(404, str(exc)) from None
        return HTMLResponse(page)

    async def cancel_run(self, request: Request) -> Response:
        """Cancel a queued or running job: 200 once cancelled, 202 while it stops."""
        job = await self._job(request)
        if job.state == QUEUED and await run_in_threadpool(self.queue.cancel_queued, job.id):
            log.info("run %s cancelled before it started", job.id)
        job = await self._job(request)
        if job.state == RUNNING:
            self.worker.cancel(job.id)
            deadline = time.monotonic() + CANCEL_WAIT
            while job.state == RUNNING and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                job = await self._job(request)
        elif job.state != INTERRUPTED:
            raise Refusal(409, f"run {job.id} already ended ({job.state}); nothing to cancel")
        head = await run_in_threadpool(self.documents.head, job)
        return JSONResponse(head, status_code=200 if job.state == INTERRUPTED else 202)

    async def _job(self, request: Request) -> Job:
        run_id = str(request.path_params["run_id"])
        job = await run_in_threadpool(self.queue.get, run_id)
        if job is None:
            raise Refusal(404, f"no run {run_id!r} (GET /runs lists them)")
        return job

    async def get_openapi(self, request: Request) -> Response:
        """This API's OpenAPI description."""
        return JSONResponse(self.openapi)


def build_app(api: JobApi, access: Access) -> ASGIApp:
    """The whole ASGI application: access log -> guard -> Starlette routes."""
    app = Starlette(
        routes=api.routes(),
        exception_handlers={
            Refusal: _on_refusal,
            HTTPException: _on_http_exception,
            Exception: _on_error,
        },
    )
    return AccessLog(Guard(app, access))


async def _on_refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return refusal_response(exc)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        message = f"no such endpoint: {where} (see /openapi.json)"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{where} is not allowed; allowed: {allowed}"
    else:
        message = f"{where}: {exc.detail}"
    return JSONResponse(error_body(message), status_code=exc.status_code, headers=exc.headers)


async def _on_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(f"internal error ({type(exc).__name__}); the server log has the details"),
        status_code=500,
    )


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER)}


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise Refusal(400, f"{name}: expected a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _bool_param(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise Refusal(400, f"{name}: expected true or false, got {raw!r}")


async def _chunks(spooled: IO[str]) -> AsyncIterator[bytes]:
    try:
        while text := await run_in_threadpool(spooled.read, 256 * 1024):
            yield text.encode()
    finally:
        spooled.close()


class AccessLog:
    """One log line per request: client, method, path, status, bytes sent, time taken."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = 0, 0

        async def logged_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            client = scope.get("client")
            query = scope.get("query_string", b"").decode("latin-1")
            log.info(
                '%s "%s %s%s" %d %dB %.1fms',
                f"{client[0]}:{client[1]}" if client else "-",
                scope["method"],
                scope["path"],
                f"?{query}" if query else "",
                status,
                sent,
                (time.perf_counter() - started) * 1000,
            )
