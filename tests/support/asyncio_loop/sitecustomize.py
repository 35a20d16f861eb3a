"""Imported at start-up by a process with this folder first on PYTHONPATH: uvloop's import
fails there, so imgflow runs on asyncio's own loop, as where uvloop is not installed."""

import sys

sys.modules["uvloop"] = None  # type: ignore[assignment]
