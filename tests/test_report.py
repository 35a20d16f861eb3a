"""`imgflow report` without a browser: failure classes, the page's content, the CLI, the
fallback without Pillow, and a 100,000-image run in flat memory and a small page."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from support.cli_run import run_cli
from support.faultserver import FaultServer, Ok
from support.report_run import FAILING, make_run, run_paths

from imgflow.demo.images import make_gif
from imgflow.engine import messages
from imgflow.engine.failures import FailureKind
from imgflow.engine.plan import Item
from imgflow.engine.records import Outcome, ResultRecord
from imgflow.local.folder import DB_NAME
from imgflow.local.index import Database
from imgflow.report import local, render_local, thumbs, write_local
from imgflow.report.classify import classify
from imgflow.sources.job_json import from_job

URL = "https://img.example/a/b.jpg"


@pytest.mark.parametrize(
    ("message", "status", "slug"),
    [
        (messages.not_found(URL), 404, "not-found"),
        (messages.http_error(410, URL), 410, "not-found"),
        (messages.http_error(503, URL), 503, "http-5xx"),
        (messages.http_error(500, URL), 500, "http-5xx"),
        (messages.http_error(429, URL), 429, "throttled"),
        (
            messages.http_error(503, URL) + " (Retry-After 120s is over the 60s limit)",
            503,
            "throttled",
        ),
        (messages.http_error(403, URL), 403, "http-4xx"),
        (messages.failure(messages.TIMED_OUT, URL, "read timeout"), None, "timeout"),
        (
            messages.failure(
                messages.CONNECTION_ERROR,
                URL,
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
            ),
            None,
            "tls",
        ),
        (messages.failure(messages.CONNECTION_RESET, URL), None, "connection"),
        (messages.failure(messages.CONNECTION_REFUSED, URL), None, "connection"),
        (messages.failure(messages.DNS_FAILED, URL, "Name or service not known"), None, "dns"),
        (messages.failure(messages.TOO_LARGE, URL, "60000000 bytes"), 200, "too-large"),
        (messages.failure(messages.NOT_AN_IMAGE, URL, "text/html"), 200, "not-an-image"),
        (messages.failure(messages.TOO_MANY_REDIRECTS, URL), 302, "redirect"),
        (messages.failure(messages.REFUSED_TARGET, URL, "loopback"), None, "refused-target"),
        (messages.failure(messages.STORE_FAILED, URL, "disk"), 200, "storage"),
        (f"No space left: {URL}", 200, "storage"),
        (
            "Certificate rejected for img.example: certificate has expired (" + URL + ")",
            None,
            "tls",
        ),
        (messages.failure(messages.PROXY_REFUSED, URL, "407"), None, "proxy"),
        (messages.failure(messages.PROXY_UNREACHABLE, URL), None, "proxy"),
        (messages.throttled(URL, 503, 94, 12), 503, "throttled"),
        (messages.failure(messages.BAD_RESPONSE, URL, "bad chunk size"), 200, "bad-response"),
        ("Something new: " + URL, None, "other"),
    ],
)
def test_failure_classes_of_old_records(message: str, status: int | None, slug: str) -> None:
    assert classify(None, message, status).slug == slug


@pytest.mark.parametrize(
    ("kind", "status", "slug"),
    [
        (FailureKind.NOT_FOUND, 404, "not-found"),
        (FailureKind.HTTP_ERROR, 503, "http-5xx"),
        (FailureKind.HTTP_ERROR, 403, "http-4xx"),
        (FailureKind.HTTP_ERROR, 429, "throttled"),
        (FailureKind.THROTTLED, 503, "throttled"),
        (FailureKind.TIMED_OUT, None, "timeout"),
        (FailureKind.TLS_FAILED, None, "tls"),
        (FailureKind.CERTIFICATE_REJECTED, None, "tls"),
        (FailureKind.INCOMPLETE, None, "connection"),
        (FailureKind.DNS_FAILED, None, "dns"),
        (FailureKind.PROXY_REFUSED, 407, "http-4xx"),
        (FailureKind.NO_SPACE, 200, "storage"),
        (FailureKind.BATCH_FAILED, None, "other"),
        (FailureKind.EMPTY_BODY, 200, "other"),
    ],
)
def test_failure_classes_by_kind(kind: FailureKind, status: int | None, slug: str) -> None:
    """A record's kind decides, not its message (here one that reads otherwise)."""
    assert classify(kind, "Connection error: https://img.example/ssl.jpg", status).slug == slug


