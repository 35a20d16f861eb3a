"""Connections to `<data-dir>/imgflow.db`: opening, WAL, errors in one line, retries."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from imgflow.local.safefs import StorageError

# How long a statement waits for another process's lock before "database is locked".
BUSY_TIMEOUT_MS = 60_000

T = TypeVar("T")


def explain(path: Path, exc: sqlite3.Error) -> StorageError:
    """One line naming the database, what is wrong with it and the way out."""
    text = str(exc)
    if "malformed" in text or "not a database" in text:
        return StorageError(
            f"{path} is damaged ({text}): move it aside and run again (the images stay;"
            " they are downloaded again into a new index), or restore a copy"
        )
    if "readonly" in text or "read-only" in text:
        return StorageError(f"{path} is read-only ({text}): make it and its folder writable")
    if "unable to open" in text:
        return StorageError(f"cannot open {path} ({text}): check the folder's permissions")
    if "full" in text:
        return StorageError(
            f"cannot write the index {path}: no space left on the device; free some and"
            " run again (stored images are kept)"
        )
    if "locked" in text:
        return StorageError(f"{path} stayed locked by another process ({text}); try again")
    return StorageError(f"{path}: {text}")


@contextlib.contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors into a StorageError naming `path`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise explain(path, exc) from None


def retried(call: Callable[[], T], error: str, *, seconds: float, pause: float, most: float) -> T:
    """`call()`, tried again while it raises a sqlite3.OperationalError whose text holds
    `error`, for about `seconds`; the pauses start at `pause` and double up to `most`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if error not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, most)


def use_wal(conn: sqlite3.Connection) -> None:
    """Switch the database to WAL (a no-op once it is). The switch of a new file needs a
    lock that SQLite refuses at once, without waiting the busy timeout, to a connection
    whose read lock another one waits on (waiting could deadlock); so runs that open a
    new data folder together try again, within the busy timeout."""
    retried(
        lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone(),
        "locked",
        seconds=BUSY_TIMEOUT_MS / 1000,
        pause=0.001,
        most=0.05,
    )


def has_runs(path: Path) -> bool:
    """Whether `path` is an index a run has written its tables into: a first run stopped
    before its schema was written (a signal at the start) leaves the file without them,
    which readers take as no runs yet, as a folder without the file."""
    if path.is_symlink():  # never opened here: the caller's refusal of a linked index says why
        return True
    if not path.is_file():
        return False
    with sqlite_errors(path):
        conn = connect_readonly(path)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
            ).fetchone()
        finally:
            conn.close()
    return found is not None


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that only reads (also from a read-only folder)."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


class Connected:
    """What every table's queries share: the connection and its transactions."""

    path: Path
    conn: sqlite3.Connection

    @contextlib.contextmanager
    def transaction(self, begin: str = "BEGIN") -> Iterator[None]:
        """One write transaction, rolled back on any error (the error is never hidden)."""
        self.conn.execute(begin)
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            raise
