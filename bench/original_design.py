"""The original pipeline's state machine, rebuilt from its description, for bench/aws_cost.py.

Source: ../shared/reference/seed-step-function-map-io.txt (a CDK stack; its code is not
reused here, the definition below is written from the prose and the JSON it shows):

    batchLambdaTask (Lambda)      paths -> {"tasks": [{"resourcePaths": [5 paths],
                                               "batchInput": {"baseUrl", "lambdaConcur"}}]}
      -> resourceIterator (Map)   inline Map over $.tasks, MaxConcurrency = maxLambdaConcurrency,
         |                          downloadLambdaTask: one download Lambda per batch of 5,
         |                          returns [{url, statusCode, filename} | {url, statusCode,
         |                          message}] (the Lambda ARN as Resource: payloadResponseOnly)
         |                        ResultSelector {"results.$": "$[*][*]"}: one flat list of
         |                          every image's record passes through state
      -> consolidateLambdaTask    -> {"allSucceeded", "succeeded": [...], "errored": [...]}
      -> dynamoPutIterator (Map)  inline Map over $.succeeded, one DynamoDB putItem per image
      -> Check for errored tasks  Choice on $.allSucceeded
           false -> publishErroredTasks (SNS publish) -> Fail
           else  -> All resource downloads succeeded (Pass)

Choices the description leaves open, made here: maxLambdaConcurrency = 10 for both Maps
(it does not change any count); consolidate reads the whole Map output ({"results": [...]});
the putItem Map discards its results (ResultPath null) so $.allSucceeded reaches the Choice.

The three handlers are stand-ins that honour the contracts above. `download` does no
network I/O: it fabricates a 200 record per path (the filename as the description shows
it: host + "/" + the path's last part), so every image succeeds. They run in process
through moto's no-docker Lambda backend like imgflow's (tests/aws/lambda_invoke.py): this
file is deployed as the functions' zip.

moto 5.2.5's interpreter runs every integration used here, including
``arn:aws:states:::dynamodb:putItem`` and ``arn:aws:states:::sns:publish``.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urlsplit

BATCH_SIZE = 5
MAX_LAMBDA_CONCURRENCY = 10
LAMBDA_CONCUR = 5
# The example base URL in the description; the stand-in fabricates records for it, so the
# size of the state payload is that of the documented records.
BASE_URL = "https://www.fluentpython.com/data/flags"

DYNAMODB_PUT_ITEM = "arn:aws:states:::dynamodb:putItem"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
FUNCTIONS = {
    "batch": "batch_handler",
    "download": "download_handler",
    "consolidate": "consolidate_handler",
}


def definition(
    *,
    batch_arn: str,
    download_arn: str,
    consolidate_arn: str,
    table: str,
    topic_arn: str,
    max_concurrency: int = MAX_LAMBDA_CONCURRENCY,
) -> dict[str, Any]:
    """The original state machine as an Amazon States Language document."""
    return {
        "Comment": "The original design (step-function-map-io), rebuilt for bench/aws_cost.py",
        "StartAt": "batchLambdaTask",
        "States": {
            "batchLambdaTask": {
                "Type": "Task",
                "Resource": batch_arn,
                "InputPath": "$",
                "ResultPath": "$",
                "Next": "resourceIterator",
            },
            "resourceIterator": {
                "Type": "Map",
                "ItemsPath": "$.tasks",
                "MaxConcurrency": max_concurrency,
                "Iterator": {
                    "StartAt": "downloadLambdaTask",
                    "States": {
                        "downloadLambdaTask": {
                            "Type": "Task",
                            "Resource": download_arn,
                            "InputPath": "$",
                            "ResultPath": "$",
                            "TimeoutSeconds": 120,
                            "End": True,
                        }
                    },
                },
                "ResultSelector": {"results.$": "$[*][*]"},
                "Next": "consolidateLambdaTask",
            },
            "consolidateLambdaTask": {
                "Type": "Task",
                "Resource": consolidate_arn,
                "InputPath": "$",
                "ResultPath": "$",
                "Next": "dynamoPutIterator",
            },
            "dynamoPutIterator": {
                "Type": "Map",
                "ItemsPath": "$.succeeded",
                "MaxConcurrency": max_concurrency,
                "Iterator": {
                    "StartAt": "commitSucceededToDynamoTask",
                    "States": {
                        "commitSucceededToDynamoTask": {
                            "Type": "Task",
                            "Resource": DYNAMODB_PUT_ITEM,
                            "Parameters": {
                                "TableName": table,
                                "Item": {
                                    "url": {"S.$": "$.url"},
                                    "filename": {"S.$": "$.filename"},
                                },
                            },
                            "End": True,
                        }
                    },
                },
                "ResultPath": None,
                "Next": "Check for errored tasks",
            },
            "Check for errored tasks": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.allSucceeded",
                        "BooleanEquals": False,
                        "Next": "publishErroredTasks",
                    }
                ],
                "Default": "All resource downloads succeeded",
            },
            "publishErroredTasks": {
                "Type": "Task",
                "Resource": SNS_PUBLISH,
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Message.$": "States.JsonToString($.errored)",
                },
                "Next": "All resource downloads did not succeed",
            },
            "All resource downloads did not succeed": {
                "Type": "Fail",
                "Cause": "One or more resources failed to download",
            },
            "All resource downloads succeeded": {"Type": "Pass", "End": True},
        },
    }


# -- stand-in handlers (deployed as this file's zip) ----------------------------------------


def batch_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """{"baseUrl", "resourcePaths", "lambdaConcur"} -> {"tasks": [batches of 5 paths]}."""
    paths = list(event["resourcePaths"])
    batch_input = {"baseUrl": event["baseUrl"], "lambdaConcur": event["lambdaConcur"]}
    return {
        "tasks": [
            {"resourcePaths": paths[i : i + BATCH_SIZE], "batchInput": batch_input}
            for i in range(0, len(paths), BATCH_SIZE)
        ]
    }


def download_handler(event: dict[str, Any], context: object) -> list[dict[str, Any]]:
    """One batch -> one record per path. Fabricated: no request is made, all succeed."""
    base = event["batchInput"]["baseUrl"].rstrip("/")
    host = urlsplit(base).netloc
    records: list[dict[str, Any]] = []
    for path in event["resourcePaths"]:
        url = f"{base}/{path}"
        records.append(
            {"url": url, "statusCode": 200, "filename": f"{host}/{posixpath.basename(path)}"}
        )
    return records


def consolidate_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """{"results": [records]} -> {"allSucceeded", "succeeded", "errored"}."""
    results = event["results"]
    succeeded = [r for r in results if r.get("statusCode") == 200 and "filename" in r]
    errored = [
        f"Could not find: {r['url']}"
        for r in results
        if not (r.get("statusCode") == 200 and "filename" in r)
    ]
    return {"allSucceeded": not errored, "succeeded": succeeded, "errored": errored}
