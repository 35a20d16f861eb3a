"""output.layout webdataset on aws (moto): a shard per download batch, in S3 as one object.

What S3 refuses, and the double here refuses too (moto, checked below): a multipart part
under 5 MiB that is not the last (EntityTooSmall at completion) and a part number over
10,000. A shard is streamed as one upload within those rules, aborted on failure; it is
named from the job and the batch alone, so a retried batch replaces its shard.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from lambda_invoke import patched
from moto.iam.access_control import IAMPolicy, PermissionResult
from pipeline_env import Deployed, deploy_pipeline, pipeline_config, reference_body
from support.aws_moto import run_execution
from support.aws_roles import CallLog
from support.cli_run import FAST_ENV, run_cli

from imgflow.aws.client import Aws
from imgflow.aws.deploy import deploy
from imgflow.aws.runtime import download as download_module
from imgflow.aws.runtime.download import download_batch
from imgflow.aws.runtime.jobs import BatchSpec, get_json, job_key, put_json, result_key, summary_key
from imgflow.aws.runtime.settings import LambdaSettings
from imgflow.aws.runtime.shards import BatchShard, shard_stem
from imgflow.aws.runtime.store import MIN_PART_SIZE
from imgflow.config import Config
from imgflow.demo.server import StaticServer, serve_directory
from imgflow.engine.plan import Item, item_for
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.engine.samples import sample_key
from imgflow.engine.settings import FetchConfig
from imgflow.errors import UsageError
from imgflow.report.aws import write_aws
from imgflow.report.shard_images import ShardImages

BUCKET = "imgflow-shards-test"
TABLE = "imgflow-shards-index"
MIB = 1024 * 1024
FLAGS = ("ad", "ht", "mk", "us", "cn")


@pytest.fixture
def settings(aws: Aws) -> LambdaSettings:
    aws.s3().create_bucket(Bucket=BUCKET)
    aws.dynamodb().create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "url", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "url", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return LambdaSettings(
        bucket=BUCKET,
        table=TABLE,
        topic_arn="",
        prefix="images/",
        fetch=FetchConfig(retries=0),
        allow_private_targets=True,
        inline_max_messages=50,
        layout="webdataset",
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    """Two 3 MiB GIFs: a shard of both passes S3's 5 MiB part size (a multipart upload)."""
    root = tmp_path_factory.mktemp("big")
    for name in ("a", "b"):
        (root / f"{name}.gif").write_bytes(b"GIF89a" + bytes([ord(name)]) * (3 * MIB))
    with serve_directory(root) as server:
        yield server


