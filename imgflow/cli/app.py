"""The Typer app: its commands in help order, --version, and the entry point's body."""

from __future__ import annotations

import copy
import os
import sys
from typing import Annotated, NoReturn

import typer

from imgflow.cli.coerce import install
from imgflow.cli.commands import check, demo, deploy, export, report, run, serve, status
from imgflow.cli.help import plain_metavars
from imgflow.signals import exit_now, on_signals

EXIT_CODES = """Exit codes: 0 every image stored or skipped; 1 an image failed (beyond
--tolerate-failures) or a backend error; 2 bad usage, config or input (nothing written);
130 interrupted (finished images are kept)."""

app = typer.Typer(
    name="imgflow",
    help="Download large sets of images from one web host into storage you own.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from imgflow import __version__
        from imgflow.ui.console import out

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


# The short help of each command in `imgflow --help` (one line at 80 columns).
app.command(short_help="Download every image of a job and store it.")(run.run)
app.command(short_help="Show a run's results, or list recent runs.")(status.status)
app.command(short_help="Run again the images that failed or never finished.")(status.retry)
app.command("report", short_help="Write a run as one HTML page.")(report.report_command)
app.command(short_help="Verify the local index against the files.")(check.check)
app.command("export", short_help="Write the index as a CSV, JSONL or Parquet table.")(
    export.export_command
)
app.command(short_help="Run the job service (HTTP API) on this machine.")(serve.serve)
app.command(short_help="Serve the sample flags and download them.")(demo.demo)
app.command("deploy", short_help="Create or update the AWS pipeline.")(deploy.deploy_command)
app.command("teardown", short_help="Delete the AWS pipeline.")(deploy.teardown_command)


def of_command(argv: list[str]) -> typer.Typer:
    """The app with only the command `argv` names, when it names one exactly: the others'
    options are never built (about 20 ms of every start). A tab, or anything else, gets the
    whole app."""
    if len(argv) < 2 or "_IMGFLOW_COMPLETE" in os.environ:
        return app
    named = [
        info
        for info in app.registered_commands
        if argv[1] == (info.name or typer.main.get_command_name(info.callback.__name__))  # type: ignore[union-attr]
    ]
    if len(named) != 1:
        return app
    only = copy.copy(app)
    only.registered_commands = named
    return only


def start() -> None:
    """Run the command line: usage errors, too, are one line and exit 2.

    SIGTERM is SIGINT: either one, at any moment, ends the command with one line and exit
    130 (a run saves what it finished first).
    """
    install()  # (values converted without pydantic where the answer is certain)
    command = typer.main.get_command(of_command(sys.argv))
    plain_metavars(command)
    try:
        code = command(standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        from imgflow.ui.console import error_line

        on_signals(exit_now)
        error_line("interrupted")
        sys.exit(130)
    except Exception as exc:
        message = getattr(exc, "format_message", None)
        if message is None or not isinstance(getattr(exc, "exit_code", None), int):
            raise
        from imgflow.ui.console import error_line

        text = " ".join(str(message()).split())
        if text:  # (no arguments at all: the help was printed instead)
            error_line(text)
        sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
    _leave(code if isinstance(code, int) else 0)


def _leave(code: int) -> NoReturn:
    """Exit with `code` without the interpreter's teardown, where signals are no longer
    handled: a signal in a command's last milliseconds is still one line and 130."""
    on_signals(exit_now)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
