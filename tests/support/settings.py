"""Settings for tests: short timeouts and backoffs, and what each test names itself.

SETTINGS = quick_fetch(timeout=2.0, connect_timeout=1.0, total_timeout=5.0, retries=0)
cfg = quick_config(max_bytes=20_000)        # a whole Config, fsync off
"""

from __future__ import annotations

import dataclasses
from typing import Any

from imgflow import config
from imgflow.config import Config
from imgflow.engine.settings import FetchConfig

QUICK_BACKOFF = {"backoff_base": 0.01, "backoff_max": 0.02}


def quick_fetch(**values: Any) -> FetchConfig:
    """A FetchConfig with backoffs of 10 and 20 ms and `values`."""
    return FetchConfig(**(QUICK_BACKOFF | values))


def quick_config(**fetch: Any) -> Config:
    """The default Config (no file, no environment) with fsync off, one retry, backoffs of 10
    and 20 ms, timeouts of 1 s (2 s in all), and `fetch` on top (the engine's etiquette
    settings, such as ``robots=False``, go to the `etiquette` section they come from)."""
    cfg = config.from_mapping({}, env={})
    names = {f.name for f in dataclasses.fields(config.EtiquetteConfig)}
    etiquette = {k: v for k, v in fetch.items() if k in names}
    values = QUICK_BACKOFF | {"retries": 1, "timeout": 1, "total_timeout": 2} | fetch
    quick = dataclasses.replace(cfg.fetch, **{k: v for k, v in values.items() if k not in names})
    return dataclasses.replace(
        cfg,
        fetch=quick,
        local=dataclasses.replace(cfg.local, fsync=False),
        etiquette=dataclasses.replace(cfg.etiquette, **etiquette),
    )
