"""`imgflow run --urls-file`: tables of full URLs (text, CSV, TSV, JSON Lines, Parquet, .gz)
with their metadata, round-tripped through `imgflow export`; bad rows and bad files; the
same URL from a table and from a base URL is one stored image; dimensions recorded.

The CLI runs as a real process against a real loopback server.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.cli_run import FAST_ENV, run_cli

from imgflow.demo.images import make_gif
from imgflow.demo.server import StaticServer, serve_directory

# name -> (width, height) of the served images
SIZES = {"a.gif": (16, 16), "b.png": (37, 21), "c.jpg": (50, 30), "d e.gif": (8, 8)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StaticServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "a.gif").write_bytes(make_gif("a", 16))
    (root / "d e.gif").write_bytes(make_gif("d", 8))
    Image.new("RGB", SIZES["b.png"], "red").save(root / "b.png")
    Image.new("RGB", SIZES["c.jpg"], "blue").save(root / "c.jpg", quality=80)
    with serve_directory(root) as served:
        yield served


def _rows(server: StaticServer) -> list[dict[str, Any]]:
    return [
        {"url": server.url("a.gif"), "caption": "a flag", "score": 1, "lang": "en"},
        {"url": server.url("b.png"), "caption": "red, wide", "score": 2, "lang": "fr"},
        {"url": server.url("c.jpg"), "caption": 'blue "box"', "score": 3, "lang": "de"},
    ]


def _write(path: Path, kind: str, rows: list[dict[str, Any]]) -> None:
    """`rows` as a table of `kind` at `path` (gzip-compressed when it ends in .gz)."""
    data: bytes
    if kind == "parquet":
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        data = buffer.getvalue()
    elif kind == "jsonl":
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    elif kind == "txt":
        data = ("# my list\n\n" + "".join(f"{row['url']}\n" for row in rows)).encode()
    else:
        text = io.StringIO()
        writer = csv.DictWriter(text, list(rows[0]), delimiter="\t" if kind == "tsv" else ",")
        writer.writeheader()
        writer.writerows(rows)
        data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def _run(cwd: Path, *args: str) -> Any:
    return run_cli("run", *args, "-o", "json", cwd=cwd, env=FAST_ENV, timeout=120)


def _export(cwd: Path, fmt: str, *args: str) -> list[dict[str, Any]]:
    """The rows of `imgflow export --format fmt` (read back with the format's reader)."""
    out = cwd / f"export.{fmt}"
    done = run_cli("export", "--format", fmt, "-o", str(out), *args, cwd=cwd, env=FAST_ENV)
    assert done.returncode == 0, done.stderr
    if fmt == "parquet":
        return list(pq.read_table(out).to_pylist())
    if fmt == "csv":
        with out.open(newline="") as stream:
            return list(csv.DictReader(stream))
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize(
    ("name", "kind", "flags"),
    [
        ("urls.csv", "csv", ()),
        ("urls.tsv", "tsv", ()),
        ("urls.jsonl", "jsonl", ()),
        ("urls.parquet", "parquet", ()),
        ("urls.csv.gz", "csv", ()),
        ("urls.jsonl.gz", "jsonl", ()),
        ("urls.dat", "tsv", ("--input-format", "tsv")),
    ],
)
def test_a_table_and_its_metadata_round_trip_through_export(
    tmp_path: Path, server: StaticServer, name: str, kind: str, flags: tuple[str, ...]
) -> None:
    rows = _rows(server)
    _write(tmp_path / name, kind, rows)
    done = _run(tmp_path, "--urls-file", name, *flags)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"]["stored"] == 3
    typed = kind in ("jsonl", "parquet")  # CSV and TSV cells are text
    for row, result in zip(rows, doc["results"], strict=True):
        assert result["url"] == row["url"]
        want = {k: (v if typed else str(v)) for k, v in row.items() if k != "url"}
        assert result["meta"] == want
        assert (result["width"], result["height"]) == SIZES[row["url"].rsplit("/", 1)[1]]
    exported = {r["url"]: r for r in _export(tmp_path, "jsonl")}
    for row in rows:
        got = exported[row["url"]]
        assert got["outcome"] == "stored" and got["failure_kind"] is None
        assert got["caption"] == row["caption"]
        assert got["score"] == (row["score"] if typed else str(row["score"]))
        assert got["lang"] == row["lang"]
        assert (got["width"], got["height"]) == SIZES[row["url"].rsplit("/", 1)[1]]
        assert Path(got["path"]).read_bytes()  # the stored file
        assert got["key"] == row["url"].removeprefix("http://")


def test_export_writes_csv_and_parquet_and_one_run(tmp_path: Path, server: StaticServer) -> None:
    rows = _rows(server)
    _write(tmp_path / "urls.csv", "csv", rows)
    first = json.loads(_run(tmp_path, "--urls-file", "urls.csv").stdout)["run"]
    (tmp_path / "more.txt").write_text(server.url("d e.gif") + "\n")
    assert _run(tmp_path, "--urls-file", "more.txt").returncode == 0
    for fmt in ("csv", "parquet", "jsonl"):
        every = _export(tmp_path, fmt)
        assert len(every) == 4, fmt
        only = _export(tmp_path, fmt, "--run", first)
        assert [r["url"] for r in only] == [r["url"] for r in rows], fmt
        assert [r["caption"] for r in only] == [r["caption"] for r in rows], fmt
        assert {str(r["width"]) for r in only} == {"16", "37", "50"}, fmt
    header = (tmp_path / "export.csv").read_text().splitlines()[0].split(",")
    assert header[:13] == [
        "url", "key", "path", "bytes", "sha256", "content_type", "width", "height",
        "run", "time", "outcome", "failure_kind", "error",
    ]  # fmt: skip
    assert header[13:] == ["caption", "score", "lang"]
    missing = run_cli("export", "--run", "nope", cwd=tmp_path, env=FAST_ENV)
    assert missing.returncode == 2 and "'nope' not found" in missing.stderr
    aws = run_cli("export", "--backend", "aws", cwd=tmp_path, env=FAST_ENV)
    assert aws.returncode == 2 and "run imgflow deploy first" in aws.stderr


def test_a_url_from_a_table_and_from_a_base_url_is_one_stored_image(
    tmp_path: Path, server: StaticServer
) -> None:
    # another spelling of the same URL: a dot segment, an escaped unreserved letter, a fragment
    (tmp_path / "urls.txt").write_text(server.url("sub/../d%20%65.gif") + "#frag\n")
    table = json.loads(_run(tmp_path, "--urls-file", "urls.txt").stdout)
    assert table["results"][0]["outcome"] == "stored", table
    (tmp_path / "paths.txt").write_text("d e.gif\n")
    paths = json.loads(
        _run(tmp_path, "--base-url", server.base_url, "--paths-file", "paths.txt").stdout
    )
    assert paths["results"][0]["outcome"] == "skipped", paths
    assert paths["results"][0]["key"] == table["results"][0]["key"]
    assert paths["results"][0]["url"] == table["results"][0]["url"]
    assert (paths["results"][0]["width"], paths["results"][0]["height"]) == (8, 8)


def test_bad_rows_fail_with_their_line_number_and_the_others_run(
    tmp_path: Path, server: StaticServer
) -> None:
    lines = [
        "url,caption",  # 1
        f"{server.url('a.gif')},good",  # 2
        "images/x.gif,relative",  # 3
        "ftp://example.com/x.gif,ftp",  # 4
        ",empty",  # 5
        f"{server.url('x' * 3000 + '.gif')},long",  # 6
        "",  # 7 (blank: skipped)
        f"{server.url('c.jpg')},good too",  # 8
    ]
    (tmp_path / "urls.csv").write_text("\n".join(lines) + "\n")
    done = _run(tmp_path, "--urls-file", "urls.csv")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["summary"] == {"total": 6, "stored": 2, "skipped": 0, "failed": 4}
    errors = [r["error"] for r in doc["results"] if r["outcome"] == "failed"]
    assert errors[0].startswith("urls.csv line 3: ") and "not a full URL" in errors[0]
    assert errors[1].startswith("urls.csv line 4: ") and "only http" in errors[1]
    assert errors[2] == "urls.csv line 5: empty URL"
    assert errors[3].startswith("urls.csv line 6: URL is ")
    kinds = {r["failureKind"] for r in doc["results"] if r["outcome"] == "failed"}
    assert kinds == {"invalid-url"}
    metas = [r["meta"]["caption"] for r in doc["results"]]
    assert metas == ["good", "relative", "ftp", "empty", "long", "good too"]


def _shadow_pyarrow(tmp_path: Path) -> dict[str, str]:
    shadow = tmp_path / "shadow" / "pyarrow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no pyarrow here')\n")
    return {**FAST_ENV, "PYTHONPATH": str(shadow.parent)}


