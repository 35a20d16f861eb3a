"""What a local run reads of the configuration, handed to it by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from imgflow.engine.settings import FetchConfig
from imgflow.local.layouts.base import Layout
from imgflow.local.layouts.files import FilesLayout


@dataclass(frozen=True)
class RunSettings:
    """How a local run fetches, stores, judges and notifies.

    `tolerate_failures` is the percentage of failed paths a run may have and still succeed;
    `notify_command` runs with the failures file when a run has failures (through the shell
    when `notify_shell`).
    """

    fetch: FetchConfig = field(default_factory=FetchConfig)
    fsync: bool = True
    tolerate_failures: float = 0.0
    notify_command: str | tuple[str, ...] | None = None
    notify_shell: bool = False
    layout: Layout = field(default_factory=FilesLayout)
