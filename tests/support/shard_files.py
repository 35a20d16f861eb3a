"""What a run's webdataset shards hold, read back with tarfile."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path


def shard_urls(shards: Path) -> list[str]:
    """The "url" of every sample's .json member in the .tar shards of `shards`, in shard
    order."""
    urls = []
    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for info in tar:
                if info.name.endswith(".json"):
                    read = tar.extractfile(info)
                    assert read is not None
                    urls.append(json.loads(read.read())["url"])
    return urls
