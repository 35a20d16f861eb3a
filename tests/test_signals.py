"""A signal unwinds the command even when it lands where Python drops exceptions.

Python runs a signal handler in whatever code the main thread is running, and that can be a
weakref callback (the import system's module locks use them) or a ``__del__``. An exception
raised there is printed as "Exception ignored in ..." and dropped. A run's first signal
unwinds it as KeyboardInterrupt (imgflow/signals.py) and ignores the signals that follow,
so a dropped KeyboardInterrupt used to lose the signal: the run went on to the end, with a
traceback on stderr (seen once in 20 SIGTERMs at random moments on a loaded machine).
Each test is a real process sent a real signal at exactly such a place.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.processes import signalled

SCRIPT = """
import os, signal, sys, time, weakref
from imgflow.signals import on_signals, unwind

def land_here(*_args):
    os.kill(os.getpid(), signal.SIG{name})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the handler runs in here
        pass

class Doomed:
    def __del__(self):
        land_here()

class Plain:
    pass

on_signals(unwind)
try:
    if "{place}" == "weakref callback":
        thing = Plain()
        ref = weakref.ref(thing, land_here)
        del thing
    else:
        Doomed()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("not interrupted")
except KeyboardInterrupt:
    class Broken:
        def __del__(self):
            raise ValueError("other dropped errors are printed as ever")
    Broken()
    print("interrupted")
    sys.exit(130)
"""


@pytest.mark.parametrize("name", ["TERM", "INT"])
@pytest.mark.parametrize("place", ["weakref callback", "__del__"])
def test_a_signal_inside_a_callback_whose_errors_python_drops_still_unwinds(
    place: str, name: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name, place=place)],
        capture_output=True,
        text=True,
        timeout=60,
        **signalled(),
    )
    assert (proc.returncode, proc.stdout.strip()) == (130, "interrupted"), proc.stderr
    assert "KeyboardInterrupt" not in proc.stderr
    assert "ValueError: other dropped errors are printed as ever" in proc.stderr


ENDS_AT_ONCE = """
import os, signal, time, weakref
from imgflow.signals import exit_now, on_signals, unwind

def land_here(_ref):
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the handler runs in here
        pass

class Plain:
    pass

on_signals(unwind)  # as imgflow.cli.exits.errors does around a command's work
try:
    thing = Plain()
    ref = weakref.ref(thing, land_here)
    del thing
    print("finished")  # the work ends before the signal comes again
finally:
    on_signals(exit_now)
"""


@pytest.mark.parametrize("again", [None, 0.0])
def test_a_signal_taken_back_just_before_the_command_ends_still_ends_it_with_130(
    again: float | None,
) -> None:
    """`again` 0: the signal sent again lands while the hook that took it back still runs
    (as on a loaded machine, where the hook can outlast AGAIN_SECONDS)."""
    code = ENDS_AT_ONCE
    if again is not None:
        code = f"import imgflow.signals\nimgflow.signals.AGAIN_SECONDS = {again}\n" + code
    for _ in range(3 if again is not None else 1):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            **signalled(),
        )
        assert proc.returncode == 130, (proc.stdout, proc.stderr)
        assert proc.stderr == "imgflow: error: interrupted\n"


TURNED = """
import os, signal, sys, time
import typer
from imgflow.cli.exits import errors

def import_in_c():
    # What PyCapsule_Import (run by `import _ssl`) does with a KeyboardInterrupt raised by
    # a signal while it imports `_socket`: it reports ImportError instead.
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:
        raise ImportError('PyCapsule_Import could not import module "_socket"') from None

try:
    with errors():
        import_in_c()
except typer.Exit as done:
    sys.exit(done.exit_code)
"""


def test_an_interrupt_that_c_code_turned_into_another_error_is_still_the_interrupt() -> None:
    """C code that catches an error and raises its own (PyCapsule_Import reports an
    interrupted import as ImportError) hid the signal: the command printed a traceback
    (seen once in 120 SIGTERMs on a loaded machine, in `import ssl`). An error that comes
    while a signal unwinds the command is the signal's: one line and 130."""
    done = subprocess.run(
        [sys.executable, "-c", TURNED], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (130, "imgflow: error: interrupted\n")
