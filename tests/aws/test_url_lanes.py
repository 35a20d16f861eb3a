"""A job of full URLs from many hosts on moto's Step Functions interpreter, running our
definition and handlers: batches hold one host each, each host's batches form one lane run
one batch after the other, so each host's own counter never sees more than the job's
concurrency in flight while the lanes of different hosts run side by side; every item's
metadata reaches its DynamoDB row and its result record; a bad entry fails on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import pytest
from lambda_invoke import patched
from pipeline_env import FLAGS_DIR, Deployed, deploy_pipeline, pipeline_config
from sfn_limits import strict_map
from support.aws_moto import wait_for_execution
from support.faultserver import FaultServer
from support.replies import Delay, Ok, Status
from test_pipeline import crash_batch, run

from imgflow.aws.client import Aws
from imgflow.aws.job import start_job
from imgflow.aws.job_retry import failed_paths, start_retry
from imgflow.aws.runtime.jobs import (
    batch_key,
    failures_key,
    get_json,
    lanes_key,
    manifest_key,
    result_key,
    summary_key,
)
from imgflow.backends.aws import job_body_of
from imgflow.sources.job_json import UrlsSource, full_url_item

HOSTS = 3
PER_HOST = 12
CAP = 2  # lambdaConcur: requests in flight per host
BATCH = 3  # so each host has 4 batches, and the Map may run 6 children at once
GIF = (FLAGS_DIR / "ad" / "ad.gif").read_bytes()


@pytest.fixture
def sites() -> Iterator[list[FaultServer]]:
    with ExitStack() as stack:
        servers = [stack.enter_context(FaultServer()) for _ in range(HOSTS)]
        for server in servers:
            for n in range(PER_HOST):
                server.set(f"/img/{n}.gif", Delay(0.15, Ok(GIF)))
        yield servers


@pytest.fixture
def pipeline(aws: Aws, tmp_path: Path) -> Iterator[Deployed]:
    with patched(), strict_map():
        yield deploy_pipeline(aws, pipeline_config(tmp_path / "deployed", max_batches=6))


def table(sites: list[FaultServer]) -> list[Any]:
    """The hosts' URLs interleaved, as a shuffled table has them; every other one with meta."""
    urls: list[Any] = []
    for n in range(PER_HOST):
        for h, site in enumerate(sites):
            url = site.url(f"/img/{n}.gif")
            urls.append({"url": url, "caption": f"host {h} image {n}", "n": n} if n % 2 else url)
    return urls


def test_each_hosts_cap_holds_across_concurrent_batches_and_meta_is_recorded(
    aws: Aws, pipeline: Deployed, sites: list[FaultServer]
) -> None:
    urls = table(sites)
    body = {"urls": [*urls, "ftp://example.com/a.gif", urls[1]], "lambdaConcur": CAP}
    execution = run(aws, pipeline, {**body, "batchSize": BATCH}, "lanes")
    # the bad entry fails the job (its notice), and only it
    assert execution["status"] == "FAILED", execution
    s3, bucket = aws.s3(), pipeline.bucket

    # the per-host cap, by each server's own count, while the lanes ran side by side
    for site in sites:
        images = [r for r in site.requests if r.path != "/robots.txt"]
        assert len(images) == PER_HOST
        # robots.txt is read once per host per job: its lane's first batch reads it, the
        # later ones use the job's kept answer (aws/runtime/robots_cache.py)
        assert len(site.requests) - len(images) == 1
        assert site.requests[0].path == "/robots.txt"
        assert site.max_in_flight <= CAP, (site.base_url, site.max_in_flight)
    assert max(site.max_in_flight for site in sites) == CAP  # the cap was used
    spans = [(site.requests[0].time, site.requests[-1].time) for site in sites]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans

    # every batch holds one host; each host's batches are one lane, in order
    manifest = get_json(s3, bucket, manifest_key("lanes"))
    hosts = [{_host(i["url"]) for i in batch["items"]} for batch in manifest[:-1]]
    assert all(len(h) == 1 for h in hosts) and len(manifest) == HOSTS * PER_HOST // BATCH + 1
    lanes = get_json(s3, bucket, lanes_key("lanes"))
    assert [(lane["batch"], lane["last"]) for lane in lanes] == [(0, 3), (4, 7), (8, 11)]
    assert get_json(s3, bucket, batch_key("lanes", 5)) == manifest[5]

    # meta round trip: DynamoDB rows and result records
    rows = {row["url"]["S"]: row for row in aws.dynamodb().scan(TableName=pipeline.table)["Items"]}
    assert len(rows) == HOSTS * PER_HOST
    records = [
        r for n in range(len(manifest)) for r in get_json(s3, bucket, result_key("lanes", n))
    ]
    by_url = {r["url"]: r for r in records}
    assert len(records) == len(by_url) == HOSTS * PER_HOST + 1
    for entry in urls:
        url, meta = (entry["url"], _meta(entry)) if isinstance(entry, dict) else (entry, None)
        assert by_url[url]["outcome"] == "stored"
        assert by_url[url].get("meta") == meta
        assert (json.loads(rows[url]["meta"]["S"]) if "meta" in rows[url] else None) == meta
        assert (
            by_url[url]["key"] == f"images/{_host(url).split('://')[1]}/img/{url.rsplit('/', 1)[1]}"
        )

    bad = by_url["ftp://example.com/a.gif"]
    assert bad["outcome"] == "failed" and bad["path"] == f"urls[{len(urls)}]"
    assert "only http:// and https://" in bad["error"]
    assert get_json(s3, bucket, failures_key("lanes")) == [bad["error"]]
    summary = get_json(s3, bucket, summary_key("lanes"))
    assert (summary["total"], summary["stored"], summary["failed"]) == (37, 36, 1)
    assert summary["duplicates"] == 1


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _meta(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "url"}


