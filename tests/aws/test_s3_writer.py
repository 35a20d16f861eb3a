"""The download Lambda's S3 writer on moto: small objects in one PutObject, large ones as a
multipart upload; nothing is visible at the key before commit, and abort leaves nothing."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from imgflow.aws.client import Aws
from imgflow.aws.runtime.store import MIN_PART_SIZE, S3Store

BUCKET = "imgflow-writer-test"
MIB = 1024 * 1024
GIF = b"GIF89a" + b"\x00" * 10


@pytest.fixture
def s3(aws: Aws) -> Any:
    client = aws.s3()
    client.create_bucket(Bucket=BUCKET)
    return client


def visible(s3: Any, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError:
        return False
    return True


def uploads(s3: Any) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def body(size: int) -> bytes:
    pattern = bytes(range(251))
    return (GIF + pattern * (size // len(pattern) + 1))[:size]


def chunks(data: bytes, size: int = MIB) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_a_small_object_is_one_put_at_commit(s3: Any) -> None:
    store = S3Store(s3, BUCKET, "images/")
    data = body(7 * MIB)  # below the default 8 MiB threshold
    writer = store.open("h/a.gif")
    for chunk in chunks(data):
        writer.write(chunk)
        assert not visible(s3, "images/h/a.gif") and uploads(s3) == []
    writer.commit("image/gif")
    got = s3.get_object(Bucket=BUCKET, Key="images/h/a.gif")
    assert got["Body"].read() == data and got["ContentType"] == "image/gif"
    assert "-" not in got["ETag"]  # not a multipart object


def test_a_large_object_goes_up_in_parts_and_appears_only_at_commit(s3: Any) -> None:
    store = S3Store(s3, BUCKET, "images/", threshold=MIN_PART_SIZE)
    data = body(12 * MIB + 123)
    writer = store.open("h/big.gif")
    for chunk in chunks(data):
        writer.write(chunk)
        assert not visible(s3, "images/h/big.gif")
    assert uploads(s3) == ["images/h/big.gif"]
    writer.commit("image/gif")
    got = s3.get_object(Bucket=BUCKET, Key="images/h/big.gif")
    assert got["Body"].read() == data
    assert got["ContentType"] == "image/gif"
    assert got["ETag"].strip('"').endswith("-3")  # 5 MiB + 5 MiB + the rest
    assert uploads(s3) == []


def test_a_commit_naming_another_type_sets_it(s3: Any) -> None:
    store = S3Store(s3, BUCKET, "images/", threshold=MIN_PART_SIZE)
    writer = store.open("h/t.gif")
    for chunk in chunks(body(6 * MIB)):
        writer.write(chunk)
    writer.commit("image/gif; charset=binary")
    got = s3.get_object(Bucket=BUCKET, Key="images/h/t.gif")
    assert got["ContentType"] == "image/gif; charset=binary"
    assert len(got["Body"].read()) == 6 * MIB


@pytest.mark.parametrize("size", [MIB, 11 * MIB], ids=["buffered", "multipart"])
def test_abort_leaves_nothing(s3: Any, size: int) -> None:
    store = S3Store(s3, BUCKET, "images/", threshold=MIN_PART_SIZE)
    writer = store.open("h/gone.gif")
    for chunk in chunks(body(size)):
        writer.write(chunk)
    writer.abort()
    writer.abort()
    assert not visible(s3, "images/h/gone.gif") and uploads(s3) == []
    with pytest.raises(ValueError):
        writer.commit("image/gif")


def test_an_error_mid_upload_aborts_it(s3: Any) -> None:
    store = S3Store(s3, BUCKET, "images/", threshold=MIN_PART_SIZE)
    sent = {"parts": 0}

    def fail_second_part(params: dict[str, Any], **kwargs: Any) -> None:
        sent["parts"] += 1
        if sent["parts"] == 2:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "busy"}}, "UploadPart")

    s3.meta.events.register("provide-client-params.s3.UploadPart", fail_second_part)
    writer = store.open("h/err.gif")
    with pytest.raises(OSError, match="SlowDown"):
        for chunk in chunks(body(16 * MIB)):
            writer.write(chunk)
    assert not visible(s3, "images/h/err.gif") and uploads(s3) == []


def test_parts_below_s3s_minimum_are_refused(s3: Any) -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Store(s3, BUCKET, "images/", part_size=MIB)
