"""A urls job planned in lanes from its uploaded lines: streamed through /tmp, the same plan
as the job's body planned in memory, and memory flat in the number of rows.

Handlers are called directly on `DiskS3` (objects in files), as in test_plan_scale.py."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from support.disk_s3 import DiskS3
from support.plan_memory import plan_peak, shrink_buffers

from imgflow.aws.runtime import lane_plan
from imgflow.aws.runtime import plan as plan_step
from imgflow.aws.runtime.job_lines import job_lines, put_job
from imgflow.aws.runtime.jobs import batch_key, get_json, iter_json_array, job_key

BUCKET = "imgflow-lanes"
HOSTS = [f"https://h{n}.example.com" for n in range(7)]


def urls_body(count: int, seed: int = 3) -> dict[str, Any]:
    """`count` entries over 7 hosts, interleaved; every 10th repeats an earlier URL (with
    other meta: the first one's is kept), a few are not URLs, some carry meta."""
    rng = random.Random(seed)
    entries: list[Any] = []
    for n in range(count):
        if n % 10 == 9:
            earlier = entries[rng.randrange(n)]
            url = earlier["url"] if isinstance(earlier, dict) else earlier
            entries.append({"url": url, "caption": "a repeat"} if url.startswith("http") else url)
        elif n % 97 == 13:
            entries.append(f"not a url {n}")
        elif n % 3:
            entries.append(f"{rng.choice(HOSTS)}/img/{n}.jpg")
        else:
            entries.append({"url": f"{rng.choice(HOSTS)}/img/{n}.jpg", "caption": f"c{n}"})
    return {"lambdaConcur": 3, "urls": entries}


def planned(s3: Any, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
    result = plan_step.plan_job(s3, BUCKET, job_id, {**request, "batchSize": 40})
    manifest = list(iter_json_array(s3, BUCKET, result["manifestKey"]))
    lanes = list(iter_json_array(s3, BUCKET, result["mapKey"]))
    objects = [get_json(s3, BUCKET, batch_key(job_id, r["batch"])) for r in manifest[:-1]]
    counts = {k: result[k] for k in ("expected", "duplicates", "batches", "lanes", "rejected")}
    return {"counts": counts, "manifest": manifest, "lanes": lanes, "objects": objects}


def test_a_streamed_urls_job_is_planned_as_its_body_is_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3: Any = DiskS3(tmp_path)
    body = urls_body(2_000)
    whole = planned(s3, "j", body)  # the body as execution input: in memory
    put_job(s3, BUCKET, job_key("j"), body)
    monkeypatch.setattr(plan_step, "PARTITION_BYTES", 16 * 1024)  # ~6 partitions
    sorted_files: list[Path] = []
    sort_file = lane_plan._sort_file

    def counted_sort(name: Path) -> None:
        sorted_files.append(name)
        sort_file(name)

    monkeypatch.setattr(lane_plan, "_sort_file", counted_sort)
    streamed = planned(s3, "j", {"manifest": f"s3://{BUCKET}/{job_key('j')}"})
    assert streamed == whole
    # grouped through /tmp, a partition at a time (what keeps memory flat at 10M rows)
    size = len(b"".join(job_lines(body)))
    assert len(sorted_files) == plan_step.partitions_for(size) > 1
    # What the plan promises: lanes per host in order of first item, each host's items in
    # order, first URL of a repeat kept with its meta, numbered consecutively.
    seen: dict[str, dict[str, Any]] = {}
    for entry in body["urls"]:
        item = entry if isinstance(entry, dict) else {"url": entry}
        if item["url"].startswith("http"):
            seen.setdefault(item["url"], item)
    hosts = list(dict.fromkeys(url.split("/img/")[0] for url in seen))
    rows = whole["manifest"]
    assert [r["batch"] for r in rows] == list(range(len(rows)))
    got = [i["url"] for r in rows[:-1] for i in r["items"]]
    assert got == [u for h in hosts for u in seen if u.startswith(h + "/")]
    metas = {i["url"]: i.get("meta", {}) for r in rows[:-1] for i in r["items"]}
    assert metas == {u: {k: v for k, v in e.items() if k != "url"} for u, e in seen.items()}
    assert len(whole["lanes"]) == len(hosts) == 7
    assert all(r["last"] == lane["last"] for lane in whole["lanes"] for r in rows
               if lane["batch"] <= r["batch"] <= lane["last"])  # fmt: skip
    assert whole["counts"]["rejected"] == len(rows[-1]["items"]) > 0
    assert whole["counts"]["expected"] == len(seen) + whole["counts"]["rejected"]


def test_urls_plan_memory_is_flat_in_the_number_of_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shrink_buffers(monkeypatch, 24 * 1024, 8 * 1024)  # so a job small enough shows growth
    small = plan_peak(tmp_path / "small", BUCKET, urls_body(500), batchSize=100)
    large = plan_peak(tmp_path / "large", BUCKET, urls_body(4_000), batchSize=100)
    assert large < 2 * small, (small, large)  # eight times the rows
