"""`imgflow export` on aws (moto's Step Functions interpreter running our definition and
handlers): a urls job's result objects as the same table as a local export, in CSV, JSON
Lines and Parquet, each row checked against the DynamoDB index and the stored object; the
metadata's columns round-trip; without --run, every job of the bucket; an unknown job is
one line, exit 2, nothing written."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pipeline_env import FLAGS_DIR, Deployed, invoke_cli
from support.faultserver import FaultServer
from support.replies import Ok, Status
from test_pipeline import run

from imgflow.aws import job_export
from imgflow.aws.client import Aws
from imgflow.aws.runtime.jobs import write_results
from imgflow.documents.export import COLUMNS, write_table
from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.engine.samples import sample_key

GIF = (FLAGS_DIR / "ad" / "ad.gif").read_bytes()
JOB = "export-job"


def _export(config: Path, out: Path, fmt: str, *args: str) -> list[dict[str, Any]]:
    code, _, stderr = invoke_cli(
        "export", "--format", fmt, "-o", str(out), "--config", str(config), *args
    )
    assert code == 0, stderr
    if fmt == "parquet":
        return list(pq.read_table(out).to_pylist())
    if fmt == "csv":
        with out.open(newline="") as stream:
            return list(csv.DictReader(stream))
    return [json.loads(line) for line in out.read_text().splitlines()]


def _text(value: Any) -> str:
    """A value as a CSV cell holds it."""
    return "" if value is None else str(value)


def test_a_urls_jobs_results_export_as_the_local_table_with_their_metadata(
    aws: Aws, config_file: tuple[Path, Deployed], tmp_path: Path
) -> None:
    config, pipeline = config_file
    with FaultServer() as a, FaultServer() as b:
        for n in range(3):
            a.set(f"/{n}.gif", Ok(GIF))
        b.set("/gone.gif", Status(404))
        b.set("/b.gif", Ok(GIF))
        urls: list[Any] = [
            {"url": a.url("/0.gif"), "caption": "zero", "n": 0, "key": "mine-0"},
            a.url("/1.gif"),  # no metadata: empty cells
            {"url": a.url("/2.gif"), "caption": "two", "n": 2},
            {"url": b.url("/gone.gif"), "caption": "gone"},
            {"url": b.url("/b.gif"), "lang": "fr"},
        ]
        execution = run(aws, pipeline, {"urls": urls, "batchSize": 2}, JOB)
    assert execution["status"] == "FAILED", execution  # the 404, and only it
    s3, bucket = aws.s3(), pipeline.bucket
    index = {r["url"]["S"]: r for r in aws.dynamodb().scan(TableName=pipeline.table)["Items"]}
    assert len(index) == 4
    metas = {
        e["url"]: {k: v for k, v in e.items() if k != "url"} for e in urls if isinstance(e, dict)
    }

    tables = {
        fmt: _export(config, tmp_path / f"x.{fmt}", fmt, "--run", JOB)
        for fmt in ("csv", "jsonl", "parquet")
    }
    header = (tmp_path / "x.csv").read_text().splitlines()[0].split(",")
    # the metadata's columns in first-met order; "key" clashes with a fixed column
    assert header == [*COLUMNS, "caption", "n", "meta.key", "lang"]
    for fmt, rows in tables.items():
        cell = _text if fmt == "csv" else (lambda v: v)
        assert [r["url"] for r in rows] == [e if isinstance(e, str) else e["url"] for e in urls], (
            fmt
        )
        for row in rows:
            meta = metas.get(row["url"], {})
            assert row["run"] == JOB and re.fullmatch(
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["time"]
            )
            for name, column in (("caption", "caption"), ("lang", "lang"), ("key", "meta.key")):
                assert row[column] == cell(meta.get(name)), (fmt, row)
            want_n = meta.get("n")  # a number: Parquet's metadata columns are text
            parquet_n = None if want_n is None else str(want_n)
            assert row["n"] == {"csv": _text(want_n), "parquet": parquet_n}.get(fmt, want_n)
            if row["url"] == b.url("/gone.gif"):
                assert (row["outcome"], row["failure_kind"]) == ("failed", "not-found"), row
                assert row["key"] == cell(None) and row["path"] == cell(None)
                continue
            stored = index[row["url"]]
            assert row["outcome"] == "stored" and row["failure_kind"] == cell(None)
            assert row["key"] == stored["key"]["S"]
            assert row["path"] == f"s3://{bucket}/{stored['key']['S']}"
            assert row["sha256"] == stored["sha256"]["S"]
            assert str(row["bytes"]) == stored["bytes"]["N"] == str(len(GIF))
            assert row["content_type"] == stored["contentType"]["S"] == "image/gif"
            assert (str(row["width"]), str(row["height"])) == ("16", "16"), row
            assert (json.loads(stored["meta"]["S"]) if "meta" in stored else {}) == meta
            s3.head_object(Bucket=bucket, Key=stored["key"]["S"])  # the object is there

    # every job of the bucket (the only one here) without --run
    assert _export(config, tmp_path / "all.jsonl", "jsonl") == tables["jsonl"]
    missing = tmp_path / "missing.csv"
    code, _, stderr = invoke_cli(
        "export", "-o", str(missing), "--run", "nope", "--config", str(config)
    )
    assert (
        code == 2 and stderr.strip() == f"imgflow: error: job 'nope' not found in bucket {bucket}"
    )
    assert not missing.exists() and not list(tmp_path.glob(".missing*"))


def test_every_jobs_records_with_their_metadata_columns_in_pages(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # result objects as the download Lambda writes them, two jobs, listed a page at a time
    s3 = aws.s3()
    s3.create_bucket(Bucket="images")
    one = ResultRecord("http://a/1.gif", "1.gif", Outcome.STORED, 200, "images/a/1.gif", 65)
    two = ResultRecord("http://a/2.gif", "2.gif", Outcome.FAILED, 404, error="Could not find")
    meta = {"caption": "one", "n": 1}
    write_results(s3, "images", "job-a", 0, [one], items=[Item(one.url, "k", meta)])
    write_results(s3, "images", "job-a", 1, [two])
    write_results(s3, "images", "job-b", 0, [dataclasses.replace(one, meta={"lang": "fr"})])
    monkeypatch.setattr(job_export, "PAGE", 1)  # one key a page: the listing is paged
    out = tmp_path / "all.jsonl"
    table = job_export.export_table(s3, "images", job_export.job_ids(s3, "images", None))
    assert write_table(table, "jsonl", out) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["run"], r["url"], r["caption"], r["n"], r["lang"]) for r in rows] == [
        ("job-a", one.url, "one", 1, None),
        ("job-a", two.url, None, None, None),
        ("job-b", one.url, None, None, "fr"),
    ]
    assert rows[0]["path"] == "s3://images/images/a/1.gif" and rows[1]["path"] is None
    assert job_export.job_ids(s3, "images", "arn:aws:states:x:1:execution:m:job-b") == ["job-b"]


def test_a_webdataset_jobs_rows_name_their_shard_and_member(aws: Aws, tmp_path: Path) -> None:
    s3 = aws.s3()
    s3.create_bucket(Bucket="images")
    shard = "shards/job-w/00000.tar"  # a stored record's key in a webdataset job
    url = "http://a/p/1.gif"
    stored = ResultRecord(url, url, Outcome.STORED, 200, shard, 65, content_type="image/gif")
    failed = ResultRecord("http://a/2.gif", "2.gif", Outcome.FAILED, 404, error="Could not find")
    write_results(s3, "images", "job-w", 0, [stored, failed])
    out = tmp_path / "w.csv"
    table = job_export.export_table(s3, "images", ["job-w"])
    assert write_table(table, "csv", out) == 2
    with out.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == [*COLUMNS, "shard", "member"]
    assert (rows[0]["shard"], rows[0]["member"]) == (
        f"s3://images/{shard}",
        f"{sample_key(url)}.gif",  # as the shard writer names it (aws/runtime/shards.py)
    )
    assert (rows[1]["shard"], rows[1]["member"]) == ("", "")