def keys(aws: Aws, prefix: str) -> list[str]:
    listing = aws.s3().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def uploads(aws: Aws) -> list[str]:
    return [u["Key"] for u in aws.s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def read_shard(aws: Aws, key: str) -> dict[str, tuple[dict[str, Any], bytes]]:
    """URL -> (its .json member, its image's bytes), read back with tarfile."""
    body = aws.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    samples: dict[str, tuple[dict[str, Any], bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        members = {m.name: m for m in tar}
        for name, info in members.items():
            if not name.endswith(".json"):
                continue
            row = json.loads(tar.extractfile(info).read())  # type: ignore[union-attr]
            image = f"{row['sample_key']}.gif"
            assert row["url"] not in samples, f"{row['url']} twice in {key}"
            samples[row["url"]] = (row, tar.extractfile(members[image]).read())  # type: ignore[union-attr]
            text = members.get(f"{row['sample_key']}.txt")
            if row["caption"] is not None:
                assert text is not None
                assert tar.extractfile(text).read().decode() == row["caption"]  # type: ignore[union-attr]
            else:
                assert text is None
    return samples


def rows(aws: Aws) -> dict[str, dict[str, Any]]:
    return {r["url"]["S"]: r for r in aws.dynamodb().scan(TableName=TABLE)["Items"]}


def test_a_batch_goes_into_one_shard_and_its_rows_point_at_shard_and_member(
    aws: Aws, settings: LambdaSettings, flags: StaticServer, tmp_path: Path
) -> None:
    first = item_for(flags.base_url, "ad/ad.gif")
    items = [
        Item(first.url, first.key, meta={"caption": "Andorra"}, path=first.path),
        *(item_for(flags.base_url, f"{c}/{c}.gif") for c in FLAGS[1:]),
    ]
    missing = Item(f"{flags.base_url}/zz/zz.gif", "zz.gif")  # not found: no sample
    spec = BatchSpec("job-1", 7, (*items, missing), 4)
    counts = download_batch(aws, settings, spec)
    assert (counts["stored"], counts["failed"]) == (5, 1)
    stem = shard_stem("job-1", 7)
    assert stem == "shards/job-1/00007"
    assert keys(aws, "shards/") == [f"{stem}.jsonl", f"{stem}.tar", f"{stem}_stats.json"]
    assert keys(aws, "images/") == []  # no object per image
    samples = read_shard(aws, f"{stem}.tar")
    flags_dir = Path(__file__).resolve().parents[2] / "imgflow" / "demo" / "flags"
    assert sorted(samples) == sorted(item.url for item in items)
    index = rows(aws)
    assert sorted(index) == sorted(samples)
    for item in items:
        row, data = samples[item.url]
        assert data == (flags_dir / item.path).read_bytes()
        assert row["sha256"] == index[item.url]["sha256"]["S"]
        assert index[item.url]["key"]["S"] == f"{stem}.tar"
        assert index[item.url]["member"]["S"] == f"{sample_key(item.url)}.gif"
    assert samples[first.url][0]["caption"] == "Andorra"
    import webdataset as wds

    local = tmp_path / "00007.tar"
    local.write_bytes(aws.s3().get_object(Bucket=BUCKET, Key=f"{stem}.tar")["Body"].read())
    read = list(wds.WebDataset(str(local), shardshuffle=False, empty_check=False))
    assert sorted(json.loads(s["json"])["url"] for s in read) == sorted(samples)
    assert [s["txt"] for s in read if "txt" in s] == [b"Andorra"]
    assert samples[first.url][0]["meta"] == {"caption": "Andorra"}
    records = [
        ResultRecord.from_json(r) for r in get_json(aws.s3(), BUCKET, result_key("job-1", 7))
    ]
    assert {r.key for r in records if r.outcome is Outcome.STORED} == {f"{stem}.tar"}
    body = aws.s3().get_object(Bucket=BUCKET, Key=f"{stem}.jsonl")["Body"].read()
    assert sorted(json.loads(line)["url"] for line in body.splitlines()) == sorted(samples)
    stats = json.loads(aws.s3().get_object(Bucket=BUCKET, Key=f"{stem}_stats.json")["Body"].read())
    assert stats["successes"] == 5 and stats["failure_kinds"] == {"not-found": 1}


@pytest.mark.parametrize("old_shard", ["readable", "gone"])
def test_a_retried_batch_leaves_one_shard_holding_every_sample(
    aws: Aws, settings: LambdaSettings, flags: StaticServer, old_shard: str
) -> None:
    """The first attempt got as far as some index rows (then the invocation died): the
    retry replaces its shard, copying from it the samples the index places there (or,
    when it cannot be read, fetching them again)."""
    items = tuple(item_for(flags.base_url, f"{c}/{c}.gif") for c in FLAGS)
    spec = BatchSpec("job-2", 3, items, 4)
    download_batch(aws, settings, spec)
    for item in items[:2]:  # rows the first attempt never wrote
        aws.dynamodb().delete_item(TableName=TABLE, Key={"url": {"S": item.url}})
    if old_shard == "gone":
        aws.s3().delete_object(Bucket=BUCKET, Key="shards/job-2/00003.tar")
    counts = download_batch(aws, settings, spec)
    carried = 3 if old_shard == "readable" else 0
    assert (counts["stored"], counts["skipped"], counts["failed"]) == (5 - carried, carried, 0)
    [shard] = [k for k in keys(aws, "shards/job-2/") if k.endswith(".tar")]
    samples = read_shard(aws, shard)
    assert sorted(samples) == sorted(item.url for item in items)  # every URL exactly once
    for url, row in rows(aws).items():
        assert row["key"]["S"] == shard and row["member"]["S"].startswith(sample_key(url))
    images = ShardImages(aws.s3(), BUCKET)  # carried samples' offsets are right too
    assert all(images.read(shard, url) == samples[url][1] for url in samples)


def test_the_double_refuses_what_s3_refuses(aws: Aws, settings: LambdaSettings) -> None:
    s3 = aws.s3()
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="small-parts")["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket=BUCKET, Key="small-parts", UploadId=upload, PartNumber=n, Body=b"x" * MIB
            )["ETag"],
        }
        for n in (1, 2)
    ]
    with pytest.raises(ClientError, match="EntityTooSmall"):
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="small-parts", UploadId=upload, MultipartUpload={"Parts": parts}
        )
    with pytest.raises(ClientError):
        s3.upload_part(
            Bucket=BUCKET, Key="small-parts", UploadId=upload, PartNumber=10_001, Body=b"x"
        )


