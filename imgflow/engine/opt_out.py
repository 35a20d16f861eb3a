"""Opt-out headers: a response whose site asks that the image not be used is not stored.

``X-Robots-Tag`` directives (``noai``, ``noimageai``, ``noindex``, ``noimageindex``,
``noml``; ``none`` means ``noindex``), plain or scoped to imgflow's product token
(``X-Robots-Tag: imgflow: noai``; other crawlers' scopes do not apply), and the TDMRep
header ``tdm-reservation: 1``. Read from the headers alone, before any of the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

from imgflow.engine.user_agent import PRODUCT

TDM = "tdm-reservation"
# Directives that carry a value after a colon: not a crawler's scope.
_VALUED = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
_SCOPE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*:(.*)$", re.S)
_SPLIT = re.compile(r"[\s,]+")
_IMPLIED = {"none": ("noindex", "nofollow"), "all": ()}


def wanted_set(wanted: Iterable[str]) -> frozenset[str]:
    """The opt-out settings as `opted_out` compares them (made once per fetcher)."""
    return frozenset(w.strip().lower() for w in wanted)


def opted_out(headers: httpx.Headers, wanted: Iterable[str]) -> str | None:
    """The header that opts the image out (``X-Robots-Tag: noai``), or None."""
    if not isinstance(wanted, frozenset):
        wanted = wanted_set(wanted)
    if not wanted:
        return None
    if TDM in wanted:
        for value in headers.get_list(TDM):
            if value.strip() == "1":
                return f"{TDM}: 1"
    for value in headers.get_list("x-robots-tag"):
        for directive in _directives(value):
            if directive in wanted:
                return f"X-Robots-Tag: {directive}"
    return None


def _directives(value: str) -> list[str]:
    """The directives of one X-Robots-Tag value that apply to imgflow, lowercased."""
    text = value.strip()
    scoped = _SCOPE.match(text)
    if scoped is not None and scoped.group(1).lower() not in _VALUED:
        if scoped.group(1).lower() != PRODUCT:
            return []  # another crawler's
        text = scoped.group(2)
    found: list[str] = []
    for token in _SPLIT.split(text.lower()):
        if token:
            found.append(token)
            found.extend(_IMPLIED.get(token, ()))
    return found
