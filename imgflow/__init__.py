"""imgflow: download large sets of images from the web into storage you own."""

__version__ = "0.1.0"

import os as _os
import sys as _sys

if _sys.argv[:1] == ["-m"] or _os.path.basename(_sys.argv[0]) == "imgflow":
    # The command line: from imgflow's first line on, a signal is one line and exit 130.
    from imgflow.signals import exit_now as _exit_now
    from imgflow.signals import on_signals as _on_signals

    _on_signals(_exit_now)
