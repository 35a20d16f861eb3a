"""The plan's batches stay under the Map's child input limit; the Lambda retry policy."""

from __future__ import annotations

import json
from typing import Any

from imgflow.aws.runtime.jobs import BatchSpec
from imgflow.aws.runtime.plan import MAX_CHILD_INPUT_BYTES, split_batches
from infra.statemachine import TRANSIENT_LAMBDA_ERRORS, definition

BASE = "http://img.example.com/x"


def sizes(specs: list[BatchSpec]) -> list[int]:
    return [len(json.dumps(s.to_json(), separators=(",", ":")).encode()) for s in specs]


def test_batches_split_by_count_when_paths_are_short() -> None:
    paths = [f"p/{n}.gif" for n in range(10)]
    specs = list(split_batches("job", BASE, paths, 5, 4))
    assert [len(s.paths) for s in specs] == [4, 4, 2]
    assert [s.batch for s in specs] == [0, 1, 2]
    assert [p for s in specs for p in s.paths] == paths


def test_batches_split_by_bytes_when_paths_are_long() -> None:
    paths = [f"{n:04d}/" + "é" * 500 for n in range(1000)]  # 1,000 UTF-8 bytes each
    specs = list(split_batches("job", BASE, paths, 5, 5000))
    assert len(specs) > 1
    assert max(sizes(specs)) <= MAX_CHILD_INPUT_BYTES
    assert min(sizes(specs)[:-1]) > MAX_CHILD_INPUT_BYTES - 2_000  # batches are kept full
    assert [p for s in specs for p in s.paths] == paths


def test_the_largest_batch_allowed_by_count_still_fits() -> None:
    paths = [f"{n:05d}/" + "a" * 1018 for n in range(5000)]
    assert max(sizes(list(split_batches("j" * 80, BASE, paths, 5, 5000)))) <= 200_000


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
        assert by_error["Lambda.Unknown"] == 1
        assert by_error["Lambda.ClientExecutionTimeoutException"] == 4
        assert set(by_error) == {*TRANSIENT_LAMBDA_ERRORS, "Lambda.Unknown"}


def test_a_failed_map_goes_on_to_consolidate() -> None:
    download = definition(**arns())["States"]["Download"]
    [catch] = download["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "Consolidate"
    assert catch["ResultPath"] == "$.mapError"
