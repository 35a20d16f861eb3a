"""Revalidation: `--refresh` re-checks stored images with conditional requests.

Against a real nginx (static files: strong ETag and Last-Modified, 304 on a match) for what
users meet, and the scriptable fault server for exact header sequences. 304 keeps the
stored file untouched (outcome ``unchanged``); 200 replaces it atomically (``updated``);
without `--refresh` a rerun skips, and `--force` downloads everything unconditionally.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.cli_run import FAST_ENV, imgflow_run, run_cli, site
from support.faultserver import FaultServer, Ok, Status
from support.invariants import check_index, sha
from support.nginx import Nginx, Server

from imgflow.aws.runtime.index import index_item, stored_object
from imgflow.demo.images import make_gif
from imgflow.documents.text import summary_line
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched, NotModified
from imgflow.engine.ports import NO_VALIDATORS, Validators
from imgflow.engine.records import Outcome, ResultRecord, Summary
from imgflow.engine.settings import FetchConfig
from imgflow.local.folder import DB_NAME
from imgflow.local.index import Database
from imgflow.local.index.connection import use_wal
from imgflow.local.store import FileStore

FAST = FetchConfig(timeout=5.0, connect_timeout=2.0, total_timeout=10.0, retries=1)
PATHS = [f"{i}.gif" for i in range(6)]


def _outcomes(doc: dict[str, object]) -> dict[str, str]:
    records = doc["results"]
    assert isinstance(records, list)
    return {r["path"]: r["outcome"] for r in records}


def _statuses(web: Nginx, since: int) -> list[str]:
    """The image requests' statuses since `since` (robots.txt requests left out)."""
    return [line.split()[1] for line in web.access_log()[since:] if "/robots.txt" not in line]


def _index(data: Path) -> dict[str, tuple[str, str | None, str | None]]:
    with sqlite3.connect(data / DB_NAME) as conn:
        rows = conn.execute("SELECT url, sha256, etag, last_modified FROM images").fetchall()
    return {str(url).rsplit("/", 1)[1]: (str(s), e, m) for url, s, e, m in rows}


@contextlib.contextmanager
def _stored_then_served(tmp_path: Path, count: int, path: str) -> Iterator[tuple[Nginx, Path, str]]:
    """The first `count` of PATHS served by nginx from `tmp_path/site` and stored by a first
    run: the server, the site folder and the key `path` was stored under."""
    root = site(tmp_path, count)
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        first = imgflow_run(tmp_path, web.url(0, ""), PATHS[:count])
        keys = {r["path"]: r["key"] for r in first["results"]}  # type: ignore[attr-defined]
        yield web, root, str(keys[path])


def _stat(data: Path, key: str) -> tuple[int, int]:
    info = (data / "images" / key).stat()
    return info.st_ino, info.st_mtime_ns


def test_refresh_keeps_what_the_server_confirms_and_replaces_what_changed(tmp_path: Path) -> None:
    root = site(tmp_path, len(PATHS))
    data = tmp_path / "imgflow-data"
    with Nginx(tmp_path / "nginx", [Server(f"location / {{ root {root}; }}")]) as web:
        first = imgflow_run(tmp_path, web.url(0, ""), PATHS, "-c", "4")
        assert set(_outcomes(first).values()) == {"stored"}
        index = _index(data)
        assert all(etag and modified for _, etag, modified in index.values()), index
        keys = {r["path"]: r["key"] for r in first["results"]}  # type: ignore[attr-defined]
        before = {p: _stat(data, keys[p]) for p in PATHS}

        # The server's copy of 1.gif changes: new bytes, a later modification time.
        new = make_gif("changed", 9, target_bytes=5000)
        (root / "1.gif").write_bytes(new)
        later = os.stat(root / "1.gif").st_mtime + 5
        os.utime(root / "1.gif", (later, later))

        seen = len(web.access_log())
        refreshed = imgflow_run(tmp_path, web.url(0, ""), PATHS, "-c", "4", "--refresh", "--report")
        assert refreshed["exit"] == 0, refreshed["stderr"]
        outcomes = _outcomes(refreshed)
        assert outcomes.pop("1.gif") == "updated"
        assert set(outcomes.values()) == {"unchanged"}
        assert sorted(_statuses(web, seen)) == ["200"] + ["304"] * 5
        summary = refreshed["summary"]
        assert summary == {
            "total": 6, "stored": 1, "skipped": 5, "failed": 0, "updated": 1, "unchanged": 5,
        }  # fmt: skip
        page = (data / "runs" / str(refreshed["run"]) / "report.html").read_text()
        assert '<div data-count="updated" data-value="1">' in page
        assert '<div data-count="unchanged" data-value="5">' in page
        assert '<div data-count="stored" data-value="1">' in page
        # 304: the very same file, untouched. 200: the new bytes, indexed with their hash.
        for path in PATHS:
            if path != "1.gif":
                assert _stat(data, keys[path]) == before[path]
        assert (data / "images" / keys["1.gif"]).read_bytes() == new
        assert _index(data)["1.gif"][0] == sha(new)
        assert _index(data)["1.gif"][1] != index["1.gif"][1]  # the new ETag
        check_index(data)

        seen = len(web.access_log())
        again = imgflow_run(tmp_path, web.url(0, ""), PATHS, "-c", "4")
        assert set(_outcomes(again).values()) == {"skipped"}
        assert _statuses(web, seen) == []

        seen = len(web.access_log())
        forced = imgflow_run(tmp_path, web.url(0, ""), PATHS, "-c", "4", "--force")
        assert set(_outcomes(forced).values()) == {"stored"}
        assert _statuses(web, seen) == ["200"] * 6
        check_index(data)


