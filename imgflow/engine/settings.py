"""Fetch settings: part of the engine, so the download Lambda ships them without YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

# Response preferences that keep an image out of storage (see imgflow.engine.opt_out):
# X-Robots-Tag directives, and "tdm-reservation" for the TDMRep header.
DEFAULT_OPT_OUT = ("noai", "noimageai", "noindex", "noimageindex", "noml", "tdm-reservation")
# Set from the config's `etiquette` section, not from `fetch`: not keys of the file there.
_ETIQUETTE = {"etiquette": True}


@dataclass(frozen=True)
class FetchConfig:
    """How the engine fetches one image (the same locally and in the download Lambda)."""

    timeout: float = 10.0
    connect_timeout: float = 5.0
    total_timeout: float = 120.0
    retries: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 20.0
    retry_after_max: float = 60.0
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    allowed_types: tuple[str, ...] = ("image/*",)
    sniff: bool = True
    user_agent: str = ""  # empty: imgflow's own (imgflow.engine.user_agent)
    transport: Literal["imgflow", "httpx"] = "imgflow"
    # Extra request headers, each "Name: value" (see imgflow.engine.request_headers).
    headers: tuple[str, ...] = ()
    # Proxies (see imgflow.engine.proxy): None means the environment's, when trust_env.
    proxy: str | None = None
    no_proxy: str | None = None
    trust_env: bool = True
    # TLS trust (see imgflow.engine.tls).
    ca_bundle: str | None = None
    trust_store: Literal["certifi", "system"] = "certifi"
    insecure: bool = False
    # Politeness per host (see imgflow.engine.politeness): requests per second (None: no
    # fixed rate), the most requests at once a rate lets through, and how long throttling
    # answers (429, 503) are retried before the image fails.
    rate: float | None = None
    burst: int = 1
    throttle_patience: float = 120.0
    adaptive_rate: bool = True
    # Crawl etiquette (imgflow.engine.robots, imgflow.engine.opt_out): robots.txt read
    # before a host's first request, the opt-out preferences honoured, the Crawl-delay
    # obeyed up to max_crawl_delay seconds, the contact named in the User-Agent. Set from
    # the config's `etiquette` section (robots on by default there); the engine alone
    # reads robots.txt only when told to.
    robots: bool = field(default=False, metadata=_ETIQUETTE)
    opt_out: tuple[str, ...] = field(default=DEFAULT_OPT_OUT, metadata=_ETIQUETTE)
    max_crawl_delay: float = field(default=30.0, metadata=_ETIQUETTE)
    contact: str | None = field(default=None, metadata=_ETIQUETTE)

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON (for the Lambda environment)."""
        data = dataclasses.asdict(self)
        data["allowed_types"] = list(self.allowed_types)
        data["headers"] = list(self.headers)
        data["opt_out"] = list(self.opt_out)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FetchConfig:
        """Settings written by `to_json`."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("allowed_types", "headers", "opt_out"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)
