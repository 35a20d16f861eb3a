"""A local run's job (what to fetch, how many at once), what it reports while it works and
at its end, and its id."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from imgflow.engine.breaker import BREAKER_THRESHOLD
from imgflow.engine.records import ResultRecord, Summary
from imgflow.errors import Interrupted
from imgflow.sources.base import Source


@dataclass(frozen=True)
class LocalJob:
    """A validated job: the source of its items and the run's settings."""

    source: Source
    concurrency: int
    batch_size: int
    max_batches: int
    force: bool = False
    refresh: bool = False  # revalidate stored images instead of skipping them
    # Fewer requests in flight than concurrency x max_batches (the descriptors allow no
    # more: imgflow/local/descriptors.py); None: no cap.
    max_in_flight: int | None = None
    workers: int = 1  # processes that fetch and store (imgflow/local/workers/)
    # A source of full URLs (no base URL) is scheduled per host (imgflow.engine.hosts):
    # `concurrency` and the rate per host, at most `total_in_flight` requests in all, and
    # a host paused after `breaker` connection failures in a row.
    total_in_flight: int = 64
    breaker: int = BREAKER_THRESHOLD

    @property
    def per_host(self) -> bool:
        """Whether the items are scheduled per host (they are full URLs, from any host)."""
        return self.source.base_url is None

    @property
    def wanted_in_flight(self) -> int:
        """Requests in flight the job asks for (before the descriptors' cap)."""
        if self.per_host:
            return self.total_in_flight
        return self.concurrency * self.max_batches


class Progress(Protocol):
    """What a run reports while it works."""

    def planned(self, run_id: str, total: int | None, duplicates: int) -> None:
        """The job is planned: `total` unique paths (None: still counting, while a source
        of unknown size is planned as the run goes; called again with the total)."""

    def record(self, record: ResultRecord) -> None:
        """One path is done."""

    def reading(self, count: int) -> None:
        """While the total is not known yet: `count` items of the source read so far."""


@dataclass(frozen=True)
class LocalRunResult:
    """What a finished (or interrupted) local run reports."""

    run_id: str
    data_dir: Path
    summary: Summary
    duplicates: int
    state: str
    failures_file: Path | None
    notify_problem: str
    throttles: Mapping[str, int] = field(default_factory=dict)
    failures_problem: str = ""  # why failures.json could not be written (a full disk)
    host_lines: tuple[str, ...] = ()  # paused hosts, DNS failures per host (a per-host run)


class RunInterrupted(Interrupted):
    """The run was stopped by a signal; what was done so far is saved."""


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261124-190512-3fa9c1``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
