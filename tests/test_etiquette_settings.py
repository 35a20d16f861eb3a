"""The engine's crawl etiquette is derived from the config where a run's settings are built:
a Config changed after it was loaded (a CLI override, a `dataclasses.replace`) hands its own
`etiquette` section to the requests (docs/architecture.md, imgflow/config.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support.faultserver import FaultServer, Ok, Status
from support.settings import quick_config

from imgflow.backends.base import Flags, Listener, RunView
from imgflow.backends.local import LocalBackend
from imgflow.config import EtiquetteConfig
from imgflow.demo.images import make_gif
from imgflow.engine.job import validate_base_url
from imgflow.sources.job_json import from_job

CONTACT = "https://example.org/our-crawler"


def test_etiquette_replaced_after_load_reaches_the_requests(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.set("/robots.txt", Status(404))
    fault_server.set("/a.gif", Ok(make_gif("a", 4)))
    loaded = quick_config()  # robots on, no contact
    cfg = dataclasses.replace(loaded, etiquette=EtiquetteConfig(contact=CONTACT, robots=False))
    notes: list[str] = []
    listener = Listener(note=notes.append, warn=notes.append, waiting=notes.append)
    source = from_job(validate_base_url(fault_server.base_url), ["a.gif"], None)
    view = LocalBackend(cfg, tmp_path / "data").run(source, Flags(), listener)
    assert isinstance(view, RunView) and view.ok, notes
    seen = fault_server.requests
    assert [r.path for r in seen] == ["/a.gif"]  # robots.txt off: never asked for
    assert seen[0].headers["user-agent"].endswith(f"(+{CONTACT})")
