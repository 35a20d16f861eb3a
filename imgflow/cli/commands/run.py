"""`imgflow run`: download every image of a job on the chosen backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgflow.cli.exits import errors
from imgflow.cli.options import (
    AllOpt,
    BackendOpt,
    ConfigOpt,
    DataDirOpt,
    LayoutOpt,
    NoWaitOpt,
    Output,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    ShardSizeOpt,
    aws_config,
    backend_value,
)

if TYPE_CHECKING:
    from imgflow.backends.base import Flags
    from imgflow.config import Config
    from imgflow.sources.base import Source


@dataclass(frozen=True)
class Network:
    """run's request flags: headers, proxy, TLS and politeness (fetch.*)."""

    headers: list[str]
    user_agent: str | None
    proxy: str | None
    no_proxy: bool
    ca_bundle: Path | None
    insecure: bool
    rate: float | None
    burst: int | None

    @property
    def given(self) -> bool:
        """Any of them was given (the aws backend refuses them)."""
        return bool(
            self.headers
            or self.user_agent
            or self.proxy
            or self.no_proxy
            or self.ca_bundle
            or self.insecure
        ) or (self.rate, self.burst) != (None, None)

    def overrides(self, cfg: Config) -> dict[str, object]:
        """fetch.* overrides, each checked and named by its flag."""
        from imgflow import network_checks
        from imgflow.errors import UsageError

        values: dict[str, object] = {"user_agent": self.user_agent}
        if self.user_agent is not None:
            network_checks.check_user_agent(self.user_agent, "--user-agent")
        if self.headers:
            names = {network_checks.header_name(text, "--header") for text in self.headers}
            kept = [
                h for h in cfg.fetch.headers if h.partition(":")[0].strip().lower() not in names
            ]
            values["headers"] = (*kept, *self.headers)
        if self.proxy is not None and self.no_proxy:
            raise UsageError("--proxy and --no-proxy do not go together")
        if self.proxy is not None:
            network_checks.check_proxy(self.proxy, "--proxy")
            values["proxy"] = self.proxy
        if self.no_proxy:
            values["no_proxy"] = "*"
        if self.ca_bundle is not None:
            network_checks.check_ca_bundle(self.ca_bundle, "--ca-bundle")
            values["ca_bundle"] = str(self.ca_bundle.expanduser().absolute())
        if self.insecure:
            values["insecure"] = True
        return {**values, **self._politeness()}

    def _politeness(self) -> dict[str, object]:
        """fetch.rate and fetch.burst, named by their flag when wrong."""
        from imgflow.errors import UsageError

        rate = self.rate
        if rate is not None and not rate > 0:  # (also refuses nan)
            raise UsageError(f"--rate: must be greater than 0 requests per second, got {rate:g}")
        return {"rate": rate, "burst": self.burst}


@dataclass(frozen=True)
class Table:
    """run's URL table flags: --urls-file and how to read it."""

    urls_file: str | None
    input_format: str | None
    url_column: str | None
    caption_column: str | None

    def source(self, base_url: str | None, paths_file: str | None, job: str | None) -> Source:
        """The source of --urls-file, refused with --base-url, --paths-file or --job."""
        from imgflow.errors import UsageError
        from imgflow.sources.urls import from_urls_file

        if self.urls_file is None:
            for flag, value in (
                ("--input-format", self.input_format),
                ("--url-column", self.url_column),
                ("--caption-column", self.caption_column),
            ):
                if value is not None:
                    raise UsageError(f"{flag} goes with --urls-file")
            return _read_job(base_url, paths_file, job)
        for flag, value in (("--base-url", base_url), ("--paths-file", paths_file), ("--job", job)):
            if value is not None:
                raise UsageError(f"--urls-file takes full URLs: {flag} does not go with it")
        return from_urls_file(
            self.urls_file, self.input_format, self.url_column or "url", self.caption_column
        )


def _read_job(base_url: str | None, paths_file: str | None, job: str | None) -> Source:
    """The job from --paths-file (+ --base-url) or --job."""
    from imgflow.errors import UsageError
    from imgflow.sources.job_json import from_job_file
    from imgflow.sources.paths import from_paths_file

    if (paths_file is None) == (job is None):
        raise UsageError("give exactly one of --paths-file, --job or --urls-file")
    if job is not None:
        if base_url is not None:
            raise UsageError("--base-url goes with --paths-file; the job file has baseUrl")
        return from_job_file(job)
    assert paths_file is not None
    return from_paths_file(base_url, paths_file)


