"""imgflow's command line: parse -> call one library function -> render.

This is the only module that turns errors into messages and exit codes.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape

from imgflow import config as config_mod
from imgflow.config import Config
from imgflow.errors import ConfigError, ImgflowError, UsageError
from imgflow.signals import exit_now, on_signals, unwind

if TYPE_CHECKING:
    from imgflow.aws.client import Aws
    from imgflow.aws.deploy import Step
    from imgflow.aws.deploy.state import DeploymentOutputs
    from imgflow.aws.job import JobStatus
    from imgflow.local.runner import LocalJob, LocalRunResult
    from imgflow.sources.paths import PathsSource

EXIT_CODES = """Exit codes: 0 every image stored or skipped; 1 an image failed (beyond
--tolerate-failures) or a backend error; 2 bad usage, config or input (nothing written);
130 interrupted (finished images are kept)."""

app = typer.Typer(
    name="imgflow",
    help="Download large sets of images from one web host into storage you own.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

out = Console(highlight=False, soft_wrap=False)
if not out.is_terminal:
    out.width = max(out.width, 160)
# Messages never wrap: a path or URL split over two lines breaks copy-paste and grep.
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    """Output formats."""

    table = "table"
    json = "json"


class Backend(StrEnum):
    """Backends."""

    local = "local"
    aws = "aws"


def _error_line(message: str) -> None:
    err.print(f"[bold red]imgflow: error:[/] {escape(message)}")
    err.file.flush()


def _warn(message: str) -> None:
    err.print(f"[bold yellow]imgflow: warning:[/] {escape(message)}")


def _version(value: bool) -> None:
    if value:
        from imgflow import __version__

        out.print(f"imgflow {__version__}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Download large sets of images from one web host into storage you own."""


