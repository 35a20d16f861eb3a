"""A local run's end: its state, failures.json and the notify command."""

from __future__ import annotations

import os
from pathlib import Path

from imgflow.local.folder import DataFolder
from imgflow.local.index import Database, retried, sqlite_errors
from imgflow.local.job import LocalRunResult
from imgflow.local.notifier import failures_json, run_notify_command, write_failures
from imgflow.local.safefs import StorageError, explain, subfolder
from imgflow.local.settings import RunSettings

# A record flush that finds the disk full retries this long, this far apart, before it
# fails the run: a part file that hit ENOSPC is being removed meanwhile.
INDEX_FULL_SECONDS = 0.5
INDEX_FULL_WAIT = 0.05


def consolidate(
    db: Database, settings: RunSettings, folder: DataFolder, run_id: str, duplicates: int, tmp: int
) -> LocalRunResult:
    """Finish the run: its state, failures.json and the notify command.

    The run's state and summary never depend on the disk's room for failures.json: when it
    cannot be written (a full disk), the run says so and the notify command reads the
    failures from memory instead."""
    summary = db.summary(run_id)
    state = "succeeded" if summary.succeeded(settings.tolerate_failures) else "failed"
    failures_file: Path | None = None
    problem = unwritten = ""
    if summary.failed:
        failures_file = folder.path / "runs" / run_id / "failures.json"
        try:
            _write_failures(db, folder, run_id, failures_file.name, tmp)
        except (OSError, StorageError) as exc:
            reason = explain(failures_file, exc) if isinstance(exc, OSError) else exc
            unwritten = f"could not write the failures file: {reason}"
            failures_file = None
        if settings.notify_command:
            problem = run_notify_command(
                settings.notify_command,
                failures_file or failures_json(db.failure_messages(run_id)),
                run_id,
                shell=settings.notify_shell,
            )
    with sqlite_errors(db.path):
        retried(
            lambda: db.finish_run(run_id, state),
            "full",
            seconds=INDEX_FULL_SECONDS,
            pause=INDEX_FULL_WAIT,
            most=INDEX_FULL_WAIT,
        )
    return LocalRunResult(
        run_id, folder.path, summary, duplicates, state, failures_file, problem, {}, unwritten
    )


def _write_failures(db: Database, folder: DataFolder, run_id: str, name: str, tmp: int) -> None:
    """`runs/<run-id>/<name>`, written through the run's temporary folder (raises
    OSError or StorageError; a part file left by a full disk is removed)."""
    runs = folder.folder("runs")
    own = subfolder(runs, run_id)
    try:
        write_failures(own, name, db.failure_messages(run_id), tmp)
    finally:
        os.close(own)