def _warn_of_doubled_path(spec: Source) -> None:
    from imgflow.sources.paths import PathsSource
    from imgflow.ui.console import warn

    if not isinstance(spec, PathsSource):
        return
    hint = spec.warning()
    if hint is not None:
        warn(hint)


HOST_CONCURRENCY = 64  # more requests at once than a web host is likely to take from one client


def _warn_of_crowding(concurrency: int) -> None:
    if concurrency > HOST_CONCURRENCY:
        from imgflow.ui.console import warn

        warn(
            f"-c {concurrency:,}: more than {HOST_CONCURRENCY} requests at once to one host"
            " are often refused or throttled (imgflow slows down when it is)"
        )


def _run_job(cfg: Config, spec: Source, flags: Flags, output: Output, all_rows: bool) -> int:
    """Run `spec` on the config's backend and show it; the exit code."""
    from dataclasses import replace

    from imgflow.backends import BACKENDS
    from imgflow.backends.base import ReportOptions, RunView
    from imgflow.cli.follow import follow, shown
    from imgflow.errors import UsageError
    from imgflow.ui.console import err

    if flags.refresh and flags.force:
        raise UsageError(
            "--refresh and --force go alone: --refresh re-checks stored images,"
            " --force downloads every image again"
        )
    kind = BACKENDS[cfg.backend]
    kind.refuse("run", flags)
    backend = kind(cfg, flags.data_dir)
    robots = "obeyed" if cfg.etiquette.robots else "ignored"
    with printed_when_stopped(output, robots=robots):
        outcome = follow(backend, lambda listener: backend.run(spec, flags, listener))
    if isinstance(outcome, RunView):  # the JSON document says whether robots.txt was read
        outcome = replace(outcome, extra={**outcome.extra, "robots": robots})
    code = shown(outcome, output, all_rows)
    if flags.report and isinstance(outcome, RunView):
        written = backend.report(outcome.id, ReportOptions())
        err.print(f"report: {written}", markup=False, soft_wrap=True)
    return code


@contextmanager
def printed_when_stopped(output: Output, **extra: object) -> Iterator[None]:
    """With -o json, a run (or retry) stopped by a signal prints the run so far, saying
    where it stopped (`"interrupted"`), with `extra` fields; it still exits 130."""
    from dataclasses import replace

    from imgflow.backends.base import RunStopped
    from imgflow.ui.run import show_run

    try:
        yield
    except RunStopped as exc:
        if output is Output.json:
            fields = {**exc.view.extra, **extra, "interrupted": str(exc)}
            show_run(replace(exc.view, extra=fields), as_json=True)
        raise


def _workers(value: str | None) -> int | str | None:
    """--workers as local.workers: a number of processes, or auto."""
    if value is None:
        return None
    from imgflow.local.workers import worker_count

    try:
        worker_count(value)
    except ValueError as exc:
        from imgflow.errors import UsageError

        raise UsageError(f"--workers: {exc}") from None
    return "auto" if value == "auto" else int(value)