def _fail(message: str, code: int) -> NoReturn:
    _error_line(message)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn imgflow's errors into one line on stderr and the error's exit code.

    Inside, a signal unwinds as KeyboardInterrupt (so a run saves what it finished);
    outside, it ends the process at once: there is nothing to save (imgflow/signals.py).
    """
    on_signals(unwind)
    try:
        yield
    except ImgflowError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except sqlite3.Error as exc:  # (the local backend names its database; a safety net)
        _fail(f"index database: {exc}", 1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 1)
    finally:
        on_signals(exit_now)


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: ./imgflow.yaml if present)."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Local data folder (default: local.data_dir, imgflow-data)."),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]
BackendOpt = Annotated[Backend | None, typer.Option("--backend", help="local (default) or aws.")]
LimitOpt = Annotated[
    int, typer.Option("--limit", min=1, help="How many recent runs (or executions) to list.")
]
NoWaitOpt = Annotated[
    bool, typer.Option("--no-wait", help="aws: print the execution ARN and return.")
]


def _load_config(path: Path | None) -> Config:
    cfg = config_mod.load(path)
    for warning in config_mod.unknown_env():
        _warn(warning)
    return cfg


@app.command()
def run(
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Base URL the paths are relative to.")
    ] = None,
    paths_file: Annotated[
        str | None,
        typer.Option("--paths-file", help="One path per line ('-' reads stdin; # comments)."),
    ] = None,
    job: Annotated[
        str | None,
        typer.Option(
            "--job", help='JSON body {"baseUrl", "resourcePaths", "lambdaConcur"} (or -).'
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Most requests in flight per batch."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Paths per batch.")
    ] = None,
    max_batches: Annotated[
        int | None, typer.Option("--max-batches", min=1, help="Batches in flight at once.")
    ] = None,
    tolerate_failures: Annotated[
        float | None,
        typer.Option(
            "--tolerate-failures",
            min=0,
            max=100,
            help="Exit 0 when at most this percent of images failed.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if already stored.")
    ] = False,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="Re-check stored images with conditional requests (ETag, Last-Modified):"
            " keep those the server confirms (unchanged), replace those it changed (updated).",
        ),
    ] = False,
    backend: BackendOpt = None,
    no_wait: NoWaitOpt = False,
    via_api: Annotated[
        bool,
        typer.Option(
            "--via-api", help="aws: POST the original body to the HTTP API (SigV4-signed)."
        ),
    ] = False,
    new: Annotated[
        bool,
        typer.Option(
            "--new", help="aws: start a new execution of a job submitted before (skips stored)."
        ),
    ] = False,
    report: Annotated[
        bool,
        typer.Option("--report", help="Write the run's HTML report at the end; prints its path."),
    ] = False,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            help="Extra request header 'Name: value' (repeatable; replaces a fetch.headers "
            "entry of the same name).",
        ),
    ] = None,
    user_agent: Annotated[
        str | None,
        typer.Option("--user-agent", "-A", help="User-Agent header (fetch.user_agent)."),
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option(
            "--proxy",
            help="Proxy for every request, http://[user:password@]host:port (fetch.proxy; "
            "default: HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, NO_PROXY bypasses).",
        ),
    ] = None,
    no_proxy: Annotated[
        bool,
        typer.Option("--no-proxy", help="Use no proxy, whatever the config or environment say."),
    ] = False,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(
            "--ca-bundle",
            help="PEM file of CA certificates to trust instead of the default bundle "
            "(fetch.ca_bundle; default: SSL_CERT_FILE / SSL_CERT_DIR, else certifi's).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Do not verify TLS certificates (prints a warning)."),
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Most requests per second to each host, e.g. 0.5 (fetch.rate; default: "
            "none, but a host that throttles is slowed down on its own).",
        ),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(
            "--burst", min=1, help="Most requests a --rate lets go at once (fetch.burst, 1)."
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Download every image of a job, store it, index it and report each failure."""
    with _errors():
        cfg = _load_config(config)
        cfg = config_mod.with_overrides(
            cfg,
            job={
                "concurrency": concurrency,
                "batch_size": batch_size,
                "max_batches": max_batches,
                "tolerate_failures": tolerate_failures,
            },
            fetch={
                **_fetch_overrides(
                    cfg, header or [], user_agent, proxy, no_proxy, ca_bundle, insecure
                ),
                **_politeness_overrides(rate, burst),
            },
            **{"": {"backend": backend.value if backend else None}},
        )
        network_flags = bool(
            header or user_agent or proxy or no_proxy or ca_bundle or insecure
        ) or (rate, burst) != (None, None)
        from imgflow.sources.job_json import from_job_file
        from imgflow.sources.paths import from_paths_file

        if (paths_file is None) == (job is None):
            raise UsageError("give exactly one of --paths-file or --job")
        if job is not None:
            if base_url is not None:
                raise UsageError("--base-url goes with --paths-file; the job file has baseUrl")
            spec = from_job_file(job)
            if spec.concurrency is not None and concurrency is None:
                cfg = config_mod.with_overrides(cfg, job={"concurrency": spec.concurrency})
        else:
            assert paths_file is not None
            spec = from_paths_file(base_url, paths_file)
        hint = spec.warning()
        if hint is not None:
            _warn(hint)
        try:
            if refresh and force:
                raise UsageError(
                    "--refresh and --force go alone: --refresh re-checks stored images,"
                    " --force downloads every image again"
                )
            if cfg.backend == "aws":
                if force or refresh or data_dir is not None or report:
                    raise UsageError(
                        "--force, --refresh, --data-dir and --report go with the local backend"
                        " (on aws, --new starts a fresh execution of a job submitted before)"
                    )
                if network_flags:
                    raise UsageError(
                        "--header, --user-agent, --proxy, --no-proxy, --ca-bundle, "
                        "--insecure, --rate and --burst go with the local backend (for aws, "
                        "set fetch.* in imgflow.yaml and deploy)"
                    )
                if new and via_api:
                    raise UsageError(
                        "--new goes without --via-api (the API starts a new execution anyway)"
                    )
                code = _run_aws(cfg, spec, output, no_wait, via_api, new)
            elif via_api or no_wait or new:
                raise UsageError("--via-api, --no-wait and --new go with --backend aws")
            else:
                _check_network(cfg)
                result = _run_local(cfg, spec, data_dir, output, force, refresh=refresh)
                code = 0 if result.state == "succeeded" else 1
                if report:
                    from imgflow.report import write_local

                    written = write_local(result.data_dir, result.run_id)
                    err.print(f"report: {written}", markup=False, soft_wrap=True)
        finally:
            spec.cleanup()
    raise typer.Exit(code)


