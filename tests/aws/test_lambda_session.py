"""Each Lambda handler keeps its boto3 session and clients across invocations."""

from __future__ import annotations

import pytest

from imgflow.aws import client


def test_the_session_and_its_clients_are_reused_while_the_environment_stays(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setattr(client, "_lambda_sessions", {})
    made: list[object] = []
    real_connect = client.connect

    def counting_connect(*args: object, **kwargs: object) -> client.Aws:
        session = real_connect()
        made.append(session)
        return session

    monkeypatch.setattr(client, "connect", counting_connect)
    first = client.lambda_session()
    assert client.lambda_session() is first
    assert first.s3() is client.lambda_session().s3()
    assert first.region == "eu-west-1"
    assert len(made) == 1
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")  # new credentials: a new session
    assert client.lambda_session() is not first
    assert len(made) == 2


def test_handlers_use_the_kept_session() -> None:
    import inspect

    import lambdas.consolidate
    import lambdas.download
    import lambdas.plan

    for module in (lambdas.plan, lambdas.download, lambdas.consolidate):
        source = inspect.getsource(module)
        assert "lambda_session()" in source and "connect(" not in source, module.__name__