BAD_FILE_IDS = [
    "no-url-column",
    "no-header",
    "jsonl-no-field",
    "not-gzip",
    "truncated-gzip",
    "bad-parquet",
    "no-caption-column",
    "with-base-url",
    "with-paths-file",
    "empty",
    "bad-format",
]


@pytest.mark.parametrize(
    ("name", "content", "flags", "expected"),
    [
        ("t.csv", b"link,caption\nhttp://h/a.gif,x\n", (), "t.csv line 1: no column 'url'"),
        ("t.csv", b"http://h/a.gif,x\nhttp://h/b.gif,y\n", (), "t.csv line 1: no header row"),
        ("t.jsonl", b'{"link": "http://h/a.gif"}\n', (), "t.jsonl line 1: no field 'url'"),
        ("t.csv.gz", b"this is no gzip", (), "t.csv.gz: not a readable gzip file"),
        ("t.txt.gz", gzip.compress(b"http://h/a.gif\n" * 500)[:-20], (), "t.txt.gz: not a rea"),
        ("t.parquet", b"PAR1 broken", (), "t.parquet: not a readable Parquet file"),
        ("t.csv", b"url,caption\n", ("--caption-column", "text"), "no caption column 'text'"),
        ("t.txt", b"http://h/a.gif\n", ("--base-url", "http://h"), "--base-url does not go"),
        ("t.txt", b"http://h/a.gif\n", ("--paths-file", "t.txt"), "--paths-file does not go"),
        ("t.txt", b"# nothing\n", (), "t.txt: no URLs"),
        ("t.txt", b"http://h/a.gif\n", ("--input-format", "xml"), "--input-format: expected"),
    ],
    ids=BAD_FILE_IDS,
)
def test_a_bad_file_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, name: str, content: bytes, flags: tuple[str, ...], expected: str
) -> None:
    (tmp_path / name).write_bytes(content)
    done = _run(tmp_path, "--urls-file", name, *flags)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "imgflow-data").exists()


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([{"url": "http://h/a.gif"}]), tmp_path / "t.parquet")
    env = _shadow_pyarrow(tmp_path)
    done = run_cli("run", "--urls-file", "t.parquet", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert "t.parquet: reading Parquet needs pyarrow: pip install 'imgflow[parquet]'" in (
        done.stderr
    )
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "imgflow-data").exists()
    export = run_cli("export", "--format", "parquet", "-o", "x.parquet", cwd=tmp_path, env=env)
    assert export.returncode == 2 and "pip install 'imgflow[parquet]'" in export.stderr


