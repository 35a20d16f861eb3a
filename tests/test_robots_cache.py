"""robots.txt answers kept in the local index for 24 hours: a run within a day of another's
read does not ask the server again; an older answer, or a 5xx, is read again.

Loopback servers (tests/support/rawserver.py) log every request: the tests count the
robots.txt requests the server saw.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from support.cli_run import FAST_ENV, run_cli
from support.rawserver import RawServer, ok
from test_robots import ON, robots

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Excluded, Fetched
from imgflow.engine.robots import MAX_AGE, MemoryCache, Stored
from imgflow.local.index import Database
from imgflow.local.index.schema import VERSION

GIF = make_gif("robots-cache")
RULES = "User-agent: *\nDisallow: /no/\n"


def cli_run(tmp_path: Path, server: RawServer, *paths: str, flags: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    (tmp_path / "paths.txt").write_text("\n".join(paths) + "\n")
    return run_cli(
        "run", "--base-url", server.url("/"), "--paths-file", "paths.txt", "-o", "json",
        *flags, cwd=tmp_path, env=FAST_ENV,
    )  # fmt: skip


def robots_reads(server: RawServer) -> int:
    return [path for _, path in server.requests].count("/robots.txt")


def index(tmp_path: Path) -> Path:
    return tmp_path / "imgflow-data" / "imgflow.db"


def age_by(tmp_path: Path, seconds: float) -> None:
    """Set every kept answer's time back by `seconds`."""
    with sqlite3.connect(index(tmp_path)) as conn:
        conn.execute("UPDATE robots SET fetched_at = fetched_at - ?", (seconds,))


def kept(tmp_path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(index(tmp_path)) as conn:
        return conn.execute("SELECT origin, status FROM robots").fetchall()


def test_a_second_run_within_a_day_does_not_read_robots_again(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots(RULES))
        for name in ("a", "b", "no/c"):
            server.set(f"/{name}.gif", ok(GIF))
        first = cli_run(tmp_path, server, "a.gif")
        age_by(tmp_path, MAX_AGE - 3600)  # 23 hours ago
        second = cli_run(tmp_path, server, "b.gif", "no/c.gif")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert robots_reads(server) == 1
    seen = [path for _, path in server.requests]
    assert seen == ["/robots.txt", "/a.gif", "/b.gif"]  # the kept rules still apply
    assert json.loads(second.stdout)["summary"]["excluded"] == 1
    assert kept(tmp_path) == [(server.url("/").rstrip("/"), 200)]


def test_an_answer_older_than_a_day_is_read_again(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots(RULES))
        for name in ("a", "b"):
            server.set(f"/{name}.gif", ok(GIF))
        cli_run(tmp_path, server, "a.gif")
        age_by(tmp_path, MAX_AGE + 60)
        before = time.time()
        second = cli_run(tmp_path, server, "b.gif")
    assert second.returncode == 0, second.stderr
    assert robots_reads(server) == 2
    with sqlite3.connect(index(tmp_path)) as conn:  # the new read replaced the old one
        (at,) = conn.execute("SELECT fetched_at FROM robots").fetchone()
    assert at >= before


def test_a_404_is_kept_too(tmp_path: Path) -> None:
    with RawServer() as server:  # no robots.txt: 404, allow all
        for name in ("a", "b"):
            server.set(f"/{name}.gif", ok(GIF))
        cli_run(tmp_path, server, "a.gif")
        second = cli_run(tmp_path, server, "b.gif")
    assert second.returncode == 0, second.stderr
    assert robots_reads(server) == 1


def test_a_5xx_is_never_kept(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("", "500 Internal Server Error"))
        for name in ("a", "b"):
            server.set(f"/{name}.gif", ok(GIF))
        first = cli_run(tmp_path, server, "a.gif")
        assert kept(tmp_path) == []
        tried = robots_reads(server)  # (and asked again, with backoff, within the run)
        server.set("/robots.txt", robots(RULES))
        second = cli_run(tmp_path, server, "b.gif")
    assert first.returncode == 1  # the host was disallowed for that run
    assert second.returncode == 0, second.stderr
    assert tried >= 1 and "/a.gif" not in [path for _, path in server.requests]
    assert [path for _, path in server.requests][tried:] == ["/robots.txt", "/b.gif"]
    assert kept(tmp_path) == [(server.url("/").rstrip("/"), 200)]


def test_ignore_robots_is_in_the_json_document(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots(RULES))
        server.set("/a.gif", ok(GIF))
        obeyed = cli_run(tmp_path, server, "a.gif")
        ignored = cli_run(tmp_path, server, "a.gif", flags=("--ignore-robots", "--force"))
    assert json.loads(obeyed.stdout)["robots"] == "obeyed"
    assert json.loads(ignored.stdout)["robots"] == "ignored", ignored.stderr


# -- the engine's cache port, and the index's table ----------------------------------------


def fetch_with(server: RawServer, cache: MemoryCache, *paths: str) -> list[object]:
    async def go() -> list[object]:
        async with Fetcher(ON, max_connections=2, env={}, robots_cache=cache) as fetcher:
            return [await fetcher.fetch(server.url(p)) for p in paths]

    return engine_loop.run(go())


def test_the_engine_uses_a_fresh_kept_answer_and_reads_a_stale_one() -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots("User-agent: *\nDisallow: /\n"))
        server.set("/a.gif", ok(GIF))
        origin = server.url("/").rstrip("/")
        allow = Stored(404, b"", time.time() - MAX_AGE + 60)
        (fresh,) = fetch_with(server, MemoryCache({origin: allow}), "/a.gif")
        assert robots_reads(server) == 0 and isinstance(fresh, Fetched)
        stale = MemoryCache({origin: Stored(404, b"", time.time() - MAX_AGE - 1)})
        (result,) = fetch_with(server, stale, "/a.gif")
    assert robots_reads(server) == 1 and isinstance(result, Excluded)
    (new,) = stale.take_new().values()
    assert new.status == 200 and b"Disallow: /" in new.body


