"""imgflow's command line: parse -> call one library function -> render.

app.py        the Typer app and its commands, in help order; the entry point's body
exits.py      the only place that turns errors into messages and exit codes
complete.py   tab completion from complete_table.py (complete_gen.py writes it from the app)
options.py    the options several commands share, the config they load
follow.py     a run followed on stderr (live progress on a terminal), then shown
coerce.py     typer's conversion of a value, without pydantic where the answer is certain
commands/     one module per command (status and retry share one, deploy and teardown)
"""

from __future__ import annotations


def main() -> None:
    """The console script's entry point (and ``python -m imgflow.cli``'s).

    From here on a signal is one line and exit 130, also while Typer, rich and the
    command's modules are still being imported.
    """
    import os
    import sys

    from imgflow.signals import exit_now, on_signals

    on_signals(exit_now)
    if "_IMGFLOW_COMPLETE" in os.environ:  # a tab: answered without loading the app
        from imgflow.cli.complete import answer

        try:
            answered = answer(os.environ)
        except Exception:  # (never a traceback at a tab: Typer answers instead)
            answered = None
        if answered is not None:
            text, code = answered
            if text is not None:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            os._exit(code)
    # httpx imports its own command line (click, rich's syntax and progress, pygments'
    # lexers) when they are installed, as they are beside Typer: about 25 ms of every
    # command's start. None here makes that import fail, and httpx leaves it out.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from imgflow.cli.app import start

    start()
