"""The local backend: runs in this process, files under the data folder, SQLite index.

`make_job` and `execute` are the one place that builds a LocalJob and runs it (the job
service's worker runs its jobs through them too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from imgflow.backends.base import Detached, Flags, Listener, ReportOptions, RunStopped, RunView
from imgflow.errors import ConfigError, ImgflowError, UsageError

if TYPE_CHECKING:
    from imgflow.config import Config
    from imgflow.documents.listing import Listing
    from imgflow.engine.politeness import OnChange
    from imgflow.engine.records import ResultRecord
    from imgflow.local.job import LocalJob, LocalRunResult, Progress
    from imgflow.local.layouts.base import Layout
    from imgflow.local.settings import RunSettings
    from imgflow.sources.base import Source


def data_folder(cfg: Config, data_dir: Path | None) -> Path:
    """The data folder: --data-dir, else local.data_dir, as an absolute path."""
    return (data_dir or Path(cfg.local.data_dir)).expanduser().absolute()


def make_job(
    cfg: Config,
    source: Source,
    concurrency: int,
    *,
    force: bool = False,
    refresh: bool = False,
) -> LocalJob:
    """The local runner's job of `source`'s items, batched as `cfg` says."""
    from imgflow.local.job import LocalJob
    from imgflow.local.workers import worker_count

    return LocalJob(
        source=source,
        concurrency=concurrency,
        batch_size=cfg.job.batch_size,
        max_batches=cfg.job.max_batches,
        total_in_flight=cfg.job.max_in_flight,
        breaker=cfg.job.host_failures,
        force=force,
        refresh=refresh,
        workers=worker_count(cfg.local.workers),
    )


def execute(
    job: LocalJob,
    cfg: Config,
    folder: Path,
    *,
    progress: Progress | None = None,
    run_id: str | None = None,
    on_wait: Callable[[str], None] | None = None,
    on_throttle: OnChange | None = None,
    stop: threading.Event | None = None,
    on_warn: Callable[[str], None] | None = None,
    layout: str | None = None,
) -> LocalRunResult:
    """Run `job` into `folder` (imgflow.local.runner.run_job), with no more requests in
    flight than the file descriptor limit allows (`on_warn` hears it when that is fewer);
    `layout` names the storage layout when it is not `output.layout` (a retry's)."""
    from imgflow.local.descriptors import fit
    from imgflow.local.runner import run_job

    in_flight, warning = fit(job.wanted_in_flight)
    if warning:
        job = replace(job, max_in_flight=in_flight)
        if on_warn is not None:
            on_warn(warning)
    settings = run_settings(cfg, layout)
    return run_job(job, settings, folder, progress, run_id, on_wait, on_throttle, stop, on_warn)


def run_settings(cfg: Config, layout: str | None = None) -> RunSettings:
    """What a local run reads of `cfg`: fetching, fsync, tolerated failures, the notify hook;
    its layout is `layout` when given, else `output.layout`."""
    from imgflow.config import engine_fetch
    from imgflow.local.settings import RunSettings

    return RunSettings(
        fetch=engine_fetch(cfg),
        fsync=cfg.local.fsync,
        tolerate_failures=cfg.job.tolerate_failures,
        notify_command=cfg.notify.command,
        notify_shell=cfg.notify.shell,
        layout=layout_of(cfg, layout),
    )


def layout_of(cfg: Config, name: str | None = None) -> Layout:
    """The layout `name` (default: `output.layout`) names, shards of `output.shard_size`
    (ConfigError: parquet without pyarrow)."""
    from imgflow.local.layouts.files import FilesLayout

    name = name or cfg.output.layout
    if name == "webdataset":
        from imgflow.local.layouts.webdataset import webdataset_layout

        return webdataset_layout(cfg.output.shard_size)
    if name == "parquet":
        from imgflow.local.layouts.parquet import parquet_layout

        return parquet_layout(cfg.output.shard_size)
    return FilesLayout()


class NoRuns(UsageError):
    """The data folder has no index yet (`status -o json` answers an empty list)."""


class LocalBackend:
    """Runs in this process into the data folder."""

    name = "local"

    def __init__(self, cfg: Config, data_dir: Path | None) -> None:
        self.cfg = cfg
        self.folder = data_folder(cfg, data_dir)

    @staticmethod
    def owns(target: str) -> bool:
        """A run id could be any backend's."""
        return False

    @staticmethod
    def refuse(command: str, flags: Flags) -> None:
        """The aws-only flags."""
        if command == "run" and (flags.via_api or flags.no_wait or flags.new):
            raise UsageError("--via-api, --no-wait and --new go with --backend aws")
        if command == "retry" and flags.no_wait:
            raise UsageError("--no-wait goes with --backend aws")

    def run(self, spec: Source, flags: Flags, listener: Listener) -> RunView:
        """Check the network settings, then run the job here."""
        self._check_network(listener)
        cfg = self.cfg
        job = make_job(cfg, spec, cfg.job.concurrency, force=flags.force, refresh=flags.refresh)
        return self._execute(job, listener)

    def _check_network(self, listener: Listener) -> None:
        """The proxy and TLS settings as a fetch would read them (environment included),
        so a bad one stops the run before anything is written; warn when TLS is not
        verified."""
        from imgflow.engine import tls
        from imgflow.engine.proxy import router

        try:
            router(self.cfg.fetch)
            tls.check(self.cfg.fetch)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.cfg.fetch.insecure:
            listener.warn(
                "TLS certificates are not verified (--insecure or "
                "fetch.insecure): anyone on the path can read and change the images"
            )

    def _execute(
        self,
        job: LocalJob,
        listener: Listener,
        run_id: str | None = None,
        layout: str | None = None,
    ) -> RunView:
        from imgflow.local.job import RunInterrupted, new_run_id

        watch = listener.watch
        started = time.monotonic()
        run_id = run_id or new_run_id()
        try:
            result = execute(
                job,
                self.cfg,
                self.folder,
                progress=watch,
                run_id=run_id,
                on_wait=listener.waiting,
                on_throttle=None if watch is None else watch.throttled,
                on_warn=listener.warn,
                layout=layout,
            )
        except RunInterrupted as exc:
            raise self._interrupted(run_id, str(exc)) from None
        return self._view(result.run_id, time.monotonic() - started, result)

    def _interrupted(self, run_id: str, message: str) -> ImgflowError:
        """What a run stopped by a signal says: `message` when it is not saved; else
        ``run <id> interrupted at <done>/<total> images`` and the command that continues
        it (two lines of at most 80 characters), with the run so far (RunStopped)."""
        try:
            view = self._view(run_id)
        except ImgflowError:
            from imgflow.local.job import RunInterrupted

            return RunInterrupted(message)
        return RunStopped(self._stopped_at(view), view)

    @staticmethod
    def _stopped_at(view: RunView) -> str:
        run_id, summary = view.id, view.summary
        done = summary.stored + summary.skipped + summary.failed
        # A run stopped while its input was read has no total yet (its retry reads the rest).
        total = f"{summary.total:,}" if view.extra.get("planned", True) else "?"
        return (
            f"run {run_id} interrupted at {done:,}/{total} images\n"
            f"continue with: imgflow retry {run_id}"
        )

    def status(self, target: str) -> RunView:
        """A run of the data folder."""
        self._need_runs()
        return self._view(target)

    def _view(
        self, run_id: str, elapsed: float | None = None, result: LocalRunResult | None = None
    ) -> RunView:
        from imgflow.local.folder import DB_NAME
        from imgflow.local.index import Database, sqlite_errors

        db = Database(self.folder / DB_NAME, readonly=True)
        try:
            with sqlite_errors(db.path):
                info = db.run_info(run_id)
                if info is None:
                    raise UsageError(f"run {run_id!r} not found in {self.folder / DB_NAME}")
                summary = db.summary(run_id)
        finally:
            db.close()
        view = RunView(
            id=run_id,
            backend=info.backend,
            title=f"run {run_id}",
            state=info.state,
            summary=summary,
            duplicates=info.duplicates,
            records=lambda only_failed: self._records(run_id, only_failed),
            ok=info.state == "succeeded",
            elapsed=elapsed,
            extra={"hostNotes": list(info.host_notes)} if info.host_notes else {},
            notes=info.host_notes,
        )
        if not info.planned:  # stopped while its input was read: the total is not known
            unplanned = {"planned": False, "summary": {**summary.to_json(), "total": None}}
            view = replace(view, extra={**view.extra, **unplanned})
        if result is None:
            return view
        return replace(
            view,
            throttles=result.throttles,
            failures_file=result.failures_file,
            failures_problem=result.failures_problem,
            notify_problem=result.notify_problem,
        )

    def _records(self, run_id: str, only_failed: bool) -> Iterator[ResultRecord]:
        from imgflow.local.folder import DB_NAME
        from imgflow.local.index import Database, sqlite_errors

        db = Database(self.folder / DB_NAME, readonly=True)
        try:
            with sqlite_errors(db.path):
                yield from db.records(run_id, only_failed=only_failed)
        finally:
            db.close()

    def _need_runs(self) -> None:
        from imgflow.config import user_config_path
        from imgflow.local.folder import DB_NAME, refuse_linked
        from imgflow.local.index import has_runs

        refuse_linked(self.folder)
        if not has_runs(self.folder / DB_NAME):
            raise NoRuns(
                f"no runs yet in {self.folder} (the data folder comes from --data-dir, "
                f"local.data_dir in ./imgflow.yaml or {user_config_path()})"
            )

    def runs(self, limit: int) -> Listing:
        """The recent runs of the data folder; a retry names its parent."""
        from imgflow.documents.listing import local_runs
        from imgflow.local.folder import DB_NAME
        from imgflow.local.index import Database, sqlite_errors
        from imgflow.local.retry import parents

        self._need_runs()
        db = Database(self.folder / DB_NAME, readonly=True)
        try:
            with sqlite_errors(db.path):
                runs = db.recent_runs(limit)
        finally:
            db.close()
        linked = parents(self.folder / DB_NAME, [r.id for r in runs])
        return local_runs(runs, linked, f"recent runs in {self.folder}")

    def retry(self, target: str, flags: Flags, listener: Listener) -> RunView | Detached | None:
        """A new run of the failed images of run `target`, linked to it."""
        from imgflow.documents.text import plural
        from imgflow.local.folder import DB_NAME
        from imgflow.local.job import new_run_id
        from imgflow.local.retry import link, plan_retry

        self._need_runs()
        plan = plan_retry(self.folder, target)
        if plan.failed == 0 and plan.unread is None:
            listener.note(f"nothing to retry: no image failed in run {target}")
            return None
        if plan.lost is not None:
            listener.warn(
                f"run {target} was stopped while {plan.lost} was read, which cannot be read"
                " again: only the images it planned are retried (run the command again)"
            )
        if plan.layout is not None and plan.layout != self.cfg.output.layout:
            listener.note(f"run {target} stored its images as {plan.layout}: so does its retry")
        new_id = new_run_id()
        link(self.folder / DB_NAME, new_id, target)
        failed = min(plan.parent.summary.failed, plan.failed)
        parts = [plural(failed, "failed image"), plural(plan.failed - failed, "unfinished image")]
        what = " and ".join(part for part in parts if not part.startswith("0 "))
        if plan.unread is None:
            listener.note(f"retrying {what} of run {target}: run {new_id}")
        else:  # the images the run never read are unfinished too, never failed
            what = f"{what} of run {target}, then" if what else f"run {target}'s"
            listener.note(
                f"retrying {what} unfinished images never read"
                f" (reading {plan.unread} again): run {new_id}"
            )
        return self._execute(plan.job, listener, new_id, plan.layout)

    def export(self, fmt: str, output: Path | None, run: str | None) -> int:
        """Write the index (one run's results, or every run's) as a table."""
        from imgflow.local.export import export

        return export(self.folder, fmt, output, run)

    def report(self, target: str | None, options: ReportOptions) -> Path:
        """Write the page of run `target` (default: the newest)."""
        from imgflow.local.folder import refuse_linked
        from imgflow.report import resolve_run, write_local

        refuse_linked(self.folder)
        run_id = resolve_run(self.folder, target)
        if options.output is None:  # runs/<run-id>/report.html: no link on the way
            refuse_linked(self.folder, "runs", run_id)
        return write_local(
            self.folder,
            run_id,
            options.output,
            thumbnails=options.thumbnails,
            embed_thumbnails=options.embed_thumbnails,
        )
