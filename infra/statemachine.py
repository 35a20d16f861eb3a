"""The state machine that runs a job on AWS, as an Amazon States Language document.

    Plan (Lambda)          validate the job, write the batches to jobs/<job-id>/batches.json
      -> Download (Map)    Distributed Map over the plan's mapKey (ItemReader s3:getObject):
         |                 the batches (a seed job) or the lanes (a urls job: one per host,
         |                 jobs/<job-id>/lanes.json), one STANDARD child per item, at most
         |                 `max_batches` at once:
         |                   Fetch (download Lambda; retried on transient Lambda errors,
         |                   and once on Sandbox.Timedout or Lambda.Unknown: a
         |                   timeout or out of memory);
         |                   a batch that ran short of time returns its unstarted items
         |                   as "rest": MoreToDo? -> NextPart -> Fetch runs them again;
         |                   a lane's batch, once done, returns its lane's next batch as
         |                   "next": MoreToDo? -> NextBatch -> Fetch (so one host's
         |                   batches run one after the other, never side by side)
         |                   on any other error: RecordCrash (download Lambda writes the
         |                   batch's records as failed; the lane goes on: AfterCrash?) or,
         |                   if that fails too, BatchLost (the lane's later batches too)
         |                 a failed Map (a child that could not start) is caught: the
         |                 error goes to $.mapError and Consolidate still runs
      -> Consolidate       read jobs/<job-id>/results/*.json, write the failures file;
                           every path of a batch without results is reported failed
      -> AnyFailed?        Choice on $.allSucceeded
           -> Notify (SNS publish) -> Failed (Fail)
           -> Succeeded
    Plan or Consolidate failing (an invalid job, out of memory, a timeout) is caught:
      -> PlanFailed / ConsolidateFailed (Pass: step, job id, error, cause)
      -> NotifyError (SNS publish of that, as JSON) -> StepFailed (Fail)

Nothing proportional to the number of images passes through state: the plan result, the
Map items (one batch of items each) and the small counts the Lambdas return. The Map's own
output goes to S3 through ResultWriter and is dropped from state (ResultPath null).

The execution input is either the original body ``{"baseUrl", "resourcePaths",
"lambdaConcur"}`` or ``{"urls", "lambdaConcur"}`` (the HTTP API) or
``{"manifest": {"bucket", "key"}}`` or ``{"manifest": "s3://<bucket>/<key>"}`` naming a job
object under the bucket's jobs/ (the CLI; a large job through the API). Either may carry
``"batchSize"``. The job id is the execution name.
"""

from __future__ import annotations

from typing import Any

FAIL_CAUSE = "One or more resources failed to download"
FAIL_ERROR = "DownloadsFailed"
MAP_RESULTS_PREFIX = "jobs/_map-results"

# The service integrations, in the partition of the functions' ARNs (aws, aws-cn,
# aws-us-gov): "arn:<partition>:states:::<service>:<action>".
LAMBDA_INVOKE = "lambda:invoke"
SNS_PUBLISH = "sns:publish"
S3_GET_OBJECT = "s3:getObject"
S3_PUT_OBJECT = "s3:putObject"


def integration(partition: str, action: str) -> str:
    """The Resource of a Step Functions service integration in `partition`."""
    return f"arn:{partition}:states:::{action}"


def partition_of(arn: str) -> str:
    """The partition an ARN names (``arn:<partition>:service:...``); aws when it has none."""
    parts = arn.split(":")
    return parts[1] if len(parts) > 5 and parts[0] == "arn" else "aws"