def test_refresh_of_an_image_gone_from_the_server_fails_it_and_keeps_the_stored_file(
    tmp_path: Path,
) -> None:
    data = tmp_path / "imgflow-data"
    with _stored_then_served(tmp_path, 3, "2.gif") as (web, root, key):
        kept = (data / "images" / key).read_bytes()
        (root / "2.gif").unlink()
        refreshed = imgflow_run(tmp_path, web.url(0, ""), PATHS[:3], "--refresh")
    assert refreshed["exit"] == 1
    assert _outcomes(refreshed) == {"0.gif": "unchanged", "1.gif": "unchanged", "2.gif": "failed"}
    assert (data / "images" / key).read_bytes() == kept
    assert "2.gif" in _index(data)
    check_index(data)


def test_a_file_changed_on_disk_is_downloaded_again_by_refresh_not_revalidated(
    tmp_path: Path,
) -> None:
    data = tmp_path / "imgflow-data"
    with _stored_then_served(tmp_path, 2, "0.gif") as (web, root, key):
        (data / "images" / key).write_bytes(b"GIF89a damaged")
        seen = len(web.access_log())
        refreshed = imgflow_run(tmp_path, web.url(0, ""), PATHS[:2], "--refresh")
        # The damaged copy cannot be confirmed by a 304: it is fetched whole.
        assert sorted(_statuses(web, seen)) == ["200", "304"]
    assert _outcomes(refreshed) == {"0.gif": "stored", "1.gif": "unchanged"}
    assert (data / "images" / key).read_bytes() == (root / "0.gif").read_bytes()
    check_index(data)


def test_the_summary_line_says_how_many_were_updated_and_unchanged() -> None:
    summary = Summary()
    for outcome in [Outcome.UPDATED] + [Outcome.UNCHANGED] * 5 + [Outcome.FAILED]:
        summary = summary.add(outcome)
    assert summary_line(summary) == (
        "7 images: 1 stored (1 updated), 5 skipped (5 unchanged), 1 failed"
    )
    assert summary_line(Summary(3, 3, 0, 0)) == "3 images: 3 stored, 0 skipped, 0 failed"