def run(
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", metavar="URL", help="Base URL the paths are relative to."),
    ] = None,
    paths_file: Annotated[
        str | None,
        typer.Option(
            "--paths-file", metavar="FILE", help="One path per line ('-' reads stdin; # comments)."
        ),
    ] = None,
    job: Annotated[
        str | None,
        typer.Option(
            "--job",
            metavar="FILE",
            help='JSON body {"baseUrl", "resourcePaths", "lambdaConcur"} (or -).',
        ),
    ] = None,
    urls_file: Annotated[
        str | None,
        typer.Option(
            "--urls-file",
            metavar="FILE",
            help="Full http(s) URLs: one a line, or a CSV/TSV/JSONL/Parquet table"
            " (.gz too; '-' reads stdin).",
        ),
    ] = None,
    input_format: Annotated[
        str | None,
        typer.Option(
            "--input-format",
            metavar="txt|csv|tsv|jsonl|parquet",
            help="The --urls-file's format (default: from its extension).",
        ),
    ] = None,
    url_column: Annotated[
        str | None,
        typer.Option("--url-column", metavar="NAME", help="The table's URL column (url)."),
    ] = None,
    caption_column: Annotated[
        str | None,
        typer.Option(
            "--caption-column",
            metavar="NAME",
            help="The table's caption column (caption, when there is one); other columns"
            " are kept as each image's metadata.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Most requests in flight per batch (job.concurrency; default 5).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Paths per batch (job.batch_size; default 250)."),
    ] = None,
    max_batches: Annotated[
        int | None,
        typer.Option(
            "--max-batches", min=1, help="Batches in flight at once (job.max_batches; default 4)."
        ),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            "--max-in-flight",
            min=1,
            help="Most requests in flight across all hosts, for full URLs from many hosts"
            " (job.max_in_flight; default 64).",
        ),
    ] = None,
    tolerate_failures: Annotated[
        float | None,
        typer.Option(
            "--tolerate-failures",
            min=0,
            max=100,
            help="Exit 0 when at most this percent of images failed"
            " (job.tolerate_failures; default 0).",
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
            metavar="'NAME: VALUE'",
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
            metavar="URL",
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
    workers: Annotated[
        str | None,
        typer.Option(
            "--workers",
            metavar="N|auto",
            help="local: processes that fetch and store, sharing each host's limits"
            " (local.workers; default 1; auto: one per core, at most 8).",
        ),
    ] = None,
    layout: LayoutOpt = None,
    shard_size: ShardSizeOpt = None,
    ignore_robots: Annotated[
        bool,
        typer.Option(
            "--ignore-robots",
            help="Do not read robots.txt (sites you own or may crawl; logged, and opt-out"
            " headers still apply: etiquette.opt_out).",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    output: OutputOpt = Output.table,
    all_rows: AllOpt = False,
) -> None:
    """Download every image of a job, store it, index it and report each failure."""
    with errors():
        from imgflow.backends.base import Flags
        from imgflow.cli.etiquette import announce, listen_to_engine
        from imgflow.config import with_overrides
        from imgflow.errors import UsageError

        network = Network(
            header or [], user_agent, proxy, no_proxy, ca_bundle, insecure, rate, burst
        )
        cfg = aws_config(config, profile, region)
        cfg = with_overrides(
            cfg,
            backend=backend_value(backend),
            job={
                "concurrency": concurrency,
                "batch_size": batch_size,
                "max_batches": max_batches,
                "max_in_flight": max_in_flight,
                "tolerate_failures": tolerate_failures,
            },
            fetch=network.overrides(cfg),
            local={"workers": _workers(workers)},
            output={"layout": layout, "shard_size": shard_size},
            etiquette={"robots": False if ignore_robots else None},
        )
        if ignore_robots and cfg.backend == "aws":
            raise UsageError(
                "--ignore-robots goes with --backend local (aws: etiquette.robots: false, then"
                " deploy)"
            )
        if workers not in (None, "1") and cfg.backend == "aws":
            raise UsageError(
                "--workers goes with --backend local (on aws the batches in flight are"
                " job.max_batches at deploy)"
            )
        if (layout or shard_size) and cfg.backend == "aws":
            raise UsageError(
                "--layout and --shard-size go with --backend local (aws: output.layout in"
                " imgflow.yaml, then deploy; a shard per batch)"
            )
        listen_to_engine()
        table = Table(urls_file, input_format, url_column, caption_column)
        spec = table.source(base_url, paths_file, job)
        if spec.concurrency is not None and concurrency is None:
            cfg = with_overrides(cfg, job={"concurrency": spec.concurrency})
        _warn_of_doubled_path(spec)
        _warn_of_crowding(cfg.job.concurrency)
        flags = Flags(
            data_dir=data_dir,
            force=force,
            refresh=refresh,
            report=report,
            network=network.given,
            no_wait=no_wait,
            via_api=via_api,
            new=new,
            max_batches=max_batches is not None,
        )
        try:
            code = _run_job(cfg, spec, flags, output, all_rows)
        finally:
            spec.cleanup()
        announce(cfg, ignore_robots)  # after the run: bad input stays one line
    raise typer.Exit(code)
