"""On aws the download Lambda's engine obeys robots.txt and the opt-out headers too.

The settings the Lambda is deployed with (infra/lambda_env.py) carry etiquette's robots,
opt-out list and contact; a batch run with them (the Lambda's own entry point, into S3 on
moto) reads the host's robots.txt first (once; test_robots_per_job.py: once per job),
never requests a disallowed path and stores nothing of an opted-out image.
"""

from __future__ import annotations

import json

from support.rawserver import RawServer, ok

from imgflow.aws.client import Aws
from imgflow.aws.runtime.store import S3Store
from imgflow.config import from_mapping
from imgflow.demo.images import make_gif
from imgflow.engine.batch import run_batch_blocking
from imgflow.engine.plan import item_for
from imgflow.engine.records import Outcome, Summary
from imgflow.engine.settings import FetchConfig
from infra.lambda_env import lambda_fetch_settings

GIF = make_gif("aws-etiquette")


def test_a_lambda_batch_obeys_robots_and_opt_out_headers(aws: Aws) -> None:
    cfg = from_mapping({"etiquette": {"contact": "ops@example.org"}}, env={})
    shipped = FetchConfig.from_json(json.loads(json.dumps(lambda_fetch_settings(cfg))))
    assert shipped.robots and shipped.contact == "ops@example.org"
    aws.s3().create_bucket(Bucket="images")
    store = S3Store(aws.s3(), "images", "images/")
    with RawServer() as server:
        server.set("/robots.txt", ok(b"User-agent: *\nDisallow: /no/\n", "text/plain"))
        server.set("/a.gif", ok(GIF))
        server.set("/no/b.gif", ok(GIF))
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nX-Robots-Tag: noai\r\n"
        server.set("/c.gif", head + f"Content-Length: {len(GIF)}\r\n\r\n".encode() + GIF)
        base = server.url("")
        items = [item_for(base, p) for p in ("a.gif", "no/b.gif", "c.gif")]
        records = run_batch_blocking(items, settings=shipped, store=store, concurrency=2)
    paths = [path for _, path in server.requests]
    assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1
    assert "/no/b.gif" not in paths
    outcomes = {r.path: r.outcome for r in records}
    assert outcomes == {
        "a.gif": Outcome.STORED,
        "no/b.gif": Outcome.EXCLUDED,
        "c.gif": Outcome.EXCLUDED,
    }
    summary = Summary()
    for record in records:
        summary = summary.add(record.outcome)
    assert summary.to_json()["excluded"] == 2 and summary.failed == 0
    listed = aws.s3().list_objects_v2(Bucket="images").get("Contents", [])
    assert [o["Key"].rsplit("/", 1)[-1] for o in listed] == ["a.gif"]
    agent = [
        line
        for line in server.heads[0].decode().splitlines()
        if line.lower().startswith("user-agent:")
    ]
    assert agent and "(+ops@example.org)" in agent[0]
