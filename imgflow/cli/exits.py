"""imgflow's errors as one line on stderr and an exit code (imgflow/errors.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from imgflow.errors import ImgflowError
from imgflow.signals import exit_now, on_signals, unwind, unwinding


def fail(message: str, code: int) -> NoReturn:
    """End the command with ``imgflow: error: <message>`` and `code`."""
    from imgflow.ui.console import error_line

    error_line(message)
    raise typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn imgflow's errors into one line on stderr and the error's exit code.

    Inside, a signal unwinds as KeyboardInterrupt (so a run saves what it finished);
    outside, it ends the process at once: there is nothing to save (imgflow/signals.py).
    """
    on_signals(unwind)
    try:
        yield
    except ImgflowError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except sqlite3.Error as exc:  # (the local backend names its database; a safety net)
        fail(f"index database: {exc}", 1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", 1)
    except Exception:
        # C code can catch the signal's KeyboardInterrupt and raise its own error instead
        # (PyCapsule_Import, run by `import _ssl`, raises ImportError): the signal's.
        if not unwinding():
            raise
        fail("interrupted", 130)
    finally:
        on_signals(exit_now)