def _politeness_overrides(rate: float | None, burst: int | None) -> dict[str, object]:
    """fetch.rate and fetch.burst from run's flags, named by their flag when wrong."""
    if rate is not None and not rate > 0:  # (also refuses nan)
        raise UsageError(f"--rate: must be greater than 0 requests per second, got {rate:g}")
    return {"rate": rate, "burst": burst}


def _fetch_overrides(
    cfg: Config,
    headers: list[str],
    user_agent: str | None,
    proxy: str | None,
    no_proxy: bool,
    ca_bundle: Path | None,
    insecure: bool,
) -> dict[str, object]:
    """fetch.* overrides from run's flags, each checked and named by its flag."""
    from imgflow.engine.proxy import ProxySettingError, parse_proxy
    from imgflow.engine.request_headers import HeaderError, parse_header

    values: dict[str, object] = {"user_agent": user_agent}
    if user_agent is not None and any(c in user_agent for c in "\r\n\0"):
        raise UsageError("--user-agent: cannot contain CR, LF or NUL")
    if headers:
        names = set()
        for text in headers:
            try:
                names.add(parse_header(text)[0].lower())
            except HeaderError as exc:
                raise UsageError(f"--header: {exc}") from None
        kept = [h for h in cfg.fetch.headers if h.partition(":")[0].strip().lower() not in names]
        values["headers"] = (*kept, *headers)
    if proxy is not None and no_proxy:
        raise UsageError("--proxy and --no-proxy do not go together")
    if proxy is not None:
        try:
            parse_proxy(proxy, "--proxy")
        except ProxySettingError as exc:
            raise UsageError(str(exc)) from None
        values["proxy"] = proxy
    if no_proxy:
        values["no_proxy"] = "*"
    if ca_bundle is not None:
        if not ca_bundle.expanduser().is_file():
            raise UsageError(f"--ca-bundle: {ca_bundle}: no such file")
        values["ca_bundle"] = str(ca_bundle.expanduser().absolute())
    if insecure:
        values["insecure"] = True
    return values


def _check_network(cfg: Config) -> None:
    """The proxy and TLS settings as a fetch would read them (environment included), so a
    bad one stops the run before anything is written; warn when TLS is not verified."""
    from imgflow.engine import tls
    from imgflow.engine.proxy import router

    try:
        router(cfg.fetch)
        tls.check(cfg.fetch)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.fetch.insecure:
        err.print(
            "[yellow]warning:[/] TLS certificates are not verified (--insecure or "
            "fetch.insecure): anyone on the path can read and change the images"
        )


def _aws_target(cfg: Config) -> tuple[Aws, DeploymentOutputs]:
    """The session and the outputs of the deployment of `cfg`."""
    from imgflow.aws.client import from_config
    from imgflow.aws.deploy.state import load_outputs

    outputs = load_outputs(cfg)
    if outputs is None:
        raise UsageError(f"deployment {cfg.deployment!r} not found: run imgflow deploy first")
    return from_config(cfg), outputs


def _start_aws(cfg: Config, spec: PathsSource, via_api: bool, new: bool) -> tuple[Aws, str, str]:
    """Start the job: (session, bucket, execution ARN)."""
    from imgflow.aws.job import job_body, start_job

    aws, outputs = _aws_target(cfg)
    body = job_body(spec.base_url, spec.paths(), cfg.job.concurrency)
    if via_api:
        from imgflow.aws.job_api import start_via_api

        if not outputs.api_url:
            raise UsageError(f"deployment {cfg.deployment!r} has no HTTP API")
        # api_url is the route's full URL, as deploy recorded it.
        sign = cfg.api.auth == "iam"
        return aws, outputs.bucket, start_via_api(aws, outputs.api_url, body, sign=sign)
    started = start_job(
        aws, outputs.bucket, outputs.state_machine_arn, body, cfg.job.batch_size, fresh=new
    )
    if started.existing:
        err.print(
            f"this job was submitted before: showing execution {started.execution_arn}"
            " (--new starts a new execution; imgflow retry runs just its failed images)"
        )
    return aws, outputs.bucket, started.execution_arn


def _run_aws(
    cfg: Config, spec: PathsSource, output: Output, no_wait: bool, via_api: bool, new: bool
) -> int:
    aws, bucket, execution_arn = _start_aws(cfg, spec, via_api, new)
    return _follow_aws(cfg, aws, bucket, execution_arn, spec.count, output, no_wait)


