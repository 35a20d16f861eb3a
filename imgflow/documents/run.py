"""The `--output json` document of one run: what `imgflow run` and `imgflow status` print
and what `imgflow serve` answers with."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from imgflow.engine.records import ResultRecord, Summary


def write_json(
    out: IO[str],
    run_id: str,
    backend: str,
    summary: Summary,
    records: Iterable[ResultRecord],
    extra: dict[str, Any] | None = None,
) -> None:
    """One JSON object, streamed record by record so huge runs stay small in memory."""
    head: dict[str, Any] = {"run": run_id, "backend": backend, "summary": summary.to_json()}
    if extra:
        head.update(extra)
    text = json.dumps(head)
    out.write(text[:-1] + ', "results": [')
    for i, record in enumerate(records):
        out.write((", " if i else "") + json.dumps(record.to_json()))
    out.write("]}\n")


def nothing_retried(target: str) -> dict[str, Any]:
    """`retry -o json`'s document when no image of `target` failed or was left unfinished."""
    return {"run": None, "parent": target, "retried": 0}


def json_document(
    run_id: str, backend: str, summary: Summary, records: Iterable[ResultRecord]
) -> dict[str, Any]:
    """The `--output json` document as a dict (for small runs and tests)."""
    return {
        "run": run_id,
        "backend": backend,
        "summary": summary.to_json(),
        "results": [r.to_json() for r in records],
    }
