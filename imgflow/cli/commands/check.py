"""`imgflow check`: the local index against the files."""

from __future__ import annotations

from typing import Annotated

import typer

from imgflow.cli.exits import errors
from imgflow.cli.options import ConfigOpt, DataDirOpt, Output, OutputOpt, load_config


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
    Exits 1 when it found problems it did not repair. A folder without an index yet has
    nothing to check (exit 0; -o json prints a report of zero rows).
    """
    with errors():
        import json
        import sys

        from imgflow.backends.local import data_folder
        from imgflow.documents.text import plural
        from imgflow.local.check import CheckReport
        from imgflow.local.check import check as check_folder
        from imgflow.local.folder import DB_NAME
        from imgflow.local.index import has_runs
        from imgflow.ui.console import out, say

        cfg = load_config(config)
        folder = data_folder(cfg, data_dir)
        if not has_runs(folder / DB_NAME):
            # No run has written here yet (or a first one was stopped before it wrote its
            # index's tables): an answer (zero rows), not an error.
            if output is Output.json:
                sys.stdout.write(json.dumps(CheckReport(folder, repaired=repair).to_json()) + "\n")
            else:
                out.print(f"nothing to check: {folder} has no index ({DB_NAME}) yet", markup=False)
            raise typer.Exit(0)
        report = check_folder(folder, repair=repair, on_wait=say)
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
            touched = (
                f"; {report.restamped} restamped (their files' new times recorded)"
                if report.restamped
                else f"; {report.would_restamp} would be restamped (same bytes, new file times:"
                " check --repair records them, a run does too)"
                if report.would_restamp
                else ""
            )
            out.print(
                f"checked {plural(report.checked, 'index row')} in {report.data_dir}:"
                f" {report.intact:,} intact, {len(report.missing):,} missing,"
                f" {len(report.mismatched):,} mismatched,"
                f" {plural(len(report.orphans), 'orphan file')} {done}{touched}",
                markup=False,
            )
    raise typer.Exit(1 if report.problems and not repair else 0)