def test_the_cli_path_uploads_a_urls_job_and_its_retry_runs_only_the_failed_items(
    aws: Aws, pipeline: Deployed
) -> None:
    with FaultServer() as a, FaultServer() as b:
        a.set("/a.gif", Ok(GIF))
        b.set("/b.gif", Status(404), Ok(GIF))  # missing at first, there for the retry
        source = UrlsSource(
            (
                full_url_item(a.url("/a.gif"), "a", MappingProxyType({"caption": "A"})),
                full_url_item(b.url("/b.gif"), "b", MappingProxyType({"caption": "B", "n": 2})),
            )
        )
        bucket, machine = pipeline.bucket, pipeline.state_machine_arn
        started = start_job(aws, bucket, machine, job_body_of(source, 2), 10)
        assert wait_for_execution(aws, started.execution_arn)["status"] == "FAILED"
        failed = failed_paths(aws, bucket, started.execution_arn)
        assert failed.base_url is None and failed.items == [source.entries[1]]
        retry = start_retry(aws, bucket, machine, failed, 10)
        assert wait_for_execution(aws, retry.execution_arn)["status"] == "SUCCEEDED"
        assert (a.count("/a.gif"), b.count("/b.gif")) == (1, 2)
    rows = aws.dynamodb().scan(TableName=pipeline.table)["Items"]
    metas = {row["url"]["S"]: json.loads(row["meta"]["S"]) for row in rows}
    assert metas == {a.url("/a.gif"): {"caption": "A"}, b.url("/b.gif"): {"caption": "B", "n": 2}}
    [record] = get_json(aws.s3(), bucket, result_key(retry.job_id, 0))
    assert (record["outcome"], record["meta"]) == ("stored", {"caption": "B", "n": 2})


def test_a_crashed_batch_of_a_lane_is_recorded_and_the_lane_goes_on(
    aws: Aws, pipeline: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_batch(monkeypatch, 1, recording_too=False)
    with FaultServer(fallback=Ok(GIF)) as site:
        urls = [site.url(f"/{n}.gif") for n in range(6)]
        execution = run(aws, pipeline, {"urls": urls, "batchSize": 2}, "lane-crash")
    assert execution["status"] == "FAILED", execution
    records = {
        n: get_json(aws.s3(), pipeline.bucket, result_key("lane-crash", n)) for n in range(3)
    }
    assert [[r["outcome"] for r in records[n]] for n in range(3)] == [
        ["stored", "stored"],
        ["failed", "failed"],
        ["stored", "stored"],  # the batch after the crash still ran, in the same lane
    ]
    assert {r["failureKind"] for r in records[1]} == {"batch-failed"}