def test_a_large_shard_goes_up_in_parts_of_at_least_5_mib(
    aws: Aws, settings: LambdaSettings
) -> None:
    items = [Item(f"https://example.com/{n}.gif", f"{n}.gif") for n in range(4)]
    shard = BatchShard(aws.s3(), BUCKET, "shards/j/00000", items)
    for n, item in enumerate(items):
        data = b"GIF89a" + bytes([n]) * (3 * MIB)
        shard.put(item.key, data, "image/gif")
        shard.add(
            ResultRecord(
                item.url, item.key, Outcome.STORED, 200, item.key, len(data), "ab", "image/gif"
            )
        )
    assert set(shard.finish()) == {item.url for item in items}
    head = aws.s3().head_object(Bucket=BUCKET, Key="shards/j/00000.tar")
    assert head["ETag"].strip('"').endswith("-3")  # 12 MiB and headers: 5 + 5 + the rest
    assert head["ContentType"] == "application/x-tar"
    assert len(read_shard(aws, "shards/j/00000.tar")) == 4
    assert uploads(aws) == []
    assert MIN_PART_SIZE == 5 * MIB


def test_a_batch_that_fails_leaves_no_shard_and_no_pending_upload(
    aws: Aws, settings: LambdaSettings, big: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = download_module.run_batch_blocking

    def fetch_then_fail(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        deadline = time.monotonic() + 10
        while not uploads(aws) and time.monotonic() < deadline:  # the first part is going up
            time.sleep(0.01)
        assert uploads(aws), "the shard's upload never started"
        raise RuntimeError("the batch failed after its first part")

    monkeypatch.setattr(download_module, "run_batch_blocking", fetch_then_fail)
    items = (item_for(big.base_url, "a.gif"), item_for(big.base_url, "b.gif"))
    with pytest.raises(RuntimeError):
        download_batch(aws, settings, BatchSpec("job-3", 0, items, 2))
    assert keys(aws, "shards/") == []
    assert uploads(aws) == []
    assert rows(aws) == {}


def test_a_webdataset_job_runs_through_the_state_machine_a_shard_per_batch(
    aws: Aws, tmp_path: Path, flags: StaticServer
) -> None:
    """Deployed with output.layout webdataset: each batch's shard, every URL exactly once,
    and every call the download role makes allowed by its deployed policy."""
    cfg = pipeline_config(tmp_path / "deployed", layout="webdataset")
    with patched(), CallLog().installed() as log:
        deployed = deploy_pipeline(aws, cfg)
        paths = [f"{c}/{c}.gif" for c in ("ad", "ht", "mk", "us", "cn", "in", "mx")]
        body = {**reference_body("success", flags.base_url), "resourcePaths": paths}
        body["batchSize"] = 3
        execution = run_execution(aws, deployed.state_machine_arn, body, "sharded")
        check_sharded_job(aws, deployed, execution)
    calls = log.by_role()["download"]
    assert ("s3:PutObject", f"arn:aws:s3:::{deployed.bucket}/shards/sharded/00000.tar") in calls
    policy = aws.iam().get_role_policy(RoleName="imgflow-test-download", PolicyName="imgflow")
    document = policy["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    evaluator = IAMPolicy(json.dumps(document))
    for action, arn in sorted(calls):
        permitted = evaluator.is_action_permitted(action, arn)
        assert permitted == PermissionResult.PERMITTED, (action, arn)


def check_sharded_job(aws: Aws, deployed: Deployed, execution: dict[str, Any]) -> None:
    assert execution["status"] == "SUCCEEDED", execution
    s3 = aws.s3()
    listing = s3.list_objects_v2(Bucket=deployed.bucket, Prefix="shards/sharded/")
    tars = sorted(o["Key"] for o in listing["Contents"] if o["Key"].endswith(".tar"))
    assert tars == [f"shards/sharded/{n:05d}.tar" for n in range(3)]  # 7 URLs, 3 a batch
    seen: list[str] = []
    members: dict[str, str] = {}
    for key in tars:
        body_bytes = s3.get_object(Bucket=deployed.bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body_bytes), mode="r:") as tar:
            for info in tar:
                if info.name.endswith(".json"):
                    row = json.loads(tar.extractfile(info).read())  # type: ignore[union-attr]
                    seen.append(row["url"])
                else:
                    members[info.name] = key
    assert len(seen) == len(set(seen)) == 7
    assert s3.list_objects_v2(Bucket=deployed.bucket, Prefix="images/")["KeyCount"] == 0
    items = aws.dynamodb().scan(TableName=deployed.table)["Items"]
    assert sorted(i["url"]["S"] for i in items) == sorted(seen)
    for item in items:
        assert members[item["member"]["S"]] == item["key"]["S"]


def test_deploy_refuses_the_parquet_layout_in_one_line_and_makes_nothing(
    aws: Aws, make_cfg: Callable[..., Config], mutations: list[str]
) -> None:
    with pytest.raises(UsageError) as refused:
        deploy(make_cfg(output={"layout": "parquet"}), aws)
    assert str(refused.value) == (
        "output.layout: parquet goes with the local backend (on aws: files or webdataset)"
    )
    assert mutations == []


def test_run_refuses_a_layout_flag_with_the_aws_backend(tmp_path: Path) -> None:
    done = run_cli(
        "run", "--backend", "aws", "--layout", "webdataset",
        "--base-url", "http://127.0.0.1:9", "--paths-file", "-",
        input="a.gif\n", cwd=tmp_path, env=FAST_ENV,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "--layout and --shard-size go with --backend local" in line
    assert "Traceback" not in done.stderr


class _Gets:
    """An S3 client that notes every GetObject's key and range."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.gets: list[tuple[str, str | None]] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append((kwargs["Key"], kwargs.get("Range")))
        return self._s3.get_object(**kwargs)


def test_the_aws_report_embeds_thumbnails_read_from_shards_with_ranged_gets(
    aws: Aws, settings: LambdaSettings, flags: StaticServer, tmp_path: Path
) -> None:
    """The shard's rows beside it give each image's offset; a thumbnail is one ranged GET
    of its bytes (never the whole shard), and the report embeds one for every sample."""
    items = tuple(item_for(flags.base_url, f"{c}/{c}.gif") for c in FLAGS)
    assert download_batch(aws, settings, BatchSpec("job-r", 0, items, 4))["stored"] == 5
    shard = f"{shard_stem('job-r', 0)}.tar"
    flags_dir = Path(__file__).resolve().parents[2] / "imgflow" / "demo" / "flags"
    gets = _Gets(aws.s3())
    images = ShardImages(gets, BUCKET)  # type: ignore[arg-type]
    for item in items:
        assert images.read(shard, item.url) == (flags_dir / item.path).read_bytes()
    assert gets.gets[0] == (f"{shard_stem('job-r', 0)}.jsonl", None)  # the rows, read once
    ranges = gets.gets[1:]
    assert len(ranges) == 5 and all(key == shard and r for key, r in ranges)
    assert images.read(shard, "http://elsewhere/x.gif") is None

    s3 = aws.s3()
    put_json(s3, BUCKET, job_key("job-r"), {"baseUrl": flags.base_url, "resourcePaths": []})
    summary = {"total": 5, "stored": 5, "skipped": 0, "failed": 0, "excluded": 0}
    put_json(s3, BUCKET, summary_key("job-r"), {**summary, "duplicates": 0})
    sfn = aws.stepfunctions()
    machine = sfn.create_state_machine(
        name="report",
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/report",
    )
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="job-r")
    page = write_aws(aws, BUCKET, "images/", arn["executionArn"], tmp_path / "r.html")
    text = page.read_text()
    data = json.loads(text.split('id="gallery-data">', 1)[1].split("</script>", 1)[0])
    assert len(data["items"]) == 5
    assert text.count('"data:image/webp;base64,') == 5
