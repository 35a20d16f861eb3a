"""Both event loops a run can turn on (imgflow/engine/loop.py): uvloop's, where installed,
and asyncio's own. Some promises are provoked by a loop's timing (which events one poll
sees first); their tests run on both loops.

- `on_loop(kind, monkeypatch)`: this process's runs on `kind`;
- `loop_env(kind, env)`: the environment of an imgflow process (and its workers) on `kind`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgflow.engine import loop as engine_loop

LOOPS = ("uvloop", "asyncio")
_ASYNCIO_SITE = Path(__file__).resolve().parent / "asyncio_loop"


def on_loop(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "asyncio":
        monkeypatch.setattr(engine_loop, "_factory", lambda: None)


def loop_env(kind: str, env: dict[str, str]) -> dict[str, str]:
    if kind == "uvloop":
        return env
    path = [str(_ASYNCIO_SITE), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(path)}
