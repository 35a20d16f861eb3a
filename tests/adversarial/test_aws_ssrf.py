"""SSRF on the AWS backend: the download Lambda (allow_private_targets false) refuses
non-public targets given directly, reached through redirects, and behind DNS answers.

The handler runs from the deployed zip (moto's Lambda, patched), through a direct invoke or
the whole state machine. DNS is patched in the test only: ``images.public.example`` looks
public to the guard (93.184.216.34) while connections to it reach our FaultServer on
127.0.0.1; ``internal.example`` answers 10.0.0.1 and ``mixed.example`` a public address and
10.0.0.1 to the guard, and would also reach the FaultServer if the guard let them through,
so a guard that fails shows up as a request for ``/secret/...`` at the server.
"""

from __future__ import annotations

import json
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.aws_moto import (
    deploy_pipeline,
    index_rows,
    moto_session,
    notices,
    run_execution,
    stored_objects,
)
from support.faults import image_body
from support.faultserver import FaultServer, Ok, Redirect

from imgflow.aws.client import Aws, connect
from imgflow.aws.runtime.jobs import BatchSpec, get_json, result_key
from imgflow.config import from_mapping
from imgflow.engine import guard
from imgflow.engine.messages import REFUSED_TARGET, failure_class
from imgflow.engine.plan import item_for
from infra.statemachine import FAIL_CAUSE

PUBLIC = "93.184.216.34"
PUBLIC_NAME = "images.public.example"
GUARD_DNS = {
    PUBLIC_NAME: [PUBLIC],
    "internal.example": ["10.0.0.1"],
    "mixed.example": [PUBLIC, "10.0.0.1"],
}
GIF = b"GIF89a" + b"\x01" * 64


@pytest.fixture(scope="module")
def session() -> Iterator[Aws]:
    with moto_session():
        yield connect(region="us-east-1")


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch, rebinding_dns: None) -> None:
    """As `rebinding_dns`, and the connect-time check lets the test server (127.0.0.1)
    through, so the refusals seen are the URL guard's, hop by hop."""
    import imgflow.aws.runtime.download as lambda_download

    strict = guard.make_address_check

    def lenient(**kwargs: Any) -> guard.AddressCheck:
        check = strict(**kwargs)

        async def allow_test_server(address: str) -> str | None:
            return None if address == "127.0.0.1" else await check(address)

        return allow_test_server

    monkeypatch.setattr(lambda_download, "make_address_check", lenient)


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard sees GUARD_DNS; connections to those names reach 127.0.0.1 (rebinding)."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if host in GUARD_DNS:
            host = "127.0.0.1"
        return real_getaddrinfo(host, port, *args, **kwargs)

    async def resolver(host: str) -> list[str]:
        if host in GUARD_DNS:
            return GUARD_DNS[host]
        return await guard.system_resolver(host)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    kwdefaults = guard.make_guard.__kwdefaults__
    assert kwdefaults is not None and "resolver" in kwdefaults
    monkeypatch.setitem(kwdefaults, "resolver", resolver)


@pytest.fixture
def guarded(session: Aws, tmp_path: Path) -> Any:
    """A deployment with the default allow_private_targets: false."""
    cfg = from_mapping(
        {
            "deployment": f"ssrf{uuid.uuid4().hex[:8]}",
            "aws": {"region": "us-east-1", "state_dir": str(tmp_path / "deployed")},
            "fetch": {"timeout": 2, "connect_timeout": 1, "retries": 0},
        },
        env={},
    )
    assert cfg.aws.allow_private_targets is False
    return deploy_pipeline(session, cfg)


def invoke_download(aws: Aws, deployed: Any, base_url: str, paths: list[str]) -> list[Any]:
    """Run one batch through the download Lambda; its result records."""
    spec = BatchSpec("direct", 0, tuple(item_for(base_url, path) for path in paths), 4)
    answer = aws.lambda_().invoke(
        FunctionName=deployed.outputs.functions["download"],
        Payload=json.dumps({"batch": spec.to_json()}).encode(),
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    counts = json.loads(answer["Payload"].read())
    assert counts["total"] == len(paths)
    records: list[Any] = get_json(aws.s3(), deployed.bucket, result_key("direct", 0))
    return records


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://127.0.0.1:{port}", "127.0.0.1 is a loopback address"),
        ("http://localhost:{port}", "localhost resolves to 127.0.0.1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}", "(127.0.0.1) is a loopback address"),
        ("http://2130706433:{port}", "2130706433 resolves to 127.0.0.1 is a loopback"),
        ("http://169.254.169.254", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1", "10.0.0.1 is a private address"),
        ("http://internal.example:{port}", "internal.example resolves to 10.0.0.1 is a private"),
        ("http://mixed.example:{port}", "mixed.example resolves to 10.0.0.1 is a private"),
    ],
    ids=["loopback", "localhost", "v4-mapped", "decimal", "metadata", "private", "dns", "mixed"],
)
def test_non_public_targets_are_refused_by_the_download_lambda(
    session: Aws,
    guarded: Any,
    fault_server: FaultServer,
    dns: None,
    target: str,
    reason: str,
) -> None:
    fault_server.set("/secret/a.gif", Ok(GIF))
    base = target.format(port=fault_server.port)
    records = invoke_download(session, guarded, base, ["secret/a.gif"])
    [record] = records
    assert record["outcome"] == "failed"
    assert failure_class(record["error"]) == REFUSED_TARGET
    assert record["error"].startswith(f"{REFUSED_TARGET}: {base}/secret/a.gif")
    assert reason in record["error"]
    assert fault_server.requests == []
    assert stored_objects(session, guarded.bucket) == {}
    assert index_rows(session, guarded.table) == {}