def _follow_aws(
    cfg: Config,
    aws: Aws,
    bucket: str,
    execution_arn: str,
    count: int,
    output: Output,
    no_wait: bool,
) -> int:
    from imgflow.aws.job import wait_for_job
    from imgflow.aws.job_progress import AwsProgress

    if no_wait:
        out.print(execution_arn)
        return 0
    began = time.monotonic()
    if err.is_terminal:
        with AwsProgress(err, count) as progress:
            status = wait_for_job(aws, bucket, execution_arn, progress.update)
    else:
        status = wait_for_job(aws, bucket, execution_arn)
    return _show_aws(cfg, status, output, time.monotonic() - began)


def _show_aws(cfg: Config, status: JobStatus, output: Output, elapsed: float | None) -> int:
    from imgflow.render import results_table, show_table, summary_line, write_json

    if output is Output.json:
        extra = {
            "state": status.status.lower(),
            "executionArn": status.execution_arn,
            "cause": status.cause,
            "duplicates": status.duplicates,
        }
        write_json(sys.stdout, status.job_id, "aws", status.summary, status.records, extra)
    else:
        title = f"execution {status.job_id}"
        if show_table(status.summary):
            out.print(results_table(status.records, status.summary.total, title=title))
        line = summary_line(status.summary, status.duplicates, elapsed)
        out.print(line + f" [{status.status.lower()}]", markup=False)
        out.print(f"execution: {status.execution_arn}", markup=False)
    if status.running:
        return 0
    if status.cause and status.status != "SUCCEEDED":
        err.print(f"execution {status.status.lower()}: {status.error or ''} {status.cause}")
    if status.status == "SUCCEEDED":
        return 0
    downloads_failed = bool(status.final) and status.summary.failed > 0
    ok = downloads_failed and status.summary.succeeded(cfg.job.tolerate_failures)
    return 0 if ok else 1


def _data_dir(cfg: Config, data_dir: Path | None) -> Path:
    return (data_dir or Path(cfg.local.data_dir)).expanduser().absolute()


def _run_local(
    cfg: Config,
    spec: PathsSource,
    data_dir: Path | None,
    output: Output,
    force: bool,
    *,
    refresh: bool = False,
) -> LocalRunResult:
    from imgflow.local.runner import LocalJob

    job = LocalJob(
        source=spec,
        concurrency=cfg.job.concurrency,
        batch_size=cfg.job.batch_size,
        max_batches=cfg.job.max_batches,
        force=force,
        refresh=refresh,
    )
    return _run_local_job(cfg, job, _data_dir(cfg, data_dir), output)


def _run_local_job(
    cfg: Config, job: LocalJob, folder: Path, output: Output, run_id: str | None = None
) -> LocalRunResult:
    from imgflow.local.runner import run_job
    from imgflow.render import RunProgress, throttle_line

    started = time.monotonic()
    if err.is_terminal:
        with RunProgress(err) as progress:
            result = run_job(
                job,
                cfg,
                folder,
                progress,
                run_id,
                on_throttle=progress.throttled,
                on_wait=_say,
            )
    else:
        result = run_job(job, cfg, folder, run_id=run_id, on_wait=_say)
    elapsed = time.monotonic() - started
    _show_local_run(folder, result.run_id, output, result.duplicates, elapsed)
    throttled = throttle_line(result.throttles)
    if throttled is not None:
        err.print(throttled, markup=False)
    if result.failures_file is not None:
        err.print(f"failures: {result.failures_file}")
    if result.notify_problem:
        err.print(f"[yellow]warning:[/] {result.notify_problem}")
    return result


def _say(line: str) -> None:
    err.print(f"imgflow: {line}", markup=False)


