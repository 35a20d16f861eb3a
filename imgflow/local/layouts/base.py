"""The Layout seam between a local run and where its images go.

A layout is opened for a run (`open_run`): the RunStore it gives is the engine's
ObjectStore port (a key appears only whole, fsynced when asked) plus what the runner needs
around it: "is it stored?" for skipping, the stamps of what it stored for the index, and
interrupt safety (`seal`, then `discard_unsettled` removes what was stored but never
recorded). A layout is opened for reading (`open_reader`) by `imgflow check` and the
report, which read the stored bytes through it and never name a file of an image.

imgflow/local/layouts/files.py is today's layout, one file per image under `images/`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from imgflow.engine.ports import ObjectStore
from imgflow.local.folder import DataFolder


@dataclass(frozen=True, slots=True)
class Stamp:
    """What the layout says of a stored object: its size and modification time."""

    bytes: int
    mtime_ns: int


class RunStore(ObjectStore, Protocol):
    """A run's storage: the engine stores through it; the runner keeps it consistent.

    Everything a run stores is unsettled until the runner has saved its record (`settle`);
    after an interrupt the store is sealed (nothing more is committed) and the unsettled
    objects are discarded, so nothing is left stored without its index row.
    """

    def intact(self, key: str, size: int, mtime_ns: int | None, sha256: str) -> int | None:
        """The modification time of `key`'s object when it is the one indexed, else None.

        Its size must be `size`; when its time is not `mtime_ns` (the folder was copied, the
        file touched), its bytes are hashed and must have `sha256`: the caller restamps the
        row with the time returned."""
        ...

    def written(self, keys: Iterable[str]) -> dict[str, int]:
        """The modification times of the unsettled objects this run stored under `keys`."""
        ...

    def settle(self, keys: Iterable[str]) -> None:
        """The records of these keys are saved: their objects are no longer at risk."""
        ...

    def seal(self) -> None:
        """Commit nothing from now on (an interrupt); commits in progress finish."""
        ...

    def discard_unsettled(self, keep: Collection[str] = ()) -> list[str]:
        """Remove the unsettled objects (but those at `keep` keys); their keys."""
        ...

    def close(self) -> None:
        """Release what the store holds open."""
        ...


class StoredReader(Protocol):
    """The stored objects of a data folder, for `imgflow check` and the report."""

    def stat(self, key: str) -> Stamp | None:
        """The stored object's size and time; None when there is none at `key`."""
        ...

    def open_stored(self, key: str) -> BinaryIO:
        """The stored object's bytes (raises OSError when there is none)."""
        ...

    def iter_stored(self) -> Iterator[tuple[str, bool]]:
        """(key, True for an object the layout made, False for anything else found)."""
        ...

    def remove(self, key: str) -> None:
        """Remove what is stored at `key`, if anything."""
        ...

    def close(self) -> None:
        """Release what the reader holds open."""
        ...


class Layout(Protocol):
    """A way of laying out stored images in a data folder."""

    def open_run(self, folder: DataFolder, tmp: int, *, fsync: bool) -> RunStore:
        """The store of one run, with `tmp` its private temporary folder's descriptor."""
        ...

    def open_reader(self, folder: DataFolder) -> StoredReader:
        """A reader of what is stored in `folder`."""
        ...
