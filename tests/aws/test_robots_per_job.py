"""On aws robots.txt is read once per host per job: the download Lambda keeps each answer in
the job's S3 robots cache (runtime/robots_cache.py), and every later batch of the host obeys
it with no request. A job of one host's full URLs runs as one lane of 4 batches, one after
the other, on moto's Step Functions interpreter with our handlers; the host's own server logs
every request; so does a seed job's 4 batches run one at a time (job.max_batches 1). A 500
robots.txt is never kept: each batch asks again."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_invoke import patched
from pipeline_env import FLAGS_DIR, Deployed, deploy_pipeline, pipeline_config
from sfn_limits import strict_map
from support.faultserver import FaultServer
from support.replies import Ok, Status
from test_pipeline import run

from imgflow.aws.client import Aws
from imgflow.aws.runtime.jobs import get_json, manifest_key, read_results, result_keys
from imgflow.aws.runtime.robots_cache import S3RobotsCache, robots_key
from imgflow.engine.records import Outcome
from imgflow.engine.robots import MAX_BYTES, Stored

PER_HOST = 12
BATCH = 3  # so the host's lane has 4 batches
GIF = (FLAGS_DIR / "ad" / "ad.gif").read_bytes()
ROBOTS = b"User-agent: *\nDisallow: /no/\n"
DISALLOWED = {1, 5, 10}  # one image in each of three batches is under /no/


@pytest.fixture
def pipeline(aws: Aws, tmp_path: Path) -> Iterator[Deployed]:
    with patched(), strict_map():
        yield deploy_pipeline(aws, pipeline_config(tmp_path / "deployed", max_batches=6))


@pytest.fixture
def one_at_a_time(aws: Aws, tmp_path: Path) -> Iterator[Deployed]:
    """A deployment whose Map runs one download Lambda at a time (a seed job's batches)."""
    with patched(), strict_map():
        yield deploy_pipeline(aws, pipeline_config(tmp_path / "deployed", max_batches=1))


def _path(n: int) -> str:
    return f"/no/{n}.gif" if n in DISALLOWED else f"/img/{n}.gif"


def _job(aws: Aws, pipeline: Deployed, site: FaultServer, name: str) -> dict[str, Any]:
    for n in range(PER_HOST):
        site.set(_path(n), Ok(GIF))
    urls = [site.url(_path(n)) for n in range(PER_HOST)]
    body = {"urls": urls, "lambdaConcur": 2, "batchSize": BATCH}
    execution = run(aws, pipeline, body, name)
    manifest = get_json(aws.s3(), pipeline.bucket, manifest_key(name))
    assert len(manifest) == PER_HOST // BATCH  # one lane of 4 batches, run in turn
    return execution


def _robots_objects(aws: Aws, pipeline: Deployed, job_id: str) -> list[str]:
    listing = aws.s3().list_objects_v2(Bucket=pipeline.bucket, Prefix=f"jobs/{job_id}/robots/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_a_hosts_batches_read_robots_once_per_job_and_all_obey_it(
    aws: Aws, pipeline: Deployed
) -> None:
    with FaultServer() as site:
        site.set("/robots.txt", Ok(ROBOTS))
        execution = _job(aws, pipeline, site, "once")
        paths = [r.path for r in site.requests]
    assert execution["status"] == "SUCCEEDED", execution
    # the server's own log: one robots.txt request, first; no disallowed path ever asked
    assert paths.count("/robots.txt") == 1 and paths[0] == "/robots.txt", paths
    assert not [p for p in paths if p.startswith("/no/")], paths
    assert sorted(p for p in paths if p != "/robots.txt") == sorted(
        _path(n) for n in range(PER_HOST) if n not in DISALLOWED
    )
    records = [
        r
        for _, batch in read_results(
            aws.s3(), pipeline.bucket, result_keys(aws.s3(), pipeline.bucket, "once")
        )
        for r in batch
    ]
    excluded = {r.url.rsplit("/", 1)[1] for r in records if r.outcome is Outcome.EXCLUDED}
    assert excluded == {f"{n}.gif" for n in DISALLOWED}
    assert all(r.outcome is Outcome.STORED for r in records if r.outcome is not Outcome.EXCLUDED)
    # the answer the later batches used, kept under the job
    origin = site.url("").rstrip("/")
    assert _robots_objects(aws, pipeline, "once") == [robots_key("once", origin)]
    kept = get_json(aws.s3(), pipeline.bucket, robots_key("once", origin))
    assert (kept["status"], base64.b64decode(kept["body"])) == (200, ROBOTS)


def test_a_robots_txt_that_answers_500_is_not_kept_and_each_batch_asks_again(
    aws: Aws, pipeline: Deployed
) -> None:
    with FaultServer() as site:
        site.set("/robots.txt", Status(500))
        execution = _job(aws, pipeline, site, "unkept")
        paths = [r.path for r in site.requests]
    assert execution["status"] == "FAILED", execution  # every image failed: not requested
    assert set(paths) == {"/robots.txt"}, paths
    # each of the 4 batches asked again (each with its own retries)
    assert paths.count("/robots.txt") >= PER_HOST // BATCH
    assert _robots_objects(aws, pipeline, "unkept") == []
    records = [
        r
        for _, batch in read_results(
            aws.s3(), pipeline.bucket, result_keys(aws.s3(), pipeline.bucket, "unkept")
        )
        for r in batch
    ]
    assert len(records) == PER_HOST and all(r.outcome is Outcome.FAILED for r in records)


def test_the_cache_keeps_an_answer_per_job_and_origin(aws: Aws) -> None:
    s3 = aws.s3()
    s3.create_bucket(Bucket="robots")
    one, other = S3RobotsCache(s3, "robots", "job-1"), S3RobotsCache(s3, "robots", "job-2")
    assert one.get("http://a.test") is None
    big = b"Disallow: /x\n" * (MAX_BYTES // 10)
    one.put("http://a.test", Stored(200, big, 100.0))
    assert one.get("http://a.test") == Stored(200, big[:MAX_BYTES], 100.0)
    assert one.get("http://b.test") is None and other.get("http://a.test") is None
    # a damaged object, or one kept for another origin, is a miss (read again)
    s3.put_object(Bucket="robots", Key=robots_key("job-1", "http://b.test"), Body=b"{not json")
    assert one.get("http://b.test") is None
    moved = json.dumps({"origin": "http://c.test", "status": 404, "body": "", "fetchedAt": 1})
    s3.put_object(Bucket="robots", Key=robots_key("job-1", "http://d.test"), Body=moved)
    assert one.get("http://d.test") is None


def test_a_seed_jobs_batches_run_in_turn_read_robots_once(
    aws: Aws, one_at_a_time: Deployed
) -> None:
    with FaultServer() as site:
        site.set("/robots.txt", Ok(ROBOTS))
        for n in range(PER_HOST):
            site.set(_path(n), Ok(GIF))
        paths_in_job = [_path(n).lstrip("/") for n in range(PER_HOST)]
        body = {
            "baseUrl": site.url("").rstrip("/"),
            "resourcePaths": paths_in_job,
            "lambdaConcur": 2,
            "batchSize": BATCH,
        }
        execution = run(aws, one_at_a_time, body, "seed")
        paths = [r.path for r in site.requests]
    assert execution["status"] == "SUCCEEDED", execution
    manifest = get_json(aws.s3(), one_at_a_time.bucket, manifest_key("seed"))
    assert len(manifest) == PER_HOST // BATCH
    assert paths.count("/robots.txt") == 1 and paths[0] == "/robots.txt", paths
    assert not [p for p in paths if p.startswith("/no/")], paths
    assert len(paths) == 1 + PER_HOST - len(DISALLOWED)