def _show_local_run(
    folder: Path, run_id: str, output: Output, duplicates: int, elapsed: float | None
) -> str:
    from imgflow.local.index import Database, sqlite_errors
    from imgflow.local.runner import DB_NAME
    from imgflow.render import TABLE_ROWS, results_table, show_table, summary_line, write_json

    db = Database(folder / DB_NAME, readonly=True)
    try:
        with sqlite_errors(db.path):
            info = db.run_info(run_id)
            if info is None:
                raise UsageError(f"run {run_id!r} not found in {folder / DB_NAME}")
            summary = db.summary(run_id)
            if output is Output.json:
                extra = {"state": info.state, "duplicates": info.duplicates}
                write_json(sys.stdout, run_id, info.backend, summary, db.records(run_id), extra)
            else:
                failures_only = summary.total > TABLE_ROWS  # the table lists only failures then
                if show_table(summary):
                    records = db.records(run_id, only_failed=failures_only)
                    out.print(results_table(records, summary.total, title=f"run {run_id}"))
                out.print(
                    summary_line(summary, info.duplicates, elapsed) + f" [{info.state}]",
                    markup=False,
                )
            return info.state
    finally:
        db.close()


def _backend(cfg: Config, backend: Backend | None, target: str | None) -> str:
    """aws for an execution ARN, else --backend, else the config's backend."""
    if target is not None and target.startswith("arn:"):
        return "aws"
    return backend.value if backend is not None else cfg.backend


