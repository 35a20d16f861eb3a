"""The report page: one self-contained HTML document, written as a stream.

Styles and the gallery script are inline, the rate chart is inline SVG and the gallery's
items are embedded as compact JSON that the script renders a page at a time, so the page
loads nothing but the images themselves and its size grows by tens of bytes per image.
"""

from __future__ import annotations

import json
import os
import time
from html import escape
from importlib import resources
from json.encoder import encode_basestring
from pathlib import Path
from typing import TextIO

from imgflow import __version__
from imgflow.errors import BackendError
from imgflow.report.chart import rate_chart
from imgflow.report.model import FailureGroup, GalleryItem, HostCount, Report

PAGE_SIZE = 60


def _asset(name: str) -> str:
    return resources.files("imgflow.report").joinpath("assets", name).read_text("utf-8")


def human_bytes(n: int) -> str:
    """1536 -> ``1.5 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """75.2 -> ``1 min 15 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _utc(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json(value: object) -> str:
    """JSON safe inside a <script> element."""
    text = _ENCODER.encode(value)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_file(report: Report, target: Path, page_size: int = PAGE_SIZE) -> Path:
    """Write the page to `target` (whole or not at all: a temporary file, then a rename)."""
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w", encoding="utf-8") as out:
            write_page(report, out, page_size)
        os.replace(partial, target)
    except OSError as exc:
        raise BackendError(f"cannot write the report {target}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def write_page(report: Report, out: TextIO, page_size: int = PAGE_SIZE) -> None:
    """Write the whole page to `out`; the gallery's items are streamed, never all held."""
    title = f"imgflow report: run {report.run_id}"
    img_src = " ".join(report.gallery.img_sources)
    out.write(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        f" img-src {escape(img_src)}; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head><body>"
        '<a class="skip" href="#main">Skip to the report</a>'
    )
    _header(report, out)
    out.write('<main id="main">')
    _summary(report, out)
    _failures(report, out)
    _excluded(report, out)
    _gallery(report, out, page_size)
    out.write("</main>")
    out.write(
        f"<footer><p>Made by imgflow {escape(__version__)} on {_utc(time.time())}. "
        "This page needs no network: its styles, script and chart are inside it; only the "
        "images are read from where they are stored.</p></footer>"
    )
    out.write(f"<script>{_asset('report.js')}</script></body></html>\n")


def _header(report: Report, out: TextIO) -> None:
    state = escape(report.state)
    out.write(
        f'<header class="top"><h1>Run {escape(report.run_id)} '
        f'<span class="state state-{state}" data-state="{state}">{state}</span></h1>'
        f'<p class="muted">{escape(report.backend)} backend · '
        f'<span class="base">{escape(report.base_url)}</span> · '
        f"started {_utc(report.started_at)} · finished {_utc(report.finished_at)}</p>"
        '<nav class="sections" aria-label="Sections"><a href="#summary">Summary</a>'
        f'<a href="#failures">Failures ({report.summary.failed:,})</a>'
        + (
            f'<a href="#excluded">Excluded ({report.summary.excluded:,})</a>'
            if report.summary.excluded
            else ""
        )
        + f'<a href="#gallery">Gallery ({report.gallery.count:,})</a></nav>'
    )
    for note in report.notes:
        out.write(f'<p class="note">{escape(note)}</p>')
    out.write("</header>")


def _stat(out: TextIO, name: str, label: str, value: int | None, text: str | None = None) -> None:
    shown = text if text is not None else f"{value:,}"
    attr = f' data-value="{value}"' if value is not None else ""
    out.write(
        f'<div data-count="{name}"{attr}><dt>{escape(label)}</dt><dd>{escape(shown)}</dd></div>'
    )


def _summary(report: Report, out: TextIO) -> None:
    s = report.summary
    out.write('<section id="summary" aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2>')
    out.write('<dl class="cards">')
    _stat(out, "total", "Images", s.total)
    _stat(out, "stored", "Stored", s.stored)
    _stat(out, "skipped", "Skipped (stored before)", s.skipped)
    _stat(out, "failed", "Failed", s.failed)
    if s.updated or s.unchanged:  # a revalidation (--refresh)
        _stat(out, "updated", "Updated (the server had a newer version)", s.updated)
        _stat(out, "unchanged", "Unchanged (the server confirmed it)", s.unchanged)
    if report.pending:
        _stat(out, "pending", "Not finished", report.pending)
    _stat(out, "duplicates", "Duplicate paths", report.duplicates)
    _stat(out, "bytes", "Bytes stored", report.stored_bytes, human_bytes(report.stored_bytes))
    if report.skipped_bytes:
        _stat(
            out,
            "skipped-bytes",
            "Bytes skipped",
            report.skipped_bytes,
            human_bytes(report.skipped_bytes),
        )
    duration = None
    if report.started_at is not None and report.finished_at is not None:
        duration = max(report.finished_at - report.started_at, 0.0)
        _stat(out, "duration", "Duration", None, human_seconds(duration))
        if duration > 0:
            _stat(out, "rate", "Images per second", None, f"{s.total / duration:,.1f}")
    out.write("</dl>")
    out.write('<h3 id="rate">Rate over the run</h3>')
    if report.timeline is not None:
        out.write(
            '<p class="legend muted" aria-hidden="true"><span class="l-done">finished images/s'
            '</span><span class="l-failed">failures/s</span></p>'
        )
        out.write(rate_chart(report.timeline))
    else:
        out.write('<p class="muted">No per-image times were recorded for this run.</p>')
    if len(report.hosts) > 1:
        _hosts(report.hosts, out)
    out.write("</section>")


def _hosts(hosts: list[HostCount], out: TextIO) -> None:
    out.write(
        '<h3 id="hosts">Hosts</h3><div class="table-wrap"><table class="hosts">'
        '<thead><tr><th scope="col">Host</th><th scope="col" class="num">Images</th>'
        '<th scope="col" class="num">Failed</th></tr></thead><tbody>'
    )
    for host in hosts:
        out.write(
            f'<tr><th scope="row">{escape(host.host)}</th><td class="num">{host.total:,}</td>'
            f'<td class="num">{host.failed:,}</td></tr>'
        )
    out.write("</tbody></table></div>")


def _failures(report: Report, out: TextIO) -> None:
    out.write(
        '<section id="failures" aria-labelledby="failures-h">'
        f'<h2 id="failures-h">Failures ({report.summary.failed:,})</h2>'
    )
    if not report.failures:
        out.write('<p class="muted">No image failed.</p></section>')
        return
    out.write(
        "<p>Fetch every failed path of this run again (what was stored since is skipped):</p>"
        f'<pre class="cmd"><code>{escape(report.retry_command)}</code></pre>'
    )
    for group in report.failures:
        _group(group, out)
    _failures_as_text(report.failures, out)
    out.write("</section>")


def _excluded(report: Report, out: TextIO) -> None:
    """The images the sites kept out (robots.txt, opt-out headers), by host and reason."""
    if not report.summary.excluded:
        return
    out.write(
        '<section id="excluded" aria-labelledby="excluded-h">'
        f'<h2 id="excluded-h">Excluded ({report.summary.excluded:,})</h2>'
        '<p class="hint">The sites asked not to have these images fetched (robots.txt) or'
        " kept (an opt-out header): not failures, and never retried.</p>"
        '<div class="table-wrap"><table><caption class="visually-hidden">Excluded images by'
        ' host and reason</caption><thead><tr><th scope="col">Host</th>'
        '<th scope="col">Reason</th><th scope="col" class="num">Images</th>'
        '<th scope="col">First URLs</th></tr></thead><tbody>'
    )
    for group in report.excluded:
        urls = "<br>".join(escape(url) for url in group.first[:5])
        out.write(
            f'<tr><th scope="row">{escape(group.host)}</th><td class="msg">'
            f'{escape(group.reason)}</td><td class="num">{group.count:,}</td>'
            f'<td class="url">{urls}</td></tr>'
        )
    out.write("</tbody></table></div></section>")


def _group(group: FailureGroup, out: TextIO) -> None:
    slug = escape(group.kind.slug)
    title = escape(group.kind.title)
    listed = len(group.first)
    out.write(
        f'<section class="group" id="fail-{slug}" data-class="{slug}" data-count="{group.count}"'
        f' aria-labelledby="fail-{slug}-h"><h3 id="fail-{slug}-h">{title} '
        f'<span class="count">{group.count:,}</span></h3>'
        f'<p class="hint">{escape(group.kind.hint)}</p><div class="table-wrap"><table>'
        f'<caption class="visually-hidden">The first {listed} of {group.count} failures'
        f' of class {title}</caption><thead><tr><th scope="col">URL</th>'
        '<th scope="col" class="num">Status</th><th scope="col">Message</th></tr></thead><tbody>'
    )
    for failure in group.first:
        status = "" if failure.status is None else str(failure.status)
        out.write(
            f'<tr><td class="url">{escape(failure.url)}</td><td class="num">{status}</td>'
            f'<td class="msg">{escape(failure.message)}</td></tr>'
        )
    out.write("</tbody></table></div>")
    if group.count > listed:
        out.write(
            f'<p class="muted">and {group.count - listed:,} more of this class '
            "(every failure is in the run's failures.json and its JSON output).</p>"
        )
    out.write("</section>")


def _failures_as_text(groups: list[FailureGroup], out: TextIO) -> None:
    out.write('<details class="as-text"><summary>The failures as plain text</summary><ul>')
    for group in groups:
        out.write(
            f"<li>{escape(group.kind.title)}: {group.count:,} "
            f"failure{'s' if group.count != 1 else ''}. {escape(group.kind.hint)}<ul>"
        )
        for failure in group.first:
            status = f"status {failure.status}, " if failure.status is not None else ""
            out.write(f"<li>{escape(failure.url)}: {status}{escape(failure.message)}</li>")
        out.write("</ul></li>")
    out.write("</ul></details>")


def _string(text: str) -> str:
    """A JSON string literal, safe inside a <script> element."""
    quoted: str = encode_basestring(text)
    if "<" in quoted or "\u2028" in quoted or "\u2029" in quoted:
        return _json(text)
    return quoted


def _shared_prefix(a: str, b: str) -> int:
    """The length of the common start of `a` and `b` (a binary search of slices)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _row(item: GalleryItem, previous: str) -> str:
    """One gallery item as ``[shared, suffix, bytes, width, height, thumb(, url(,
    caption))]``: the key is front-coded against the previous item's key."""
    key = item.key
    shared = _shared_prefix(previous, key)
    thumb = item.thumb
    thumb_text = str(thumb) if isinstance(thumb, int) else _string(thumb) if thumb else "0"
    row = f"[{shared},{_string(key[shared:])},{item.bytes},{item.width},{item.height},{thumb_text}"
    if item.url is not None or item.caption is not None:
        row += "," + (_string(item.url) if item.url is not None else "null")
    if item.caption is not None:
        row += "," + _string(item.caption)
    return row + "]"


def _gallery(report: Report, out: TextIO, page_size: int) -> None:
    gallery = report.gallery
    images = "image" if gallery.count == 1 else "images"
    out.write(
        '<section id="gallery" aria-labelledby="gallery-h">'
        f'<h2 id="gallery-h">Gallery ({gallery.count:,} {images} in storage)</h2>'
    )
    if gallery.count == 0:
        out.write('<p class="muted">No image of this run is in storage.</p>')
    for note in gallery.notes:
        out.write(f'<p class="note">{escape(note)}</p>')
    out.write(
        '<noscript><p class="note">The gallery needs JavaScript; the summary and failures '
        "above do not.</p></noscript>"
        '<ul class="grid" id="grid" aria-label="Stored images"></ul>'
        '<div class="more-row"><button type="button" id="more" hidden>Show more images</button>'
        '<p id="gallery-status" class="muted" role="status" aria-live="polite"></p></div>'
        '<script type="application/json" id="gallery-data">'
    )
    head = {
        "base": gallery.base,
        "thumbBase": gallery.thumb_base,
        "thumbExt": gallery.thumb_ext,
        "pageSize": page_size,
    }
    out.write(_json(head)[:-1] + ',"items":[')
    previous = ""
    separator = ""
    for item in gallery.items():
        out.write(separator + _row(item, previous))
        previous = item.key
        separator = ","
    out.write("]}</script></section>")
