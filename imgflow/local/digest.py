"""The sha256 of stored bytes, read in chunks (check, and a rerun's skip of a touched file)."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

_CHUNK = 1 << 20


def sha256_of(stream: BinaryIO) -> str:
    """The hex sha256 of what is left to read in `stream`."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