# AWS's "Handle Lambda service exceptions" list: errors of the Lambda service, not of the
# function, worth a few retries with backoff.
TRANSIENT_LAMBDA_ERRORS = [
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
TRANSIENT_ATTEMPTS = 4
# A function that ran for its whole timeout answers Sandbox.Timedout (the errorType Lambda
# reports, which a Lambda task raises as its error name); Lambda.Unknown covers other
# unhandled ends (out of memory). Retrying a batch that took its whole timeout repeats
# requests to the same site, so only once.
UNKNOWN_LAMBDA_ERROR = "Lambda.Unknown"
TIMEOUT_LAMBDA_ERROR = "Sandbox.Timedout"
UNKNOWN_ATTEMPTS = 1
MAP_ERROR_PATH = "$.mapError"
STEP_ERROR_PATH = "$.stepError"
STEP_FAILED_ERROR = "StepFailed"


def _retry() -> list[dict[str, Any]]:
    backoff = {"IntervalSeconds": 2, "BackoffRate": 2.0, "JitterStrategy": "FULL"}
    return [
        {"ErrorEquals": TRANSIENT_LAMBDA_ERRORS, "MaxAttempts": TRANSIENT_ATTEMPTS, **backoff},
        {
            "ErrorEquals": [TIMEOUT_LAMBDA_ERROR, UNKNOWN_LAMBDA_ERROR],
            "MaxAttempts": UNKNOWN_ATTEMPTS,
            **backoff,
        },
    ]


def _invoke(function_arn: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A Lambda task whose state output is the function's JSON result."""
    return {
        "Type": "Task",
        "Resource": integration(partition_of(function_arn), LAMBDA_INVOKE),
        "Parameters": {"FunctionName": function_arn, "Payload": payload},
        "ResultSelector": {"result.$": "$.Payload"},
        "OutputPath": "$.result",
        "Retry": _retry(),
        **extra,
    }


def _caught(step: str) -> list[dict[str, Any]]:
    """A Catch of every error of `step`, on to its notice."""
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": STEP_ERROR_PATH, "Next": f"{step}Failed"}]


def _step_failed(step: str) -> dict[str, Any]:
    """What the notice says of a step that failed."""
    return {
        "Type": "Pass",
        "Parameters": {
            "step": step,
            "jobId.$": "$$.Execution.Name",
            "error.$": f"{STEP_ERROR_PATH}.Error",
            "cause.$": f"{STEP_ERROR_PATH}.Cause",
        },
        "Next": "NotifyError",
    }


def _present(path: str) -> dict[str, Any]:
    """A Choice rule: `path` is there and not null (a missing path is no runtime error)."""
    return {"And": [{"Variable": path, "IsPresent": True}, {"Variable": path, "IsNull": False}]}


def _batch_processor(download_arn: str) -> dict[str, Any]:
    """The child workflow run once per batch (a seed job) or per lane (a urls job)."""
    return {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Fetch",
        "States": {
            "Fetch": _invoke(
                download_arn,
                {"batch.$": "$"},
                Catch=[
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordCrash"}
                ],
                Next="MoreToDo",
            ),
            # The items a batch could not start before its time ran out, in a new invocation.
            # Then the lane's next batch (a urls job), in this same child: one at a time.
            "MoreToDo": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.rest", "IsNull": False, "Next": "NextPart"},
                    {**_present("$.next"), "Next": "NextBatch"},
                ],
                "Default": "BatchDone",
            },
            "NextPart": {"Type": "Pass", "InputPath": "$.rest", "Next": "Fetch"},
            "NextBatch": {"Type": "Pass", "InputPath": "$.next", "Next": "Fetch"},
            "BatchDone": {"Type": "Succeed"},
            "RecordCrash": _invoke(
                download_arn,
                {"batch.$": "$", "crash.$": "$.error"},
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "BatchLost"}],
                Next="AfterCrash",
            ),
            "AfterCrash": {
                "Type": "Choice",
                "Choices": [{**_present("$.next"), "Next": "NextBatch"}],
                "Default": "BatchDone",
            },
            # Consolidate reports a batch without a results object as failed.
            "BatchLost": {"Type": "Pass", "Result": {"lost": True}, "End": True},
        },
    }


def definition(
    *,
    plan_arn: str,
    download_arn: str,
    consolidate_arn: str,
    topic_arn: str,
    bucket: str,
    max_batches: int,
) -> dict[str, Any]:
    """The state machine definition (a JSON-able dict) for one deployment."""
    if max_batches < 1:
        raise ValueError("max_batches must be at least 1")
    partition = partition_of(plan_arn)
    return {
        "Comment": "imgflow: download a job's images in batches, report every failure",
        "StartAt": "Plan",
        "States": {
            "Plan": _invoke(
                plan_arn,
                {"input.$": "$", "jobId.$": "$$.Execution.Name"},
                Catch=_caught("Plan"),
                Next="Download",
            ),
            "Download": {
                "Type": "Map",
                "MaxConcurrency": max_batches,
                "ItemReader": {
                    "Resource": integration(partition, S3_GET_OBJECT),
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.mapKey"},
                },
                "ItemProcessor": _batch_processor(download_arn),
                "ResultWriter": {
                    "Resource": integration(partition, S3_PUT_OBJECT),
                    "Parameters": {"Bucket": bucket, "Prefix": MAP_RESULTS_PREFIX},
                },
                "ResultPath": None,
                # A child that cannot start fails the Map run (no failure is tolerated):
                # Consolidate still runs and reports the batches that wrote no results.
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "ResultPath": MAP_ERROR_PATH,
                        "Next": "Consolidate",
                    }
                ],
                "Next": "Consolidate",
            },
            "Consolidate": _invoke(
                consolidate_arn, {"plan.$": "$"}, Catch=_caught("Consolidate"), Next="AnyFailed"
            ),
            "AnyFailed": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.allSucceeded", "BooleanEquals": False, "Next": "Notify"}
                ],
                "Default": "Succeeded",
            },
            "Notify": {
                "Type": "Task",
                "Resource": integration(partition, SNS_PUBLISH),
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject": "imgflow: downloads failed",
                    "Message.$": "$.message",
                },
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3}],
                "ResultPath": None,
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "Error": FAIL_ERROR, "Cause": FAIL_CAUSE},
            "PlanFailed": _step_failed("Plan"),
            "ConsolidateFailed": _step_failed("Consolidate"),
            "NotifyError": {
                "Type": "Task",
                "Resource": integration(partition, SNS_PUBLISH),
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject": "imgflow: job failed",
                    "Message.$": "States.JsonToString($)",
                },
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3}],
                "ResultPath": None,
                "Next": "StepFailed",
            },
            "StepFailed": {
                "Type": "Fail",
                "Error": STEP_FAILED_ERROR,
                "Cause": "A step of the job failed; the notice names it",
            },
            "Succeeded": {"Type": "Succeed"},
        },
    }
