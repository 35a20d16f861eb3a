"""A run's source made again from its description (the runs table's ``source``), so a
retry of a run stopped while its input was still read can read the rest of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgflow.sources.base import Source


def reopen(described: Mapping[str, Any] | None) -> Source | None:
    """The source `described` (by `Source.describe`), read again from its file; None when
    it cannot be (standard input, a job body, a run recorded before sources said where
    their file is). A file that is gone or now bad raises JobError, as a new run would."""
    if not described or not isinstance(described.get("path"), str):
        return None
    path: str = described["path"]
    if described.get("kind") == "paths":
        from imgflow.sources.paths import from_paths_file

        return from_paths_file(described.get("baseUrl"), path, described.get("keyBase"))
    if described.get("kind") == "urls":
        from imgflow.sources.urls import from_urls_file

        return from_urls_file(
            path,
            described.get("format"),
            described.get("urlColumn") or "url",
            described.get("captionColumn"),
        )
    return None
