"""The backends a command can run on, by name: one module each, one line here.

base.py    the interface (Backend) and the one view of a run (RunView)
local.py   this process, files and SQLite (the default)
aws.py     the deployed Step Functions pipeline
"""

from __future__ import annotations

from imgflow.backends.aws import AwsBackend
from imgflow.backends.base import Backend, BackendType
from imgflow.backends.local import LocalBackend

BACKENDS: dict[str, BackendType] = {"local": LocalBackend, "aws": AwsBackend}


def choose(target: str | None, named: str | None, default: str) -> BackendType:
    """The backend a target (an execution ARN) belongs to, else the one `named`
    (--backend), else `default` (the config's backend)."""
    if target is not None:
        for backend in BACKENDS.values():
            if backend.owns(target):
                return backend
    return BACKENDS[named or default]


__all__ = ["BACKENDS", "Backend", "BackendType", "choose"]
