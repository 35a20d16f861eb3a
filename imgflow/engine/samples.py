"""What names a sample in a shard, on both backends (imgflow/local/layouts/shards.py and
imgflow/aws/runtime/shards.py): its key, the digest of its URL, stable across runs and
shards; its image member's extension, from the sniffed type."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgflow.engine.records import ResultRecord

EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
    "image/svg+xml": "svg",
    "image/avif": "avif",
    "image/x-icon": "ico",
    "image/vnd.microsoft.icon": "ico",
}


def sample_key(url: str) -> str:
    """A sample's key: the digest of its (canonical) URL, stable across runs and shards."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def extension(content_type: str | None, key: str) -> str:
    """The image member's extension: from the sniffed type, else the key's, else `bin`."""
    found = EXTENSIONS.get((content_type or "").split(";")[0].strip().lower())
    if found:
        return found
    tail = key.rsplit("/", 1)[-1]
    suffix = tail.rsplit(".", 1)[-1].lower() if "." in tail else ""
    return suffix if suffix.isalnum() and len(suffix) <= 5 else "bin"


def sample_row(
    url: str,
    key: str,
    *,
    size: int,
    sha256: str,
    content_type: str | None,
    width: int | None,
    height: int | None,
    etag: str | None,
    last_modified: str | None,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """A sample's metadata columns (its `.json` member, its metadata table's row)."""
    caption = meta.get("caption")
    return {
        "url": url,
        "key": key,
        "sample_key": sample_key(url),
        "bytes": size,
        "sha256": sha256,
        "content_type": content_type,
        "width": width,
        "height": height,
        "etag": etag,
        "last_modified": last_modified,
        "caption": None if caption is None else str(caption),
        "meta": dict(meta),
    }


def record_row(record: ResultRecord, size: int, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata columns of a stored image's sample, from its record."""
    return sample_row(
        record.url,
        record.key or "",
        size=size,
        sha256=record.sha256 or "",
        content_type=record.content_type,
        width=record.width,
        height=record.height,
        etag=record.etag,
        last_modified=record.last_modified,
        meta=meta,
    )
