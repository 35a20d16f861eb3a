"""Warnings about a job that is valid but probably not what its author meant."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from urllib.parse import urlsplit

from imgflow.engine.job import url_for

# Only the first paths are looked at, so a warning costs nothing on a huge job.
LOOK_AT = 1000


def doubled_base_path(base_url: str, paths: Iterable[str]) -> str | None:
    """A warning when a path repeats the base URL's own path.

    Paths are relative to the base URL, as in the original pipeline (a leading ``/`` is
    ignored), so with base ``https://h/img`` the path ``/img/x.png`` is fetched from
    ``https://h/img/img/x.png``: usually a mistake, most often from a file of site-root
    paths.
    """
    prefix = urlsplit(base_url).path.strip("/")
    if not prefix:
        return None
    for path in islice(paths, LOOK_AT):
        if path == prefix or path.startswith(prefix + "/"):
            return (
                f"path {path!r} repeats the base URL's path: paths are relative to the "
                f"base URL, so it is fetched from {url_for(base_url, path)}; drop "
                f"'/{prefix}' from the paths (or from --base-url) if that is not meant"
            )
    return None
