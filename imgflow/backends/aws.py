"""The aws backend: Step Functions executions of the deployed pipeline, results in S3."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgflow.backends.base import Detached, Flags, Listener, ReportOptions, RunView
from imgflow.errors import UsageError

if TYPE_CHECKING:
    from imgflow.aws.client import Aws
    from imgflow.aws.deploy.state import DeploymentOutputs
    from imgflow.aws.job import JobStatus
    from imgflow.config import Config
    from imgflow.documents.listing import Listing
    from imgflow.sources.base import Source

ARN_PREFIX = "arn:"


class AwsBackend:
    """Drives the deployment that `cfg` names."""

    name = "aws"

    def __init__(self, cfg: Config, data_dir: Path | None) -> None:
        # (--data-dir is refused before: `refuse`)
        self.cfg = cfg
        self._target: tuple[Aws, DeploymentOutputs] | None = None

    @staticmethod
    def owns(target: str) -> bool:
        """An execution ARN."""
        return target.startswith(ARN_PREFIX)

    @staticmethod
    def refuse(command: str, flags: Flags) -> None:
        """The local-only flags (--max-batches too), and --new with --via-api."""
        if command == "run":
            if flags.force or flags.refresh or flags.data_dir is not None or flags.report:
                raise UsageError(
                    "--force, --refresh, --data-dir and --report go with the local backend"
                    " (on aws, --new starts a fresh execution of a job submitted before)"
                )
            if flags.network:
                raise UsageError(
                    "--header, --user-agent, --proxy, --no-proxy, --ca-bundle, "
                    "--insecure, --rate and --burst go with the local backend (for aws, "
                    "set fetch.* in imgflow.yaml and deploy)"
                )
            if flags.max_batches:
                raise UsageError(
                    "--max-batches goes with the local backend (on aws the batches in flight"
                    " are job.max_batches at deploy: set it in imgflow.yaml and run imgflow deploy)"
                )
            if flags.new and flags.via_api:
                raise UsageError(
                    "--new goes without --via-api (the API starts a new execution anyway)"
                )
        elif command == "report":
            if flags.data_dir is not None:
                raise UsageError("--data-dir goes with local runs, not an execution ARN")
        elif flags.data_dir is not None:
            raise UsageError("--data-dir goes with the local backend")

    def _deployment(self) -> tuple[Aws, DeploymentOutputs]:
        """The session and the outputs of the deployment of the config."""
        if self._target is None:
            from imgflow.aws.client import from_config
            from imgflow.aws.deploy.state import load_outputs

            outputs = load_outputs(self.cfg)
            if outputs is None:
                raise UsageError(
                    f"deployment {self.cfg.deployment!r} not found: run imgflow deploy first"
                )
            self._target = (from_config(self.cfg), outputs)
        return self._target

    def run(self, spec: Source, flags: Flags, listener: Listener) -> RunView | Detached:
        """Start an execution (or show the one of the same job) and follow it."""
        from imgflow.aws.job import start_job

        cfg = self.cfg
        aws, outputs = self._deployment()
        body = job_body_of(spec, cfg.job.concurrency)
        if flags.via_api:
            from imgflow.aws.job_api import start_via_api

            if not outputs.api_url:
                raise UsageError(f"deployment {cfg.deployment!r} has no HTTP API")
            # api_url is the route's full URL, as deploy recorded it.
            sign = cfg.api.auth == "iam"
            arn = start_via_api(aws, outputs.api_url, body, sign=sign, bucket=outputs.bucket)
            return self._follow(arn, spec.count or 0, flags, listener)
        started = start_job(
            aws,
            outputs.bucket,
            outputs.state_machine_arn,
            body,
            cfg.job.batch_size,
            fresh=flags.new,
        )
        if started.existing:
            listener.note(
                f"this job was submitted before: showing execution {started.execution_arn}"
                " (--new starts a new execution; imgflow retry runs just its failed images)"
            )
        return self._follow(
            started.execution_arn, spec.count or 0, flags, listener, latest=started.existing
        )

    def _follow(
        self, arn: str, count: int, flags: Flags, listener: Listener, latest: bool = False
    ) -> RunView | Detached:
        """Wait for the execution; `latest`: show it with its retries' newer records."""
        from imgflow.aws.job import wait_for_job

        if flags.no_wait:
            return Detached(arn)
        aws, outputs = self._deployment()
        began = time.monotonic()
        watch = listener.watch
        if watch is None:
            status = wait_for_job(aws, outputs.bucket, arn)
        else:
            watch.planned(arn, count, 0)
            status = wait_for_job(
                aws,
                outputs.bucket,
                arn,
                lambda s: watch.polled(s.job_id, s.status.lower(), s.summary, s.batches_done),
            )
        if latest:
            from imgflow.aws.job_latest import with_retries

            status = with_retries(aws, outputs.bucket, outputs.state_machine_arn, status)
        return self._view(status, time.monotonic() - began)

    def _view(self, status: JobStatus, elapsed: float | None) -> RunView:
        ended = None
        if not status.running and status.cause and status.status != "SUCCEEDED":
            ended = f"execution {status.status.lower()}: {status.error or ''} {status.cause}"
        downloads_failed = bool(status.final) and status.summary.failed > 0
        tolerated = downloads_failed and status.summary.succeeded(self.cfg.job.tolerate_failures)
        records = status.records
        notes: tuple[str, ...] = (f"execution: {status.execution_arn}",)
        if status.retries:
            notes += (f"latest outcome of each image, with retries: {', '.join(status.retries)}",)
        return RunView(
            id=status.job_id,
            backend=self.name,
            title=f"execution {status.job_id}",
            state=status.status.lower(),
            summary=status.summary,
            duplicates=status.duplicates,
            records=lambda only_failed: iter(records),
            ok=status.running or status.status == "SUCCEEDED" or tolerated,
            elapsed=elapsed,
            extra={
                "executionArn": status.execution_arn,
                "cause": status.cause,
                "retries": list(status.retries),
            },
            notes=notes,
            ended=ended,
        )

    def status(self, target: str) -> RunView:
        """An execution, by ARN or name, with the newer records of its retries."""
        from imgflow.aws.job import job_status
        from imgflow.aws.job_latest import with_retries
        from imgflow.aws.job_retry import execution_arn_of

        aws, outputs = self._deployment()
        arn = execution_arn_of(outputs.state_machine_arn, target)
        status = job_status(aws, outputs.bucket, arn)
        return self._view(
            with_retries(aws, outputs.bucket, outputs.state_machine_arn, status), None
        )

    def runs(self, limit: int) -> Listing:
        """The recent executions of the deployment."""
        from imgflow.aws.job_list import recent_executions
        from imgflow.documents.listing import executions

        aws, outputs = self._deployment()
        rows = recent_executions(aws, outputs.bucket, outputs.state_machine_arn, limit)
        return executions(rows, self.cfg.deployment)

    def retry(self, target: str, flags: Flags, listener: Listener) -> RunView | Detached | None:
        """A new execution over the failed paths of execution `target`."""
        from imgflow.aws.job_retry import execution_arn_of, failed_paths, start_retry

        aws, outputs = self._deployment()
        arn = execution_arn_of(outputs.state_machine_arn, target)
        failed = failed_paths(aws, outputs.bucket, arn)
        if not failed.paths:
            listener.note(f"nothing to retry: no image failed in execution {failed.name}")
            return None
        started = start_retry(
            aws, outputs.bucket, outputs.state_machine_arn, failed, self.cfg.job.batch_size
        )
        count = len(failed.paths)
        listener.note(f"retrying {count} failed images of {failed.name}: {started.job_id}")
        return self._follow(started.execution_arn, count, flags, listener)

    def report(self, target: str | None, options: ReportOptions) -> Path:
        """Write the page of execution `target` (an ARN) with presigned image links."""
        from imgflow.report.aws import write_aws

        assert target is not None  # (an ARN chose this backend)
        aws, outputs = self._deployment()
        return write_aws(
            aws,
            outputs.bucket,
            self.cfg.storage.prefix,
            target,
            options.output,
            link_seconds=options.link_seconds,
            embed_thumbnails=options.embed_thumbnails,
        )

    def export(self, fmt: str, output: Path | None, run: str | None) -> int:
        """Write the records of job `run` (every job in the bucket when None) as a table."""
        from imgflow.aws.job_export import export_table, job_ids
        from imgflow.documents.export import check_format, write_table

        check_format(fmt, output)
        aws, outputs = self._deployment()
        s3 = aws.s3()
        table = export_table(s3, outputs.bucket, job_ids(s3, outputs.bucket, run))
        return write_table(table, fmt, output)


def job_body_of(spec: Source, concurrency: int) -> dict[str, Any]:
    """The state machine's input for `spec`: the original job body (base URL and resource
    paths) for a source of paths under a base URL; else ``{"urls", "lambdaConcur"}``, each
    item's full URL with its metadata (the plan step runs it in lanes, one per host)."""
    from imgflow.aws.job import job_body, urls_job_body
    from imgflow.sources.paths import PathsSource

    if isinstance(spec, PathsSource):
        return job_body(spec.base_url, spec.paths(), concurrency)
    if spec.base_url is not None:
        raise UsageError("the aws backend runs jobs of a base URL and paths, or of full URLs")
    return urls_job_body(spec.items(), concurrency)
