"""Index keys and DynamoDB's partition key limit.

DynamoDB refuses a partition key value over 2,048 bytes (ValidationException), and inside
BatchWriteItem that refusal fails the whole request. moto 5 refuses it too: the test checks
that first, so the index double stays as strict as the service. A URL of any length must be
stored and indexed, and one row that cannot be written must not fail its batch's others.
"""

from __future__ import annotations

from pathlib import Path

import botocore.exceptions
import pytest
from lambda_invoke import patched
from pipeline_env import FLAGS_DIR, deploy_pipeline, pipeline_config
from sfn_limits import strict_map
from support.faultserver import FaultServer
from support.replies import Ok
from test_pipeline import run

from imgflow.aws.client import Aws
from imgflow.aws.runtime.index import DynamoIndex, index_key
from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome, ResultRecord

TABLE = "t-index"
LONG = "https://example.com/" + "a" * 2221 + ".gif"  # 2,245 bytes
SHORT = "https://example.com/b.gif"


@pytest.fixture
def index(aws: Aws) -> DynamoIndex:
    aws.dynamodb().create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "url", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "url", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoIndex(aws.dynamodb(), TABLE, "bucket", sleep=lambda s: None)


def _stored(url: str, key: str) -> ResultRecord:
    return ResultRecord(
        url=url, path=key, outcome=Outcome.STORED, key=key, bytes=3, sha256="ab" * 32
    )


def test_the_double_refuses_a_partition_key_over_2048_bytes(aws: Aws, index: DynamoIndex) -> None:
    db = aws.dynamodb()
    db.put_item(TableName=TABLE, Item={"url": {"S": "x" * 2048}})
    with pytest.raises(botocore.exceptions.ClientError, match="2048"):
        db.put_item(TableName=TABLE, Item={"url": {"S": "x" * 2049}})


def test_a_url_of_any_length_is_indexed_and_found(aws: Aws, index: DynamoIndex) -> None:
    items = [Item(LONG, "long.gif"), Item(SHORT, "b.gif")]
    records = [_stored(LONG, "long.gif"), _stored(SHORT, "b.gif")]
    assert index.record("job", items, records) == set()
    found = index.lookup([LONG, SHORT])
    assert {url: obj.key for url, obj in found.items()} == {LONG: "long.gif", SHORT: "b.gif"}
    row = aws.dynamodb().get_item(TableName=TABLE, Key={"url": {"S": index_key(LONG)}})["Item"]
    assert row["fullUrl"]["S"] == LONG
    assert len(index_key(LONG).encode()) <= 2048 and index_key(SHORT) == SHORT


def test_a_row_that_cannot_be_written_fails_only_itself(aws: Aws, index: DynamoIndex) -> None:
    huge = Item(SHORT + "?huge", "huge.gif", {"note": "x" * 500_000})
    items = [huge, Item(SHORT, "b.gif")]
    records = [_stored(huge.url, "huge.gif"), _stored(SHORT, "b.gif")]
    assert index.record("job", items, records) == {huge.url}
    assert set(index.lookup([huge.url, SHORT])) == {SHORT}


def test_a_long_url_does_not_fail_its_batch_in_the_pipeline(aws: Aws, tmp_path: Path) -> None:
    base = "/" + "d" * 1300  # the base URL has no length limit; a path has 1,024 characters
    long_path = "img/" + "a" * 1000 + ".gif"
    with FaultServer() as site, patched(), strict_map():
        gif = (FLAGS_DIR / "ad" / "ad.gif").read_bytes()
        site.set(f"{base}/{long_path}", Ok(gif))
        site.set(f"{base}/img/b.gif", Ok(gif))
        deployed = deploy_pipeline(aws, pipeline_config(tmp_path / "deployed"))
        base_url = site.base_url + base
        assert len(f"{base_url}/{long_path}".encode()) > 2048
        body = {"baseUrl": base_url, "resourcePaths": [long_path, "img/b.gif"]}
        execution = run(aws, deployed, body, "long")
    assert execution["status"] == "SUCCEEDED", (execution.get("error"), execution.get("cause"))
    rows = aws.dynamodb().scan(TableName=deployed.table)["Items"]
    assert len(rows) == 2