@app.command()
def status(
    run_id: Annotated[
        str | None,
        typer.Argument(help="A run id (local) or an execution ARN or name (aws)."),
    ] = None,
    backend: BackendOpt = None,
    limit: LimitOpt = 20,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show a past run's per-image results, or list recent runs (executions on aws)."""
    with _errors():
        cfg = _load_config(config)
        if _backend(cfg, backend, run_id) == "aws":
            if data_dir is not None:
                raise UsageError("--data-dir goes with the local backend")
            aws, outputs = _aws_target(cfg)
            if run_id is None:
                from imgflow.aws.job_list import recent_executions
                from imgflow.render_runs import executions_json, executions_table

                rows = recent_executions(aws, outputs.bucket, outputs.state_machine_arn, limit)
                if output is Output.json:
                    sys.stdout.write(executions_json(rows) + "\n")
                else:
                    out.print(executions_table(rows, cfg.deployment))
                return
            from imgflow.aws.job import job_status
            from imgflow.aws.job_retry import execution_arn_of

            arn = execution_arn_of(outputs.state_machine_arn, run_id)
            code = _show_aws(cfg, job_status(aws, outputs.bucket, arn), output, None)
            raise typer.Exit(code)
        folder = _data_dir(cfg, data_dir)
        from imgflow.local.runner import DB_NAME

        if not (folder / DB_NAME).exists():
            raise UsageError(
                f"no runs yet in {folder} (the data folder comes from --data-dir, "
                f"local.data_dir in ./imgflow.yaml or {config_mod.user_config_path()})"
            )
        if run_id is None:
            _list_runs(folder, output, limit)
            return
        state = _show_local_run(folder, run_id, output, 0, None)
    raise typer.Exit(0 if state == "succeeded" else 1)


def _list_runs(folder: Path, output: Output, limit: int) -> None:
    from imgflow.local.index import Database, sqlite_errors
    from imgflow.local.retry import parents
    from imgflow.local.runner import DB_NAME
    from imgflow.render_runs import runs_json, runs_table

    db = Database(folder / DB_NAME, readonly=True)
    try:
        with sqlite_errors(db.path):
            runs = db.recent_runs(limit)
    finally:
        db.close()
    linked = parents(folder / DB_NAME, [r.id for r in runs])
    if output is Output.json:
        sys.stdout.write(runs_json(runs, linked) + "\n")
    else:
        out.print(runs_table(runs, linked, f"recent runs in {folder}"))


@app.command()
def retry(
    target: Annotated[
        str,
        typer.Argument(help="A run id (local) or an execution ARN or name (aws) to retry."),
    ],
    backend: BackendOpt = None,
    no_wait: NoWaitOpt = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Run again just the images that failed in a run, skipping any stored since.

    The new run (execution on aws) is linked to the one it retries, and `imgflow status`
    shows which run it retries.
    """
    with _errors():
        cfg = _load_config(config)
        if _backend(cfg, backend, target) == "aws":
            if data_dir is not None:
                raise UsageError("--data-dir goes with the local backend")
            code = _retry_aws(cfg, target, output, no_wait)
        else:
            if no_wait:
                raise UsageError("--no-wait goes with --backend aws")
            code = _retry_local(cfg, target, data_dir, output)
    raise typer.Exit(code)


def _retry_aws(cfg: Config, target: str, output: Output, no_wait: bool) -> int:
    from imgflow.aws.job_retry import execution_arn_of, failed_paths, start_retry

    aws, outputs = _aws_target(cfg)
    arn = execution_arn_of(outputs.state_machine_arn, target)
    failed = failed_paths(aws, outputs.bucket, arn)
    if not failed.paths:
        err.print(f"nothing to retry: no image failed in execution {failed.name}")
        return 0
    started = start_retry(
        aws, outputs.bucket, outputs.state_machine_arn, failed, cfg.job.batch_size
    )
    err.print(f"retrying {len(failed.paths)} failed images of {failed.name}: {started.job_id}")
    count = len(failed.paths)
    return _follow_aws(cfg, aws, outputs.bucket, started.execution_arn, count, output, no_wait)


def _retry_local(cfg: Config, run_id: str, data_dir: Path | None, output: Output) -> int:
    from imgflow.local.retry import link, plan_retry
    from imgflow.local.runner import DB_NAME, new_run_id

    folder = _data_dir(cfg, data_dir)
    plan = plan_retry(folder, run_id)
    if plan.failed == 0:
        err.print(f"nothing to retry: no image failed in run {run_id}")
        return 0
    new_id = new_run_id()
    link(folder / DB_NAME, new_id, run_id)
    err.print(f"retrying {plan.failed} failed images of run {run_id}: run {new_id}")
    result = _run_local_job(cfg, plan.job, folder, output, new_id)
    return 0 if result.state == "succeeded" else 1


@app.command("report")
def report_command(
    run_id: Annotated[
        str | None, typer.Argument(help="A local run id (default: the newest run).")
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="HTML file to write (default: <data-dir>/runs/<run>/report.html).",
        ),
    ] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
    thumbnails: Annotated[
        bool,
        typer.Option(
            "--thumbnails/--no-thumbnails",
            help="Make missing thumbnails with Pillow (pip install 'imgflow\\[report]').",
        ),
    ] = True,
    embed_thumbnails: Annotated[
        bool,
        typer.Option(
            "--embed-thumbnails", help="Put the thumbnails inside the page (one file to share)."
        ),
    ] = False,
    link_hours: Annotated[
        int,
        typer.Option(
            "--link-hours", min=1, max=168, help="aws: how long the presigned image links last."
        ),
    ] = 168,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a run as one self-contained HTML page: counts, rate, failures, a gallery.

    The page loads nothing from the network but the images: a local run's are linked
    relative to the page, an execution's by presigned S3 URLs. Prints the file written.
    """
    with _errors():
        from imgflow.report import resolve_run, write_local

        cfg = _load_config(config)
        if run_id is not None and run_id.startswith("arn:"):
            from imgflow.report.aws import write_aws

            if data_dir is not None:
                raise UsageError("--data-dir goes with local runs, not an execution ARN")
            aws, outputs = _aws_target(cfg)
            written = write_aws(
                aws,
                outputs.bucket,
                cfg.storage.prefix,
                run_id,
                output_file,
                link_seconds=link_hours * 3600,
                embed_thumbnails=embed_thumbnails,
            )
        else:
            folder = _data_dir(cfg, data_dir)
            written = write_local(
                folder,
                resolve_run(folder, run_id),
                output_file,
                thumbnails=thumbnails,
                embed_thumbnails=embed_thumbnails,
            )
        out.print(str(written), markup=False)
        if open_page:
            import webbrowser

            webbrowser.open(written.as_uri())
    raise typer.Exit(0)


@app.command()
def check(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Forget rows whose file is gone or wrong and remove orphan files imgflow made,"
            " so the next run fetches those images again.",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Verify the local index against the files: presence, size and sha256 of each image.

    Lists index rows without their file, files unlike their row and files without a row.
    Exits 1 when it found problems it did not repair.
    """
    with _errors():
        import json

        from imgflow.local.check import check as check_folder

        cfg = _load_config(config)
        report = check_folder(_data_dir(cfg, data_dir), repair=repair, on_wait=_say)
        if output is Output.json:
            sys.stdout.write(json.dumps(report.to_json()) + "\n")
        else:
            for title, items in (
                ("missing file", report.missing),
                ("file differs from its row", report.mismatched),
                ("orphan file", report.orphans),
                ("not imgflow's (left alone)", report.foreign),
            ):
                for item in items[:20]:
                    out.print(f"{title}: {item}", markup=False)
                if len(items) > 20:
                    out.print(f"{title}: ... and {len(items) - 20} more", markup=False)
            done = "repaired" if repair else "found"
            out.print(
                f"checked {report.checked} index rows in {report.data_dir}: {report.intact} intact,"
                f" {len(report.missing)} missing, {len(report.mismatched)} mismatched,"
                f" {len(report.orphans)} orphan files {done}",
                markup=False,
            )
    raise typer.Exit(1 if report.problems and not repair else 0)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (serve.host: 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port to listen on (serve.port: 8080).", min=0, max=65535),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Take requests without a bearer token (only on a loopback address).",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run a job service: POST the original body to api.route (default /jobs).

    Accepted jobs are stored in the data folder's imgflow.db before the 202 answer and
    run on the local backend one at a time; a restart resumes them. Clients send
    'Authorization: Bearer <token>' (serve.token, or the one printed at start).
    GET /runs, GET /runs/<id>, GET /runs/<id>/failures, DELETE /runs/<id>; the API is
    described at /openapi.json. Listens on 127.0.0.1 unless --host says otherwise.
    SIGTERM or Ctrl-C stops it; the running job keeps its finished images and resumes
    at the next start.
    """
    with _errors():
        from imgflow.serve.service import JobService, Options

        cfg = _load_config(config)
        options = Options(
            host=cfg.serve.host if host is None else host,
            port=cfg.serve.port if port is None else port,
            no_auth=no_auth,
        )
        service = JobService(cfg, _data_dir(cfg, data_dir), options)
        info = service.startup
        for warning in info.warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
        if info.token is None:
            err.print("imgflow: no token required (--no-auth)")
        elif info.token_generated:
            err.print(
                f"imgflow: token for this start: {info.token} "
                "(send 'Authorization: Bearer <token>'; set serve.token to keep one)",
                soft_wrap=True,
            )
        err.print(
            f"imgflow: taking jobs at {info.url}{cfg.api.route} (SIGTERM or Ctrl-C stops)",
            soft_wrap=True,
        )
        service.run()


DEMO_PORT = 8765
# Demo images are stored under the keys of this base URL whatever port serves them, so a
# second demo (on another port when 8765 is busy) reuses the same folder.
DEMO_KEY_BASE = f"http://127.0.0.1:{DEMO_PORT}"


@app.command()
def demo(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Most requests in flight per batch.")
    ] = 5,
    force: Annotated[bool, typer.Option("--force", help="Download again.")] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Serve the bundled sample flags on 127.0.0.1 and run the demo job against them.

    The job lists the original pipeline's 102 flag paths (ht/ht.gif twice) and zz/zz.gif,
    which is missing on purpose to show the failure report. Exits 0 when exactly that
    one image fails.
    """
    with _errors():
        from imgflow.demo import FLAGS_DIR, PATHS_FILE
        from imgflow.demo.server import serve_directory
        from imgflow.sources.paths import from_paths_file

        cfg = config_mod.with_overrides(_load_config(config), job={"concurrency": concurrency})
        try:
            server = serve_directory(FLAGS_DIR, port=DEMO_PORT)
        except OSError:
            server = serve_directory(FLAGS_DIR)
            _warn(
                f"port {DEMO_PORT} is busy, so the flags are served at {server.base_url}; "
                f"they are still stored under {DEMO_KEY_BASE.split('//')[1]}/"
            )
        with server:
            spec = from_paths_file(server.base_url, str(PATHS_FILE), key_base=DEMO_KEY_BASE)
            err.print(
                f"serving the sample flags at {server.base_url}; this demo runs:\n"
                f"  imgflow run --base-url {server.base_url} --paths-file {PATHS_FILE}"
                f" --concurrency {concurrency}"
            )
            result = _run_local(cfg, spec, data_dir, output, force)
        failed = result.summary.failed
        if failed == 1 and result.failures_file is not None:
            err.print(
                "demo: as expected, zz/zz.gif is missing on purpose and is reported failed "
                f"(see {result.failures_file}); everything else is stored. "
                f"Next: imgflow status {result.run_id}"
            )
            code = 0
        else:
            err.print(f"demo: expected exactly 1 failure (zz/zz.gif), got {failed}")
            code = 1
    raise typer.Exit(code)


ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (default: aws.profile, AWS_PROFILE).")
]
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region", help="AWS region (default: aws.region, AWS_REGION, AWS_DEFAULT_REGION)."
    ),
]


def _aws_config(config: Path | None, profile: str | None, region: str | None) -> Config:
    return config_mod.with_overrides(
        _load_config(config), aws={"profile": profile, "region": region}
    )


def _api_command(cfg: Config, outputs: DeploymentOutputs) -> str | None:
    """The curl command that starts a job through the deployed API, once it exists."""
    from imgflow.aws.deploy.api import curl_command

    if not outputs.api_url:
        return None
    return curl_command(outputs.api_url, outputs.region, cfg.api.auth)


@app.command("deploy")
def deploy_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create or update the AWS pipeline: S3, DynamoDB, SNS, IAM, Lambda, Step Functions, API.

    Idempotent: a second deploy with nothing changed changes nothing. State is saved after
    every step in aws.state_dir (.imgflow/deployed/<deployment>.json).
    """
    with _errors():
        import json

        from imgflow.aws.deploy import deploy
        from imgflow.render_deploy import (
            deploy_json,
            outputs_table,
            plan_summary,
            plan_table,
            step_line,
        )

        cfg = _aws_config(config, profile, region)

        def progress(step: Step) -> None:
            if step.mutates:
                err.print(step_line(step), markup=False)

        result = deploy(cfg, dry_run=dry_run, on_step=progress)
        for warning in result.plan.warnings:
            err.print(f"[bold yellow]warning:[/] {warning}")
        command = _api_command(cfg, result.outputs)
        if output is Output.json:
            out.print_json(json.dumps({**deploy_json(result), "apiCommand": command}))
        else:
            title = "plan (dry run: nothing changed)" if dry_run else "deploy"
            out.print(plan_table(result.plan.steps, title))
            out.print(plan_summary(result.plan.steps), markup=False)
            out.print(outputs_table(result.outputs))
            if command:
                out.print("start a job through the HTTP API (job.json: the original body):")
                out.print(command, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0)


@app.command("teardown")
def teardown_command(
    delete_data: Annotated[
        bool, typer.Option("--delete-data", help="Also delete the images and the index.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Delete the AWS pipeline, newest resources first.

    A bucket with images or a table with index rows is kept unless --delete-data is given
    (which asks to confirm; --yes for scripts). Safe to run twice, or after a failed deploy.
    """
    with _errors():
        import json

        from imgflow.aws.teardown import teardown
        from imgflow.render_deploy import teardown_table

        cfg = _aws_config(config, profile, region)
        if delete_data and not yes:
            if not sys.stdin.isatty():
                raise UsageError("--delete-data deletes every image and index row: add --yes")
            question = f"Delete every image and index row of deployment {cfg.deployment!r}?"
            if not typer.confirm(question, err=True):
                _fail("teardown cancelled; nothing was deleted", 1)
        result = teardown(cfg, delete_data=delete_data)
        if output is Output.json:
            out.print_json(json.dumps(result.to_json()))
        else:
            out.print(teardown_table(result))
        for kind, name, reason in result.kept:
            err.print(f"kept {kind} {name}: {reason}", markup=False)
    raise typer.Exit(0)


def main() -> None:
    """The console script's entry point: usage errors, too, are one line and exit 2.

    SIGTERM is SIGINT: either one, at any moment, ends the command with one line and exit
    130 (a run saves what it finished first).
    """
    on_signals(exit_now)
    try:
        code = app(standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        on_signals(exit_now)
        _error_line("interrupted")
        sys.exit(130)
    except Exception as exc:
        message = getattr(exc, "format_message", None)
        if message is None or not isinstance(getattr(exc, "exit_code", None), int):
            raise
        text = " ".join(str(message()).split())
        if text:  # (no arguments at all: the help was printed instead)
            _error_line(text)
        sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
    _leave(code if isinstance(code, int) else 0)


def _leave(code: int) -> NoReturn:
    """Exit with `code` without the interpreter's teardown, where signals are no longer
    handled: a signal in a command's last milliseconds is still one line and 130."""
    on_signals(exit_now)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