def test_render_local_shows_counts_groups_and_relative_links(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    run = make_run(fault_server, data_dir)
    page = render_local(data_dir, run.result.run_id)
    summary = run.result.summary
    for name, value in (
        ("total", summary.total),
        ("stored", summary.stored),
        ("skipped", summary.skipped),
        ("failed", summary.failed),
    ):
        assert f'data-count="{name}" data-value="{value}"' in page
    for slug in FAILING.values():
        assert f'data-class="{slug}" data-count="1"' in page
    assert "<script src" not in page and "<link" not in page  # nothing to fetch
    assert "http://" not in page.split('id="gallery-data">', 1)[1]
    # Rendered for <data-dir>/runs/<id>/report.html, which is also /runs/<id>/report served.
    assert '"base":"../../images/"' in page and '"thumbBase":"../../thumbs/"' in page
    assert '<svg class="chart"' in page


def test_without_pillow_the_gallery_shows_originals_and_says_so(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    run = make_run(fault_server, data_dir)
    monkeypatch.setattr(thumbs, "pillow_available", lambda: False)
    written = write_local(data_dir, run.result.run_id, tmp_path / "r.html")
    page = written.read_text()
    assert local.PILLOW_MISSING.split("(")[0] in page
    assert not (data_dir / "thumbs").exists()
    items = page.split('"items":[', 1)[1]
    assert re.search(r",0\]", items)  # no thumbnail numbers: the originals are shown


def test_thumbnails_are_cached_by_content(fault_server: FaultServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run = make_run(fault_server, data_dir)
    in_storage = run.result.summary.stored + run.result.summary.skipped
    assert local.make_thumbnails(data_dir, run.result.run_id) == in_storage
    assert local.make_thumbnails(data_dir, run.result.run_id) == 0
    made = list((data_dir / "thumbs").rglob("*.webp"))
    assert len(made) == in_storage
    assert not list((data_dir / "thumbs").rglob("*.part"))


def test_embedded_thumbnails_make_one_file(fault_server: FaultServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run = make_run(fault_server, data_dir)
    page = write_local(data_dir, run.result.run_id, tmp_path / "r.html", embed_thumbnails=True)
    text = page.read_text()
    in_storage = run.result.summary.stored + run.result.summary.skipped
    assert text.count('"data:image/webp;base64,') == in_storage
    assert not (data_dir / "thumbs").exists()


def _imgflow(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args)


def test_cli_report_and_run_report(fault_server: FaultServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run = make_run(fault_server, data_dir)
    done = _imgflow("report", "--data-dir", str(data_dir))  # the newest run
    assert done.returncode == 0, done.stderr
    written = Path(done.stdout.strip())
    assert written == data_dir / "runs" / run.result.run_id / "report.html"
    assert written.read_text().startswith("<!doctype html>")

    paths = tmp_path / "paths.txt"
    paths.write_text("photos/sunset.jpg\nmissing/gone.gif\n")
    done = _imgflow(
        "run",
        "--base-url",
        fault_server.base_url,
        "--paths-file",
        str(paths),
        "--data-dir",
        str(data_dir),
        "--report",
        "--output",
        "json",
    )
    assert done.returncode == 1
    line = [x for x in done.stderr.splitlines() if x.startswith("report: ")]
    assert len(line) == 1 and Path(line[0].removeprefix("report: ")).is_file()
    assert done.stdout.startswith("{")  # the JSON document stays alone on stdout


def test_cli_report_bad_input_is_one_line(tmp_path: Path) -> None:
    done = _imgflow("report", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"imgflow: error: no runs yet in {tmp_path / 'none'}"
    Database(tmp_path / DB_NAME).close()
    done = _imgflow("report", "nope", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "run 'nope' not found" in done.stderr and "Traceback" not in done.stderr
    out = tmp_path / "report.html"
    assert not out.exists()


def fake_run(data_dir: Path, images: int) -> str:
    """A run of `images` records written straight to the index (no files): 1 in 50 fails."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / DB_NAME)
    run_id = f"fake-{images}"
    host = "img.example"
    try:
        db.create_run(run_id, from_job(f"https://{host}/", [], None), 8, 500, 4)
        items = (
            Item(
                path=f"p/{n // 1000:03d}/{n:06d}.jpg",
                url=f"https://{host}/p/{n // 1000:03d}/{n:06d}.jpg",
                key=f"{host}/p/{n // 1000:03d}/{n:06d}.jpg",
            )
            for n in range(images)
        )
        db.plan(run_id, items)
        batch: list[ResultRecord] = []
        for n in range(images):
            path = f"p/{n // 1000:03d}/{n:06d}.jpg"
            url = f"https://{host}/{path}"
            if n % 50 == 7:
                record = ResultRecord(url, path, Outcome.FAILED, 404, error=messages.not_found(url))
            else:
                sha = hashlib.sha256(path.encode()).hexdigest()
                record = ResultRecord(
                    url,
                    path,
                    Outcome.STORED,
                    200,
                    f"{host}/{path}",
                    20_000 + n,
                    sha,
                    "image/jpeg",
                    attempts=1,
                )
            batch.append(record)
            if len(batch) == 5000:
                db.record(run_id, batch)
                batch = []
        db.record(run_id, batch)
        db.finish_run(run_id, "failed")
    finally:
        db.close()
    return run_id


BYTES_PER_IMAGE = 60  # the gallery's paging data, front-coded keys: ~35 bytes an image


def test_a_100000_image_report_is_small_and_made_in_flat_memory(tmp_path: Path) -> None:
    images = 100_000
    data_dir = tmp_path / "data"
    run_id = fake_run(data_dir, images)
    small = fake_run(tmp_path / "small", 100)
    write_local(tmp_path / "small", small, tmp_path / "warm.html", thumbnails=False)  # imports
    tracemalloc.start()
    try:
        page = write_local(data_dir, run_id, tmp_path / "report.html", thumbnails=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = page.stat().st_size
    text = page.read_text()
    assert text.count("<img") == 0  # tiles are made by the script, a page at a time
    assert f'data-count="failed" data-value="{images // 50}"' in text
    assert text.count('"items":[[') == 1
    assert size < images * BYTES_PER_IMAGE + 100_000, size
    # Streamed: far less than even one small object per image (a tuple is 56+ bytes).
    assert peak < 2_000_000, peak


def test_a_run_that_reached_several_hosts_gets_a_host_table(tmp_path: Path) -> None:
    db = Database(tmp_path / DB_NAME)
    try:
        db.create_run("multi", from_job("https://a.example/", [], None), 2, 10, 1)
        urls = ["https://a.example/1.gif", "https://a.example/2.gif", "http://b.example:8080/3.gif"]
        items = [Item(u, u.split("//", 1)[1], path=u.rsplit("/", 1)[1]) for u in urls]
        db.plan("multi", items)
        db.record(
            "multi",
            [
                ResultRecord(urls[0], "1.gif", Outcome.STORED, 200, items[0].key, 10, "a" * 64),
                ResultRecord(
                    urls[1], "2.gif", Outcome.FAILED, 404, error=messages.not_found(urls[1])
                ),
                ResultRecord(
                    urls[2], "3.gif", Outcome.FAILED, 500, error=messages.http_error(500, urls[2])
                ),
            ],
        )
        db.finish_run("multi", "failed")
    finally:
        db.close()
    page = render_local(tmp_path, "multi")
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td class="num">(\d+)</td>'
        r'<td class="num">(\d+)</td></tr>',
        page,
    )
    assert rows == [("a.example", "2", "1"), ("b.example:8080", "1", "1")]
    assert render_local(tmp_path, "multi").count('class="hosts"') == 1


def test_a_gallery_of_one_image_says_image(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.set("/one.gif", Ok(make_gif("one", 4)))
    run = run_paths(fault_server, ["one.gif"], tmp_path / "data")
    page = render_local(tmp_path / "data", run.run_id)
    assert "Gallery (1 image in storage)" in page


def test_a_sharded_run_links_no_image_to_a_file_that_is_not_there(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """Images in shards have no file under images/: their tiles link nowhere ("" in the
    gallery data), and the page says why; an image stored as a file keeps its link."""
    from support.sharded_run import webdataset_run

    data_dir = tmp_path / "data"
    fault_server.set("/file.gif", Ok(make_gif("file", 4)))
    run_paths(fault_server, ["file.gif"], data_dir)  # a files run first, in the same folder
    for name in ("a", "b"):
        fault_server.set(f"/{name}.gif", Ok(make_gif(name, 4)))
    sharded = webdataset_run(fault_server.base_url, ["a.gif", "b.gif"], data_dir)
    assert sharded.summary.stored == 2
    page = render_local(data_dir, sharded.run_id)
    assert local.SHARDED in page
    items = page.split('"items":[', 1)[1].split("]}</script>", 1)[0]
    assert items.count(',""]') == 2  # both tiles: no link
    assert not any((data_dir / "images").rglob("a.gif"))
    files_run = run_paths(fault_server, ["file.gif"], data_dir)  # skipped: still a file
    again = render_local(data_dir, files_run.run_id).split('"items":[', 1)[1]
    assert '""' not in again.split("]}</script>", 1)[0]
