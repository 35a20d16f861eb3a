"""A local run with stored, skipped and failed images of several formats, for report tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from imgflow.backends.local import run_settings
from imgflow.demo.images import make_gif, make_png
from imgflow.engine.job import validate_base_url
from imgflow.local.job import LocalJob, LocalRunResult
from imgflow.local.runner import run_job
from imgflow.sources.job_json import from_job
from support.faultserver import FaultServer, Ok, Reset, Stall, Status
from support.settings import quick_config

FAILING = {
    "missing/gone.gif": "not-found",
    "broken/boom.png": "http-5xx",
    "busy/slow.gif": "throttled",
    "pages/index.html": "not-an-image",
    "huge/big.png": "too-large",
    "stuck/stall.gif": "timeout",
    "cut/reset.gif": "connection",
}
EXTRA_GIFS = 10


def _pillow_image(kind: str, size: tuple[int, int], colour: tuple[int, int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    mode = "RGBA" if kind in ("PNG", "WEBP") else "RGB"
    image = Image.new(mode, size, colour if mode == "RGBA" else colour[:3])
    draw = ImageDraw.Draw(image)
    draw.ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill="white")
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


def images() -> dict[str, tuple[bytes, str]]:
    """path -> (body, content type) of every image the server has."""
    found = {
        "photos/first.gif": (make_gif("first", 32), "image/gif"),
        "photos/second.png": (make_png("second", 32), "image/png"),
        "photos/sunset.jpg": (_pillow_image("JPEG", (320, 200), (220, 90, 30, 255)), "image/jpeg"),
        "photos/leaf.webp": (_pillow_image("WEBP", (120, 160), (40, 160, 60, 200)), "image/webp"),
        "photos/glass.png": (_pillow_image("PNG", (200, 200), (30, 60, 200, 120)), "image/png"),
    }
    for n in range(EXTRA_GIFS):
        found[f"flags/f{n:02d}.gif"] = (make_gif(f"flag{n}", 24), "image/gif")
    return found


def run_paths(server: FaultServer, paths: list[str], data_dir: Path) -> LocalRunResult:
    """A local run of `paths` on `server`, with the report tests' quick settings."""
    job = LocalJob(
        source=from_job(validate_base_url(server.base_url), paths, None),
        concurrency=4,
        batch_size=5,
        max_batches=2,
    )
    cfg = quick_config(timeout=0.5, retry_after_max=5, max_bytes=20_000)
    return run_job(job, run_settings(cfg), data_dir)


@dataclass(frozen=True)
class ReportRun:
    """The reported run and what the server held."""

    result: LocalRunResult
    images: dict[str, tuple[bytes, str]]


def make_run(server: FaultServer, data_dir: Path) -> ReportRun:
    """Two runs: the first stores two images, the second (reported) skips them, stores the
    rest and fails once per class of FAILING; one path is listed twice."""
    bodies = images()
    for path, (body, kind) in bodies.items():
        server.set("/" + path, Ok(body, content_type=kind))
    server.set("/broken/boom.png", Status(500))
    server.set("/busy/slow.gif", Status(429, retry_after=3600))
    server.set("/pages/index.html", Ok(b"<html>hello</html>", content_type="text/html"))
    server.set("/huge/big.png", Ok(make_png("big", 16, target_bytes=40_000), "image/png"))
    server.set("/stuck/stall.gif", Stall(seconds=3))
    server.set("/cut/reset.gif", Reset())
    run_paths(server, ["photos/first.gif", "photos/second.png"], data_dir)
    paths = [*bodies, *FAILING, "photos/sunset.jpg"]
    return ReportRun(run_paths(server, paths, data_dir), bodies)
