"""The report page in a real headless Chromium, driven over the DevTools protocol.

Skipped only when no chromium is installed (CI installs Debian's `chromium`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from support.cdp import Browser, Page, find_chromium
from support.cli_run import run_cli
from support.faultserver import FaultServer
from support.report_run import FAILING, ReportRun, make_run

from imgflow.engine.failures import FailureKind
from imgflow.report import write_local
from imgflow.report.classify import classify

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"
)

PAGE = 6


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with Browser.launch(tmp_path) as launched:
        yield launched


@pytest.fixture
def reported(fault_server: FaultServer, tmp_path: Path) -> tuple[ReportRun, Path, Path]:
    data_dir = tmp_path / "data"
    run = make_run(fault_server, data_dir)
    page = write_local(
        data_dir, run.result.run_id, tmp_path / "out" / "report.html", page_size=PAGE
    )
    return run, data_dir, page


def _status_json(data_dir: Path, run_id: str) -> dict[str, object]:
    done = run_cli("status", run_id, "--data-dir", str(data_dir), "--output", "json")
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def _tiles(page: Page) -> int:
    return int(page.evaluate("document.querySelectorAll('#grid li').length"))


def _local_only(urls: list[str]) -> list[str]:
    """The URLs that would leave the machine."""
    leaving = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("file", "data", "about"):
            continue
        if parts.scheme in ("http", "https") and parts.hostname == "127.0.0.1":
            continue
        leaving.append(url)
    return leaving


def test_the_page_shows_the_run_as_its_json_says(
    reported: tuple[ReportRun, Path, Path], browser: Browser, tmp_path: Path
) -> None:
    run, data_dir, report = reported
    document = _status_json(data_dir, run.result.run_id)
    page = browser.open(report.as_uri(), width=1280, height=900)

    counts = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-count][data-value]')]"
        ".map(e => [e.dataset.count, Number(e.dataset.value)]))"
    )
    summary = document["summary"]
    assert isinstance(summary, dict)
    for name in ("total", "stored", "skipped", "failed"):
        assert counts[name] == summary[name], name
    assert counts["duplicates"] == document["duplicates"] == 1

    records = document["results"]
    assert isinstance(records, list)
    expected: dict[str, int] = {}
    for record in records:
        if record["outcome"] == "failed":
            kind = FailureKind(record["failureKind"]) if record["failureKind"] else None
            slug = classify(kind, record["error"], record["statusCode"]).slug
            expected[slug] = expected.get(slug, 0) + 1
    groups = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#failures section.group')]"
        ".map(e => [e.dataset.class, Number(e.dataset.count)]))"
    )
    assert groups == expected
    assert set(groups) == set(FAILING.values())
    text_form = page.evaluate("document.querySelector('details.as-text').textContent")
    for record in records:
        if record["outcome"] == "failed":
            assert record["error"] in text_form
    assert f"imgflow retry {run.result.run_id}" in page.evaluate(
        "document.querySelector('#failures pre.cmd').textContent"
    )

    # The gallery: the first page only, its images not read until they near the viewport;
    # a click adds a page, scrolling down adds the rest.
    in_storage = summary["stored"] + summary["skipped"]
    assert _tiles(page) == PAGE
    assert not [url for url in page.requests if "/thumbs/" in url]
    page.evaluate(  # a mouse click (a keyboard's would move the focus, and so scroll)
        "document.getElementById('more').dispatchEvent(new MouseEvent('click', {detail: 1}))"
    )
    assert _tiles(page) == 2 * PAGE
    page.evaluate("document.getElementById('gallery').scrollIntoView()")
    page.wait_for(f"document.querySelectorAll('#grid li').length === {in_storage}")
    assert page.evaluate("document.getElementById('more').hidden") is True
    status_line = page.evaluate("document.getElementById('gallery-status').textContent")
    assert status_line == f"Showing {in_storage} of {in_storage} images"
    page.wait_for(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    sources = page.evaluate("[...document.querySelectorAll('#grid img')].map(i => i.src)")
    assert all("/thumbs/" in src for src in sources), sources
    page.screenshot(tmp_path / "gallery.png")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(tmp_path / "report.png", full_page=True)

    # Each tile opens its original: the stored file, byte for byte what the server sent.
    links = page.evaluate(
        "[...document.querySelectorAll('#grid a.tile')].map(a => [a.href, "
        "a.querySelector('.key').textContent, a.querySelector('.facts').textContent])"
    )
    keys = {key for _, key, _ in links}
    assert len(keys) == in_storage
    for href, key, facts in links:
        path = key.split("/", 1)[1]
        file = Path(unquote(urlsplit(href).path))
        assert file.read_bytes() == run.images[path][0], key
        assert "\u00d7" in facts  # dimensions, from the thumbnail index
    sunset = next(facts for _, key, facts in links if key.endswith("sunset.jpg"))
    assert sunset.startswith("320\u00d7200")

    assert _local_only(page.requests) == []
    assert any(url.startswith("file://") and "/thumbs/" in url for url in page.requests)
    assert page.console_errors == []


def test_keyboard_and_phone(
    reported: tuple[ReportRun, Path, Path], browser: Browser, tmp_path: Path
) -> None:
    _, _, report = reported
    page = browser.open(report.as_uri(), width=390, height=800, mobile=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(tmp_path / "phone.png")

    # The first Tab reaches the skip link; Enter on "Show more" moves focus to the new tiles.
    page.press("Tab", "Tab", 9)
    assert page.evaluate("document.activeElement.className") == "skip"
    page.evaluate("document.getElementById('more').focus({preventScroll: true})")
    page.press("Enter", "Enter", 13, "\r")
    assert _tiles(page) >= 2 * PAGE
    focused = page.evaluate("document.activeElement === document.querySelectorAll('#grid a')[6]")
    assert focused is True
    assert page.console_errors == []
    assert _local_only(page.requests) == []