def test_urls_from_stdin_are_streamed(tmp_path: Path, server: StaticServer) -> None:
    text = "".join(json.dumps(row) + "\n" for row in _rows(server))
    done = run_cli(
        "run", "--urls-file", "-", "--input-format", "jsonl", "-o", "json",
        cwd=tmp_path, env=FAST_ENV, input=text,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [r["meta"]["score"] for r in doc["results"]] == [1, 2, 3]
    assert doc["summary"]["stored"] == 3


def test_bad_rows_are_not_retried(tmp_path: Path, server: StaticServer) -> None:
    long_url = server.url("x" * 3000 + ".gif")
    (tmp_path / "urls.txt").write_text(f"{server.url('zz.gif')}\n{long_url}\n")
    run = json.loads(_run(tmp_path, "--urls-file", "urls.txt").stdout)
    assert [r["failureKind"] for r in run["results"]] == ["not-found", "invalid-url"]
    retried = run_cli("retry", run["run"], "-o", "json", cwd=tmp_path, env=FAST_ENV)
    doc = json.loads(retried.stdout)
    assert [r["url"] for r in doc["results"]] == [server.url("zz.gif")], doc


def test_a_large_table_is_streamed_and_its_bad_end_stops_the_run(
    tmp_path: Path, server: StaticServer
) -> None:
    caption = "c" * 4000
    rows = "".join(f"{server.url('a.gif')},{caption} {n}\n" for n in range(2200))
    table = tmp_path / "urls.csv"
    table.write_bytes(b"url,caption\n" + rows.encode() + b"\xff\xfe,broken\n")
    assert table.stat().st_size > 8 << 20  # over CHECKED_BYTES: streamed, not read first
    done = _run(tmp_path, "--urls-file", "urls.csv")
    assert done.returncode == 2, done.stderr
    assert "urls.csv after line" in done.stderr and "not UTF-8 text" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_a_json_lines_row_that_is_not_an_object_fails_alone(
    tmp_path: Path, server: StaticServer
) -> None:
    lines = [json.dumps({"url": server.url("a.gif")}), "{not json", "[1, 2]", json.dumps({})]
    (tmp_path / "urls.jsonl").write_text("\n".join(lines) + "\n")
    doc = json.loads(_run(tmp_path, "--urls-file", "urls.jsonl").stdout)
    assert [r["error"] for r in doc["results"]] == [
        None,
        "urls.jsonl line 2: not JSON (Expecting property name enclosed in double quotes)",
        "urls.jsonl line 3: not a JSON object",
        "urls.jsonl line 4: empty URL",
    ]
    assert [r.get("meta") for r in doc["results"]] == [None, None, None, None]


def test_named_columns_and_a_clashing_metadata_name(tmp_path: Path, server: StaticServer) -> None:
    (tmp_path / "t.csv").write_text(f"link,title,key\n{server.url('a.gif')},Andorra,k1\n")
    done = _run(tmp_path, "--urls-file", "t.csv", "--url-column", "link", "--caption-column",
                "title")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["meta"] == {"caption": "Andorra", "key": "k1"}
    (row,) = _export(tmp_path, "jsonl")
    assert (row["caption"], row["meta.key"], row["key"]) == ("Andorra", "k1", "127.0.0.1:"
                                                             f"{server.port}/a.gif")  # fmt: skip
    again = _run(tmp_path, "--urls-file", "t.csv", "--url-column", "link")
    assert json.loads(again.stdout)["results"][0]["outcome"] == "skipped"
    assert json.loads(again.stdout)["results"][0]["meta"] == {"title": "Andorra", "key": "k1"}
