"""Plain-text lines about a run: counts in words, the summary line, sizes, throttling."""

from __future__ import annotations

from collections.abc import Mapping

from imgflow.engine.records import Summary


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1,000 batches`` (`many` when adding an s is wrong)."""
    word = noun if count == 1 else (many or noun + "s")
    return f"{count:,} {word}"


def summary_line(summary: Summary, duplicates: int = 0, elapsed: float | None = None) -> str:
    """``101 images: 100 stored, 0 skipped, 1 failed`` (+ duplicates and time).

    After a revalidation: ``6 images: 1 stored (1 updated), 5 skipped (5 unchanged), ...``.
    """
    stored = f"{summary.stored:,} stored"
    if summary.updated:
        stored += f" ({summary.updated:,} updated)"
    skipped = f"{summary.skipped:,} skipped"
    if summary.unchanged:
        skipped += f" ({summary.unchanged:,} unchanged)"
    text = f"{plural(summary.total, 'image')}: {stored}, {skipped}, {summary.failed:,} failed"
    if summary.excluded:
        text += f", {summary.excluded:,} excluded (robots.txt or opt-out headers)"
    if duplicates:
        text += f" ({plural(duplicates, 'duplicate path')} fetched once)"
    if elapsed is not None:
        text += f" in {elapsed:.1f}s"
    return text


def throttle_line(throttles: Mapping[str, int], images: int = 0) -> str | None:
    """``throttled by img.example.com 12 times for 400 images (3%), and slowed down`` for
    the hosts that throttled a run (the refusals per image), then what makes them fewer."""
    if not throttles:
        return None
    parts = [f"{host} {plural(count, 'time')}" for host, count in sorted(throttles.items())]
    refused = sum(throttles.values())
    rate = f" for {plural(images, 'image')} ({refused / images:.0%})" if images else ""
    return (
        "throttled by " + ", ".join(parts) + rate + ", and slowed down\n"
        "(a lower -c or --rate is refused less)"
    )


def human_bytes(size: int) -> str:
    """``1.5 MiB`` style sizes."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
