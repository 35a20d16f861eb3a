"""The plan's batches of items stay under the Map's child input limit and are streamed to
S3; the Lambda retry policy."""

from __future__ import annotations

import itertools
import json
from types import MappingProxyType
from typing import Any

import pytest

from imgflow.aws.client import Aws
from imgflow.aws.runtime import jobs
from imgflow.aws.runtime.jobs import BatchSpec
from imgflow.aws.runtime.plan import MAX_CHILD_INPUT_BYTES, plan_job, split_batches
from imgflow.engine.plan import Item, item_for
from infra.statemachine import TRANSIENT_LAMBDA_ERRORS, definition

BASE = "http://img.example.com/x"


def sizes(specs: list[BatchSpec]) -> list[int]:
    return [len(json.dumps(s.to_json(), separators=(",", ":")).encode()) for s in specs]


def items(paths: list[str]) -> list[Item]:
    return [item_for(BASE, path) for path in paths]


def test_batches_split_by_count_when_paths_are_short() -> None:
    paths = [f"p/{n}.gif" for n in range(10)]
    specs = list(split_batches("job", items(paths), 5, 4))
    assert [len(s.items) for s in specs] == [4, 4, 2]
    assert [s.batch for s in specs] == [0, 1, 2]
    assert [i for s in specs for i in s.items] == items(paths)


def test_batches_split_by_bytes_when_paths_are_long() -> None:
    paths = [f"{n:04d}/" + "é" * 500 for n in range(1000)]  # 1,000 UTF-8 bytes each
    specs = list(split_batches("job", items(paths), 5, 5000))
    assert len(specs) > 1
    assert max(sizes(specs)) <= MAX_CHILD_INPUT_BYTES
    assert min(sizes(specs)[:-1]) > MAX_CHILD_INPUT_BYTES - 10_000  # batches are kept full
    assert [i for s in specs for i in s.items] == items(paths)


def test_the_largest_batch_allowed_by_count_still_fits() -> None:
    paths = [f"{n:05d}/" + "a" * 1018 for n in range(5000)]
    assert max(sizes(list(split_batches("j" * 80, items(paths), 5, 5000)))) <= 200_000


def test_a_batch_holds_items_with_their_meta_and_reads_back_the_same() -> None:
    meta = MappingProxyType({"caption": "a flag", "width": 16})
    table = [Item(url="https://cdn.example.org/f/ad.gif?s=1", key="cdn/ad.gif", meta=meta)]
    seed = items(["ad/ad.gif"])
    [spec] = split_batches("job", [*seed, *table], 5, 10)
    data = json.loads(json.dumps(spec.to_json()))
    assert data["items"] == [
        {"url": f"{BASE}/ad/ad.gif", "key": seed[0].key, "path": "ad/ad.gif"},
        {
            "url": "https://cdn.example.org/f/ad.gif?s=1",
            "key": "cdn/ad.gif",
            "meta": {"caption": "a flag", "width": 16},
        },
    ]
    assert BatchSpec.from_json(data) == spec


def test_batches_are_made_as_items_come() -> None:
    """The plan never holds all its items: batches come from an endless stream too."""
    endless = (item_for(BASE, f"p/{n}.gif") for n in itertools.count())
    first, second = itertools.islice(split_batches("job", endless, 5, 3), 2)
    assert [i.path for i in second.items] == ["p/3.gif", "p/4.gif", "p/5.gif"]
    assert first.batch == 0 and second.batch == 1