def test_the_index_loads_only_answers_younger_than_a_day(tmp_path: Path) -> None:
    db = Database(tmp_path / "imgflow.db")
    now = time.time()
    db.save_robots(
        {
            "http://young": Stored(200, b"User-agent: *\n", now - MAX_AGE + 60),
            "http://old": Stored(200, b"User-agent: *\n", now - MAX_AGE - 60),
        }
    )
    cache = db.robots_cache(now)
    db.close()
    assert set(cache.entries()) == {"http://young"}


def test_a_version_3_index_gains_the_robots_table(tmp_path: Path) -> None:
    Database(tmp_path / "new.db").close()
    with sqlite3.connect(tmp_path / "new.db") as conn:
        made = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'robots'").fetchone()
    Database(tmp_path / "old.db").close()
    with sqlite3.connect(tmp_path / "old.db") as conn:  # as imgflow made it at version 3
        conn.execute("DROP TABLE robots")
        conn.execute("PRAGMA user_version = 3")
    db = Database(tmp_path / "old.db")
    db.save_robots({"http://h": Stored(404, b"", time.time())})
    assert set(db.robots_cache().entries()) == {"http://h"}
    sql = db.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'robots'").fetchone()
    assert sql == made and db.conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
    db.close()


def test_worker_processes_use_the_answers_of_earlier_runs(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots(RULES))
        for i in range(5):
            server.set(f"/{i}.gif", ok(GIF))
        cli_run(tmp_path, server, "0.gif")
        paths = [f"{i}.gif" for i in range(1, 5)]
        second = cli_run(tmp_path, server, *paths, flags=("--workers", "2"))
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["summary"]["stored"] == 4
    assert robots_reads(server) == 1


def test_answers_read_by_workers_are_kept_too(tmp_path: Path) -> None:
    with RawServer() as server:
        server.set("/robots.txt", robots(RULES))
        for i in range(5):
            server.set(f"/{i}.gif", ok(GIF))
        first = cli_run(tmp_path, server, *[f"{i}.gif" for i in range(4)], flags=("--workers", "2"))
        tried = robots_reads(server)  # (once per worker that fetched)
        second = cli_run(tmp_path, server, "4.gif")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert tried >= 1 and robots_reads(server) == tried
    assert kept(tmp_path) == [(server.url("/").rstrip("/"), 200)]
