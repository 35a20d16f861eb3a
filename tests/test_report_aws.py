"""The report of an aws execution: result objects in S3, images behind presigned URLs.

A moto server on 127.0.0.1 stands in for S3 and Step Functions, so the page's presigned
links are real HTTP URLs a headless Chromium loads (that part skips without chromium).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from moto.server import ThreadedMotoServer
from support.cdp import Browser, find_chromium
from support.report_run import images

from imgflow.aws.client import Aws, connect
from imgflow.aws.runtime.jobs import job_key, put_json, summary_key, write_results
from imgflow.engine import messages
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.report.aws import write_aws

BUCKET = "report-images"
JOB = "job-feedc0ffee"
PREFIX = "images/"
HOST = "img.example"


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto's backends live in this process: begin from none (another test's bucket)
        urllib.request.urlopen(
            urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")
        ).close()
        yield connect(profile=None, region="us-east-1", endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


def _start_job(aws: Aws) -> str:
    """Starts an execution named JOB of a one-state machine; returns its ARN."""
    sfn = aws.stepfunctions()
    machine = sfn.create_state_machine(
        name="report",
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/report",
    )
    return str(
        sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=JOB)["executionArn"]
    )


def _execution(aws: Aws, excluded: Sequence[ResultRecord] = ()) -> str:
    """A finished job as the pipeline leaves it: images, result objects, summary."""
    s3 = aws.s3()
    s3.create_bucket(Bucket=BUCKET)
    bodies = images()
    stored: list[ResultRecord] = []
    for path, (body, kind) in bodies.items():
        key = f"{HOST}/{path}"
        s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=body, ContentType=kind)
        outcome = Outcome.SKIPPED if path.endswith("first.gif") else Outcome.STORED
        stored.append(
            ResultRecord(f"https://{HOST}/{path}", path, outcome, 200, key, len(body), "0" * 64)
        )
    missing = f"https://{HOST}/missing.gif"
    failed = [
        ResultRecord(
            missing, "missing.gif", Outcome.FAILED, 404, error=messages.not_found(missing)
        ),
        ResultRecord(
            f"https://{HOST}/x.png",
            "x.png",
            Outcome.FAILED,
            503,
            error=messages.http_error(503, f"https://{HOST}/x.png"),
        ),
    ]
    write_results(s3, BUCKET, JOB, 0, stored[:8])
    write_results(s3, BUCKET, JOB, 1, stored[8:] + failed)
    if excluded:
        write_results(s3, BUCKET, JOB, 2, list(excluded))
    total = len(stored) + len(failed) + len(excluded)
    put_json(s3, BUCKET, job_key(JOB), {"baseUrl": f"https://{HOST}/", "resourcePaths": []})
    put_json(
        s3,
        BUCKET,
        summary_key(JOB),
        {
            "total": total,
            "stored": len(stored) - 1,
            "skipped": 1,
            "failed": 2,
            "excluded": len(excluded),
            "duplicates": 0,
        },
    )
    sfn = aws.stepfunctions()
    arn = _start_job(aws)
    if sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        sfn.stop_execution(executionArn=arn)
    return arn


def test_an_execution_report_links_presigned_urls_and_states_their_expiry(
    s3_server: Aws, tmp_path: Path
) -> None:
    arn = _execution(s3_server)
    page = write_aws(
        s3_server, BUCKET, PREFIX, arn, tmp_path / "r.html", link_seconds=3600, page_size=4
    )
    text = page.read_text()
    assert 'data-count="stored" data-value="14"' in text
    assert 'data-count="skipped" data-value="1"' in text
    assert 'data-class="not-found" data-count="1"' in text
    assert 'data-class="http-5xx" data-count="1"' in text
    assert "presigned URL valid for 1 min 0 s" not in text  # (said in hours, below)
    assert "valid for 60 min 0 s" in text or "valid for 1 h 0 min" in text
    assert f"imgflow retry {arn}" in text
    items = json.loads(text.split('id="gallery-data">', 1)[1].split("</script>", 1)[0])["items"]
    assert len(items) == 15
    url = items[0][6]
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["3600"] and "X-Amz-Signature" in query

    embedded = write_aws(s3_server, BUCKET, PREFIX, arn, tmp_path / "e.html", embed_thumbnails=True)
    assert embedded.read_text().count('"data:image/webp;base64,') == 15

    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with Browser.launch(tmp_path) as browser:
        tab = browser.open(page.as_uri())
        tab.evaluate("document.getElementById('gallery').scrollIntoView()")
        tab.wait_for(
            "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth)"
        )
        hosts = {urlsplit(u).hostname for u in tab.requests if u.startswith("http")}
        assert hosts == {"127.0.0.1"}
        assert tab.console_errors == []
        tab.screenshot(tmp_path / "aws-report.png", full_page=True)


def test_an_execution_report_groups_what_the_sites_kept_out_by_host_and_reason(
    s3_server: Aws, tmp_path: Path
) -> None:
    kept_out = [
        ResultRecord(
            f"https://{HOST}/no/{n}.gif",
            f"no/{n}.gif",
            Outcome.EXCLUDED,
            error=f"Disallowed by robots.txt: https://{HOST}/no/{n}.gif",
        )
        for n in range(3)
    ] + [
        ResultRecord(
            f"https://{HOST}/ai.gif",
            "ai.gif",
            Outcome.EXCLUDED,
            200,
            error=f"Opted out (X-Robots-Tag: noai): https://{HOST}/ai.gif",
        )
    ]
    arn = _execution(s3_server, kept_out)
    text = write_aws(s3_server, BUCKET, PREFIX, arn, tmp_path / "r.html").read_text()
    section = text.split('<section id="excluded"', 1)[1].split("</section>", 1)[0]
    assert "Excluded (4)" in section
    assert 'Disallowed by robots.txt</td><td class="num">3</td>' in section
    assert 'Opted out (X-Robots-Tag: noai)</td><td class="num">1</td>' in section
    assert f"https://{HOST}/no/0.gif" in section and HOST in section
    # kept out is neither stored nor failed: no failure group, no gallery item
    assert 'data-class="not-found" data-count="1"' in text
    items = json.loads(text.split('id="gallery-data">', 1)[1].split("</script>", 1)[0])["items"]
    assert len(items) == 15


def test_an_image_in_a_shard_links_nowhere_and_an_object_key_is_not_prefixed_twice(
    s3_server: Aws, tmp_path: Path
) -> None:
    """A webdataset job's records name their batch's shard: no object of the image's own to
    link. A record naming its object's full key (as the download step writes) links it."""
    s3 = s3_server.s3()
    s3.create_bucket(Bucket=BUCKET)
    body = b"GIF89a" + b"\0" * 10
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{HOST}/own.gif", Body=body)
    records = [
        ResultRecord(f"https://{HOST}/own.gif", "own.gif", Outcome.STORED, 200,
                     f"{PREFIX}{HOST}/own.gif", len(body), "0" * 64),
        ResultRecord(f"https://{HOST}/in.gif", "in.gif", Outcome.STORED, 200,
                     f"shards/{JOB}/00000.tar", 10, "1" * 64),
    ]  # fmt: skip
    write_results(s3, BUCKET, JOB, 0, records)
    put_json(s3, BUCKET, job_key(JOB), {"baseUrl": f"https://{HOST}/", "resourcePaths": []})
    counts = {"total": 2, "stored": 2, "skipped": 0, "failed": 0, "excluded": 0}
    put_json(s3, BUCKET, summary_key(JOB), {**counts, "duplicates": 0})
    arn = _start_job(s3_server)
    page = write_aws(s3_server, BUCKET, PREFIX, arn, tmp_path / "r.html", link_seconds=60)
    text = page.read_text()
    items = json.loads(text.split('id="gallery-data">', 1)[1].split("</script>", 1)[0])["items"]
    own, shard = items
    assert urlsplit(own[6]).path == f"/{BUCKET}/{PREFIX}{HOST}/own.gif"
    assert shard[6] == ""
