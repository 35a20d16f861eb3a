"""The rate chart: an inline SVG of images per second and failures over the run."""

from __future__ import annotations

from html import escape

from imgflow.report.model import Timeline

WIDTH = 600
HEIGHT = 160
LEFT = 44
BOTTOM = 22
TOP = 8


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def rate_chart(timeline: Timeline) -> str:
    """Stacked bars per time slot: finished images/s (stored or skipped) and failures/s."""
    slots = len(timeline.done)
    width = timeline.slot_seconds
    rates = [(d + f) / width for d, f in zip(timeline.done, timeline.failed, strict=True)]
    peak = max(rates) or 1.0
    plot_w = WIDTH - LEFT - 4
    plot_h = HEIGHT - BOTTOM - TOP
    bar = plot_w / slots
    span = width * slots
    total_failed = sum(timeline.failed)
    busiest = rates.index(max(rates))
    summary = (
        f"Peak {_number(max(rates))} images/s at {busiest * width:.0f} s; "
        f"average {_number(sum(timeline.done + timeline.failed) / span)} images/s over "
        f"{span:.1f} s; {total_failed:,} failures."
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        ' aria-labelledby="chart-title chart-desc">',
        '<title id="chart-title">Images per second over the run</title>',
        f'<desc id="chart-desc">{escape(summary)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 4}"'
        f' y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">'
        f"{_number(peak)}/s</text>",
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">0 s</text>',
        f'<text class="tick" x="{WIDTH - 4}" y="{HEIGHT - 6}" text-anchor="end">'
        f"{span:.1f} s</text>",
    ]
    for index, (done, failed) in enumerate(zip(timeline.done, timeline.failed, strict=True)):
        x = LEFT + index * bar
        done_h = plot_h * done / width / peak
        failed_h = plot_h * failed / width / peak
        base = TOP + plot_h
        label = (
            f"{index * width:.1f}-{(index + 1) * width:.1f} s: "
            f"{_number(done / width)} images/s, {failed} failed"
        )
        parts.append(f"<g><title>{escape(label)}</title>")
        if done:
            parts.append(
                f'<rect class="done" x="{x:.2f}" y="{base - done_h:.2f}"'
                f' width="{max(bar - 1, 0.5):.2f}" height="{done_h:.2f}"/>'
            )
        if failed:
            parts.append(
                f'<rect class="failed" x="{x:.2f}" y="{base - done_h - failed_h:.2f}"'
                f' width="{max(bar - 1, 0.5):.2f}" height="{failed_h:.2f}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    parts.append(f'<p class="chart-summary">{escape(summary)}</p>')
    return "".join(parts)
