"""`imgflow serve` as a whole: lock the data folder, bind, serve with uvicorn, stop cleanly.

SIGTERM or SIGINT: stop taking connections and jobs, interrupt the running job (its
finished images and records are saved, and it goes back to the queue), answer the requests
in flight (at most GRACE seconds), exit. A second signal exits at once. A restarted
service resumes the queue, interrupted jobs first in their original order.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from imgflow.config import Config
from imgflow.errors import UsageError
from imgflow.local.folder import DB_NAME, refuse_linked
from imgflow.serve.app import JobApi, Limits, RenderReport, build_app
from imgflow.serve.documents import Documents
from imgflow.serve.guard import Access
from imgflow.serve.openapi import describe
from imgflow.serve.protocol import ConnectionLimits, LimitedH11Protocol
from imgflow.serve.queue import JobQueue
from imgflow.serve.worker import Worker

log = logging.getLogger("imgflow.serve")

GRACE = 3.0
WORKER_GRACE = 10.0
LOCK_NAME = "serve.lock"
BACKLOG = 2048
_ANY_ADDRESS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Options:
    """Where to listen and whether to ask for a token (flags over serve.* config)."""

    host: str
    port: int
    no_auth: bool = False


@dataclass(frozen=True)
class Startup:
    """What the caller tells the user at start."""

    url: str
    token: str | None
    token_generated: bool
    warnings: tuple[str, ...]
    resumed: tuple[str, ...]


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JobService:
    """The service, bound and ready: `start_info` to announce, then `run` until a signal."""

    def __init__(
        self, cfg: Config, data_dir: Path, options: Options, render_report: RenderReport
    ) -> None:
        loopback = is_loopback(options.host)
        warnings: list[str] = []
        if not loopback and options.no_auth:
            raise UsageError(
                f"--no-auth: refusing to listen on {options.host} without a token; "
                "drop --no-auth (a token is generated) or listen on 127.0.0.1"
            )
        if not loopback:
            warnings.append(
                f"listening on {options.host}: anyone who can reach it and has the token can "
                "start jobs, and plain HTTP carries the token unencrypted (use a TLS proxy)"
            )
        token = None if options.no_auth else cfg.serve.token
        generated = not options.no_auth and token is None
        if generated:
            token = secrets.token_urlsafe(24)
        self._setup_logging(cfg.serve.log_file)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"data folder {data_dir}: {exc.strerror}") from None
        refuse_linked(data_dir)
        self._lock_fd = _lock_folder(data_dir)
        self.sock = _bind(options.host, options.port)
        port = int(self.sock.getsockname()[1])
        self.queue = JobQueue(data_dir / DB_NAME)
        resumed = self.queue.recover()
        self.worker = Worker(self.queue, cfg, data_dir)
        documents = Documents(self.queue, self.worker, data_dir / DB_NAME)
        serve = cfg.serve
        self.api = JobApi(
            cfg,
            self.queue,
            self.worker,
            documents,
            Limits(serve.max_body_bytes, serve.max_json_depth, serve.max_queued),
            describe(cfg.api.route, auth=token is not None),
            render_report,
        )
        access = Access(
            port=port,
            token=token,
            hosts=_allowed_hosts(options.host, serve.allowed_hosts),
            origins=frozenset(serve.allowed_origins),
        )
        protocol = LimitedH11Protocol.with_limits(
            ConnectionLimits(serve.read_timeout, serve.max_connections)
        )
        config = uvicorn.Config(
            build_app(self.api, access),
            http=protocol,
            ws="none",
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=int(GRACE),
            backlog=BACKLOG,
        )
        self.server = _Server(config)
        shown = f"[{options.host}]" if ":" in options.host else options.host
        self.startup = Startup(
            url=f"http://{shown}:{port}",
            token=token,
            token_generated=generated,
            warnings=tuple(warnings),
            resumed=tuple(resumed),
        )

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop as the module docstring says."""
        if self.startup.resumed:
            log.info(
                "resuming %d run(s) a crash interrupted: %s",
                len(self.startup.resumed),
                ", ".join(self.startup.resumed),
            )
        waiting = self.queue.queued_count()
        if waiting:
            log.info("%d queued run(s) waiting", waiting)
        self.worker.start()
        try:
            asyncio.run(self._serve())
        finally:
            self.worker.stop()
            if not self.worker.join(WORKER_GRACE):
                log.warning("the running job did not stop in time; it resumes at the next start")
            self.queue.close()
            os.close(self._lock_fd)
            log.info("stopped")

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.server.should_exit:
            self.server.force_exit = True
            return
        log.info(
            "%s: stopping; the running job saves its finished images", signal.Signals(sig).name
        )
        self.api.accepting = False
        self.server.should_exit = True
        self.worker.stop()

    @staticmethod
    def _setup_logging(log_file: str | None) -> None:
        handler: logging.Handler
        if log_file:
            try:
                handler = logging.FileHandler(log_file, encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"serve.log_file: cannot open {log_file} ({exc.strerror})"
                ) from None
        else:
            handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(message)s"))
        for name, level in (("imgflow.serve", logging.INFO), ("uvicorn.error", logging.WARNING)):
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.setLevel(level)
            logger.propagate = False


class _Server(uvicorn.Server):
    """uvicorn's server with the service's own signal handling (see JobService._serve)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


def _allowed_hosts(host: str, extra: tuple[str, ...]) -> frozenset[str] | None:
    names = {name.lower().rstrip(".") for name in extra}
    if host in _ANY_ADDRESS:
        if not names:
            return None
        names |= {"127.0.0.1", "localhost", "::1"}
        return frozenset(names)
    names.add(host.lower())
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "::1"}
    return frozenset(names)


def _lock_folder(data_dir: Path) -> int:
    """Hold `<data-dir>/serve.lock` while serving: one service per data folder."""
    path = data_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(f"{path}: cannot open ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UsageError(
            f"another imgflow serve (pid {other}) already uses the data folder {data_dir}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"--host {host}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)  # before "taking jobs at" is printed: early clients wait, not fail
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