def test_redirects_to_non_public_targets_are_refused_in_the_pipeline(
    session: Aws, guarded: Any, fault_server: FaultServer, dns: None
) -> None:
    port = fault_server.port
    ok, ok2 = image_body(random.Random(1)), GIF
    fault_server.set("/ok.gif", Ok(ok))
    fault_server.set("/ok2.gif", Ok(ok2))
    fault_server.set("/secret/x.gif", Ok(GIF))
    redirects = {
        "/r/metadata.gif": ("http://169.254.169.254/latest/meta-data/", "link-local"),
        "/r/loopback.gif": (f"http://127.0.0.1:{port}/secret/x.gif", "loopback"),
        "/r/localhost.gif": (f"http://localhost:{port}/secret/x.gif", "loopback"),
        "/r/private.gif": ("http://10.0.0.1/secret/x.gif", "private"),
        "/r/dns.gif": (f"http://internal.example:{port}/secret/x.gif", "private"),
        "/r/mixed.gif": (f"http://mixed.example:{port}/secret/x.gif", "private"),
        "/r/v6.gif": (f"http://[::1]:{port}/secret/x.gif", "loopback"),
        "/r/two-hops.gif": ("/r/metadata.gif", "link-local"),
    }
    for path, (location, _) in redirects.items():
        fault_server.set(path, Redirect(location))
    fault_server.set("/r/same-host.gif", Redirect("/ok2.gif"))
    base = f"http://{PUBLIC_NAME}:{port}"
    body = {
        "baseUrl": base,
        "resourcePaths": ["/ok.gif", "/r/same-host.gif", *redirects],
        "lambdaConcur": 3,
    }

    execution = run_execution(session, guarded.state_machine_arn, body, "redirects")

    assert execution["status"] == "FAILED" and execution["cause"] == FAIL_CAUSE
    records = {
        r["url"]: r for r in get_json(session.s3(), guarded.bucket, result_key("redirects", 0))
    }
    assert len(records) == 2 + len(redirects)
    assert records[f"{base}/ok.gif"]["outcome"] == "stored"
    assert records[f"{base}/r/same-host.gif"]["outcome"] == "stored"
    for path, (_, kind) in redirects.items():
        error = records[f"{base}{path}"]["error"]
        assert error.startswith(f"{REFUSED_TARGET}: {base}{path}"), error
        assert f"is a {kind} address" in error, error
    assert not [r for r in fault_server.requests if r.path.startswith("/secret/")]
    assert fault_server.count("/r/metadata.gif") == 2  # directly and as the second hop
    objects = stored_objects(session, guarded.bucket)
    assert sorted(objects.values()) == sorted([ok, ok2])
    assert set(index_rows(session, guarded.table)) == {f"{base}/ok.gif", f"{base}/r/same-host.gif"}
    [notice] = notices(session, guarded.queue_url)
    sent = json.loads(notice)
    assert sorted(sent) == sorted(records[f"{base}{p}"]["error"] for p in redirects)


def test_a_name_rebinding_to_loopback_is_refused_at_connect(
    session: Aws, guarded: Any, fault_server: FaultServer, rebinding_dns: None
) -> None:
    """The URL guard sees a public answer; the connection would reach 127.0.0.1."""
    fault_server.set("/secret/a.gif", Ok(GIF))
    base = f"http://{PUBLIC_NAME}:{fault_server.port}"
    [record] = invoke_download(session, guarded, base, ["secret/a.gif"])
    assert record["outcome"] == "failed"
    assert record["error"].startswith(f"{REFUSED_TARGET}: {base}/secret/a.gif")
    assert f"{PUBLIC_NAME} resolves to 127.0.0.1 is a loopback address" in record["error"]
    assert fault_server.requests == []
    assert stored_objects(session, guarded.bucket) == {}