def test_refresh_with_force_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "paths.txt").write_text("a.gif\n")
    done = run_cli(
        "run", "--base-url", "http://127.0.0.1:9", "--paths-file", "paths.txt",
        "--refresh", "--force", cwd=tmp_path, env=FAST_ENV, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--refresh" in lines[0] and "--force" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "imgflow-data").exists()


# -- exact sequences: which validators go out, and what a 304 means ----------------------


def _fetch(server: FaultServer, validators: Validators) -> object:
    """One fetch of /a.gif from `server` with `validators`."""

    async def main() -> object:
        async with Fetcher(FAST, max_connections=2) as fetcher:
            return await fetcher.fetch(server.url("/a.gif"), validators=validators)

    return engine_loop.run(main())


@pytest.mark.parametrize(
    ("validators", "sent"),
    [
        (Validators('"v1"', None), {"if-none-match": '"v1"'}),
        (Validators(None, "Tue, 03 Nov 2026 10:00:00 GMT"),
         {"if-modified-since": "Tue, 03 Nov 2026 10:00:00 GMT"}),
        (Validators('W/"v1"', "Tue, 03 Nov 2026 10:00:00 GMT"),
         {"if-none-match": 'W/"v1"', "if-modified-since": "Tue, 03 Nov 2026 10:00:00 GMT"}),
    ],
)  # fmt: skip
def test_conditional_headers_carry_the_stored_validators(
    validators: Validators, sent: dict[str, str]
) -> None:
    with FaultServer() as server:
        server.set("/a.gif", Status(304, headers={"ETag": '"v2"'}))
        result = _fetch(server, validators)
        headers = server.requests[0].headers
    assert isinstance(result, NotModified)
    assert result.validators.etag == '"v2"'  # the server's newer validator is kept
    conditional = {k: v for k, v in headers.items() if k.startswith("if-")}
    assert conditional == sent


def test_a_200_to_a_conditional_request_is_the_new_image_with_its_validators() -> None:
    body = make_gif("x", 4)

    headers = {"ETag": '"v2"', "Last-Modified": "Wed, 04 Nov 2026 10:00:00 GMT"}
    with FaultServer() as server:
        server.set("/a.gif", Ok(body, headers=headers))
        result = _fetch(server, Validators('"v1"', None))
    assert isinstance(result, Fetched)
    assert result.data == body
    assert result.validators == Validators('"v2"', "Wed, 04 Nov 2026 10:00:00 GMT")


def test_a_304_without_a_conditional_request_is_a_failure_not_an_image() -> None:
    with FaultServer() as server:
        server.set("/a.gif", Status(304))
        result = _fetch(server, NO_VALIDATORS)
    assert not isinstance(result, Fetched | NotModified)


def test_an_interrupt_keeps_a_new_version_that_replaced_a_stored_file(tmp_path: Path) -> None:
    """A revalidated image's new file has replaced the old one when its record is lost:
    removing it would lose the image, so it stays (the stale row sends the next run
    to fetch it again); a new image without its record is removed as before."""
    (tmp_path / "images").mkdir()
    (tmp_path / "tmp").mkdir()
    images = os.open(tmp_path / "images", os.O_RDONLY | os.O_DIRECTORY)
    tmp = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        store = FileStore(images, tmp, fsync=False)
        store.put("old.gif", b"GIF89a v1", "image/gif")
        store.settle(["old.gif"])
        store.put("old.gif", b"GIF89a v2", "image/gif")  # the revalidation's 200
        store.put("new.gif", b"GIF89a new", "image/gif")
        store.seal()
        assert store.discard_unsettled(keep={"old.gif"}) == ["new.gif"]
        store.close()
    finally:
        os.close(images)
        os.close(tmp)
    assert (tmp_path / "images" / "old.gif").read_bytes() == b"GIF89a v2"
    assert not (tmp_path / "images" / "new.gif").exists()


def test_the_dynamodb_index_keeps_the_validators_too() -> None:
    record = ResultRecord(
        url="http://h/a.gif", path="a.gif", outcome=Outcome.STORED, key="images/h/a.gif",
        bytes=10, sha256="ab" * 32, etag='"v1"', last_modified="Tue, 03 Nov 2026 10:00:00 GMT",
    )  # fmt: skip
    item = index_item(record, "bucket", "job", "2026-11-29T00:00:00+00:00")
    assert item["etag"] == {"S": '"v1"'}
    back = stored_object(item)
    assert back.validators == Validators('"v1"', "Tue, 03 Nov 2026 10:00:00 GMT")
    bare = stored_object(index_item(dataclasses.replace(record, etag=None, last_modified=None),
                                    "bucket", "job", "2026-11-29T00:00:00+00:00"))  # fmt: skip
    assert not bare.validators


def open_together(path: Path, count: int) -> list[BaseException]:
    """`count` threads open a Database at `path` at the same moment; what they raised."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            Database(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_databases_opened_at_once_by_several_runs_all_open(tmp_path: Path) -> None:
    """Runs started together on a new data folder each bring its database up to date
    (the revalidation columns): the one that finds a column added meanwhile is done; none
    fails with "duplicate column name"."""
    for attempt in range(8):
        errors = open_together(tmp_path / f"{attempt}.db", 4)
        assert errors == []


class _LockedTwice:
    """A connection whose switch to WAL is refused twice as SQLite refuses it to an open
    that holds a read lock (at once, "database is locked"), then goes through."""

    def __init__(self) -> None:
        self.tries = 0

    def execute(self, sql: str) -> _LockedTwice:
        assert sql == "PRAGMA journal_mode=WAL"
        self.tries += 1
        if self.tries <= 2:
            raise sqlite3.OperationalError("database is locked")
        return self

    def fetchone(self) -> tuple[str]:
        return ("wal",)


def test_a_switch_to_wal_refused_as_locked_is_tried_again() -> None:
    conn = _LockedTwice()
    use_wal(conn)  # type: ignore[arg-type]
    assert conn.tries == 3


def test_a_new_database_opened_at_once_by_several_runs_switches_to_wal_for_each(
    tmp_path: Path,
) -> None:
    """The switch of a new file to WAL takes a lock that SQLite refuses at once, without
    waiting its busy timeout, to an open that holds a read lock: such an open tries again
    (before, about one attempt in ten failed with "stayed locked by another process")."""
    for attempt in range(150):
        path = tmp_path / f"{attempt}.db"
        assert open_together(path, 3) == []
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("etag", "kept"),
    [
        ('"v1"', True),
        ('W/"a b~c"', True),
        ('"' + "x" * 300 + '"', False),  # not a novel
        ('"a\x7fb"', False),  # DEL
        ('"a\tb"', False),  # a control character
        ('"caf\u00e9"', False),  # not ASCII
    ],
)
def test_a_validator_is_kept_only_when_it_is_short_printable_ascii(etag: str, kept: bool) -> None:
    from imgflow.engine.fetch import _validators

    response = httpx.Response(200, headers=[(b"ETag", etag.encode("latin-1"))])
    assert _validators(response).etag == (etag if kept else None)
