"""What a command asks of a backend, and the one view of a run every backend answers with.

A backend runs a job, follows it, shows one run, lists recent runs, retries a run's
failures and writes a run's report. Commands choose one through the registry
(imgflow/backends/__init__.py) and never ask which one it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from imgflow.engine.records import ResultRecord, Summary
from imgflow.errors import Interrupted

if TYPE_CHECKING:
    from imgflow.config import Config
    from imgflow.documents.listing import Listing
    from imgflow.engine.politeness import Change
    from imgflow.sources.base import Source


@dataclass(frozen=True)
class RunView:
    """One run as a backend sees it, finished or not.

    `records(only_failed)` streams the records (`only_failed` is a hint: a backend may
    list every record). `extra` holds the backend's own fields of the JSON document
    (between "state" and "duplicates", such as executionArn); `notes` the lines printed
    after the summary line; `ended` why a run ended badly, when the backend knows more
    than its state.
    """

    id: str
    backend: str
    title: str
    state: str
    summary: Summary
    duplicates: int
    records: Callable[[bool], Iterator[ResultRecord]]
    ok: bool
    elapsed: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    ended: str | None = None
    throttles: Mapping[str, int] = field(default_factory=dict)
    failures_file: Path | None = None
    failures_problem: str = ""  # why the failures file could not be written
    notify_problem: str = ""


class RunStopped(Interrupted):
    """A run stopped by a signal once it was saved: the message says where it stopped and
    the command that continues it; `view` is the run so far (`run -o json` prints it)."""

    def __init__(self, message: str, view: RunView) -> None:
        super().__init__(message)
        self.view = view


@dataclass(frozen=True)
class Detached:
    """A run started and not followed (--no-wait): its id."""

    id: str


@dataclass(frozen=True)
class Flags:
    """The command-line flags that go with one backend only (refused by the others)."""

    data_dir: Path | None = None
    force: bool = False
    refresh: bool = False
    report: bool = False
    network: bool = False  # --header, --user-agent, --proxy, ..., --rate, --burst
    no_wait: bool = False
    via_api: bool = False
    new: bool = False
    max_batches: bool = False  # --max-batches (aws: fixed in the deployed definition)


@dataclass(frozen=True)
class ReportOptions:
    """How `imgflow report` writes a page."""

    output: Path | None = None
    thumbnails: bool = True
    embed_thumbnails: bool = False
    link_seconds: int = 168 * 3600


class Watch(Protocol):
    """A run's live progress (on a terminal)."""

    def planned(self, run_id: str, total: int | None, duplicates: int) -> None:
        """The job is planned: `total` unique paths."""

    def record(self, record: ResultRecord) -> None:
        """One path is done."""

    def reading(self, count: int) -> None:
        """The input is still read as the run goes: `count` items so far."""

    def throttled(self, change: Change) -> None:
        """A host asked to slow down, and this is what was done."""

    def polled(self, run_id: str, state: str, summary: Summary, batches_done: int) -> None:
        """A remote run's counts as last polled."""


@dataclass(frozen=True)
class Listener:
    """Who hears a run as it goes: lines for the user and, on a terminal, its progress."""

    note: Callable[[str], None]  # a line for the user ("retrying 3 failed images ...")
    warn: Callable[[str], None]  # a warning ("TLS certificates are not verified ...")
    waiting: Callable[[str], None]  # why the run waits (another run holds the data folder)
    watch: Watch | None = None


class Backend(Protocol):
    """What the commands need of a backend."""

    name: str

    def run(self, spec: Source, flags: Flags, listener: Listener) -> RunView | Detached:
        """Run `spec` (checked flags) and follow it to its end, unless --no-wait."""

    def status(self, target: str) -> RunView:
        """One run, by the id (or name) `status` and `retry` take."""

    def runs(self, limit: int) -> Listing:
        """The `limit` most recent runs."""

    def retry(self, target: str, flags: Flags, listener: Listener) -> RunView | Detached | None:
        """Run again the images that failed in `target`; None when none did."""

    def report(self, target: str | None, options: ReportOptions) -> Path:
        """Write `target`'s report page (default: the newest run); the file written."""

    def export(self, fmt: str, output: Path | None, run: str | None) -> int:
        """Write the results of run `run` (every run when None) as a table in `fmt` to
        `output` (standard output when None); the number of rows written."""


class BackendType(Protocol):
    """A backend class: which targets it owns, which flags it refuses, and how it opens."""

    name: str

    def __call__(self, cfg: Config, data_dir: Path | None) -> Backend: ...

    def owns(self, target: str) -> bool:
        """`target` (a run id, an ARN) can only be this backend's."""
        ...

    def refuse(self, command: str, flags: Flags) -> None:
        """Raise UsageError when `command` got a flag that goes with another backend."""
        ...