def test_the_plan_writes_a_manifest_larger_than_its_spool(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest over SPOOL_BYTES goes through a file on disk, whole and in order."""
    monkeypatch.setattr(jobs, "SPOOL_BYTES", 4096)
    s3 = aws.s3()
    s3.create_bucket(Bucket="plan-test")
    paths = [f"p/{n}.gif" for n in range(1000)]
    body = {"baseUrl": BASE, "resourcePaths": [*paths, paths[0]], "batchSize": 300}
    plan = plan_job(s3, "plan-test", "job", body)
    assert (plan["expected"], plan["duplicates"], plan["batches"]) == (1000, 1, 4)
    manifest = jobs.get_json(s3, "plan-test", plan["manifestKey"])
    assert [BatchSpec.from_json(b).batch for b in manifest] == [0, 1, 2, 3]
    assert [i for b in manifest for i in BatchSpec.from_json(b).items] == items(paths)


def arns() -> dict[str, Any]:
    return {
        "plan_arn": "arn:plan",
        "download_arn": "arn:download",
        "consolidate_arn": "arn:consolidate",
        "topic_arn": "arn:topic",
        "bucket": "b",
        "max_batches": 4,
    }


def lambda_tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for state in states.values():
        if state.get("Resource") == "arn:aws:states:::lambda:invoke":
            found.append(state)
        if "ItemProcessor" in state:
            found.extend(lambda_tasks(state["ItemProcessor"]["States"]))
    return found


def test_every_lambda_task_retries_unknown_once_and_service_errors_more() -> None:
    tasks = lambda_tasks(definition(**arns())["States"])
    assert len(tasks) == 4
    for task in tasks:
        by_error = {e: r["MaxAttempts"] for r in task["Retry"] for e in r["ErrorEquals"]}
        assert by_error["Lambda.Unknown"] == by_error["Sandbox.Timedout"] == 1
        assert by_error["Lambda.ClientExecutionTimeoutException"] == 4
        assert set(by_error) == {*TRANSIENT_LAMBDA_ERRORS, "Sandbox.Timedout", "Lambda.Unknown"}


def test_a_failed_map_goes_on_to_consolidate() -> None:
    download = definition(**arns())["States"]["Download"]
    [catch] = download["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "Consolidate"
    assert catch["ResultPath"] == "$.mapError"


def test_a_urls_job_is_planned_in_lanes_of_one_host_each(aws: Aws) -> None:
    """Batches of one host each; a lane per host (scheme, host, port), in first-seen order,
    numbered consecutively; each batch also an object of its own, naming its lane's last."""
    s3 = aws.s3()
    s3.create_bucket(Bucket="plan-test")
    hosts = ["http://a.example", "http://a.example:8080", "https://a.example", "http://b.example"]
    urls = [f"{host}/{n}.gif" for n in range(5) for host in hosts]
    body = {"urls": [*urls, "mailto:x@y", urls[0]], "lambdaConcur": 3, "batchSize": 2}
    plan = plan_job(s3, "plan-test", "job", body)
    assert (plan["expected"], plan["duplicates"], plan["rejected"]) == (21, 1, 1)
    assert (plan["lanes"], plan["batches"], plan["concurrency"]) == (4, 13, 3)
    manifest = [BatchSpec.from_json(b) for b in jobs.get_json(s3, "plan-test", plan["manifestKey"])]
    lanes = jobs.get_json(s3, "plan-test", plan["mapKey"])
    assert lanes == [{"jobId": "job", "batch": first, "last": first + 2} for first in (0, 3, 6, 9)]
    for lane, host in zip(lanes, hosts, strict=True):
        batches = manifest[lane["batch"] : lane["last"] + 1]
        assert {i.url.rsplit("/", 1)[0] for b in batches for i in b.items} == {host}
        assert [len(b.items) for b in batches] == [2, 2, 1]
        assert all(b.last == lane["last"] and b.concurrency == 3 for b in batches)
        for b in batches:
            assert jobs.load_batch(s3, "plan-test", {"jobId": "job", "batch": b.batch}) == b
    [bad] = manifest[12].items
    assert (bad.url, bad.path, bad.key) == ("mailto:x@y", "urls[20]", "")
    [record] = jobs.get_json(s3, "plan-test", jobs.result_key("job", 12))
    assert record["outcome"] == "failed" and record["error"].startswith("job urls[20]: only http")
    assert manifest[3].next_ref() == {"jobId": "job", "batch": 4, "last": 5}
    assert manifest[5].next_ref() is None


def test_the_rest_of_a_lanes_batch_keeps_its_lane() -> None:
    """A lane's batch that ran out of time comes back as a part with the lane's last batch,
    so the lane goes on to its next batch once the part is done."""
    spec = BatchSpec("job", 4, tuple(items(["a.gif", "b.gif"])), 2, last=6)
    rest = BatchSpec.from_json(json.loads(json.dumps(spec.to_json())))
    part = BatchSpec.from_json({**rest.to_json(), "part": 1, "items": rest.to_json()["items"][1:]})
    assert (part.part, part.last, part.items) == (1, 6, spec.items[1:])
    assert part.next_ref() == {"jobId": "job", "batch": 5, "last": 6}
    assert BatchSpec("job", 0, (), 2).next_ref() is None  # a seed job's batch: no lane
