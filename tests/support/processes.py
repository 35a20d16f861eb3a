"""How tests start the ``imgflow`` processes they signal.

A test run started as a background job (``pytest ... &`` in a script, CI runners) begins with
SIGINT ignored, and children inherit that: Python then never raises KeyboardInterrupt, and a
test's SIGINT is silently dropped. `signalled` gives the child its own session (no terminal's
process group is involved in any delivery) and SIGINT's default handling back.
"""

from __future__ import annotations

import signal
from typing import Any


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signalled() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` of a child the test will signal."""
    return {"start_new_session": True, "preexec_fn": _default_sigint}
