"""A role for API Gateway's trust policy, against a stand-in that assumes it as API Gateway
does (no deployment makes one now: the job route invokes the submit Lambda; an older
deployment's StartExecution integration used one, and the stand-in still serves it).

API Gateway assumes an integration's credentials role as apigateway.amazonaws.com and sends
neither aws:SourceAccount nor aws:SourceArn; a condition on either refuses it (500).
"""

from __future__ import annotations

from support.http_api import api_gateway_may_assume

from infra.iam import API_SERVICE, LAMBDA_SERVICE, trust_policy
from infra.names import Names


def _names() -> Names:
    return Names(deployment="d", region="us-east-1", account="123456789012")


def test_the_stand_in_refuses_conditions_api_gateway_cannot_meet() -> None:
    allow = {"Effect": "Allow", "Principal": {"Service": API_SERVICE}, "Action": "sts:AssumeRole"}
    source = {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert api_gateway_may_assume({"Statement": [allow]})
    assert not api_gateway_may_assume({"Statement": [{**allow, "Condition": source}]})
    lambda_only = {**allow, "Principal": {"Service": LAMBDA_SERVICE}}
    assert not api_gateway_may_assume({"Statement": [lambda_only]})


def test_a_role_for_api_gateway_can_be_assumed_by_it() -> None:
    assert api_gateway_may_assume(trust_policy(API_SERVICE, _names()))
    assert not api_gateway_may_assume(trust_policy(LAMBDA_SERVICE, _names()))
