"""The webdataset layout: shards `<data-dir>/shards/<NNNNN>.tar` read by WebDataset.

Each sample is three members side by side, named by the sample's key (the digest of its
URL, imgflow/local/layouts/shards.py): `<key>.<ext>` (the image's bytes as fetched, the
extension from its sniffed type), `<key>.json` (url, key, bytes, sha256, content type,
width, height, ETag, Last-Modified, caption and the item's metadata) and, when the item
has a caption, `<key>.txt`. Written as ustar members (tarfile's format, each header
built in one step) into the shard's temporary file; read back with tarfile.
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Collection
from typing import BinaryIO

from imgflow.engine.samples import extension
from imgflow.engine.tar import BLOCK, end, padding, ustar_header
from imgflow.local.layouts.shard_format import Sample, ShardContents
from imgflow.local.layouts.shards import DEFAULT_SHARD_SIZE, ShardLayout

# json.dumps(row, sort_keys=True) without a new encoder a sample (the same text).
_JSON = json.JSONEncoder(sort_keys=True).encode


class TarWriter:
    """One tar shard being appended to (ustar members, as tarfile writes them)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.offset = 0

    def _member(self, name: str, size: int, data: BinaryIO | bytes) -> None:
        write = self.stream.write
        write(ustar_header(name, size, int(time.time())))
        if isinstance(data, bytes):
            write(data)
            copied = len(data)
        else:
            copied = 0
            while copied < size:
                piece = data.read(min(1 << 20, size - copied))
                if not piece:
                    raise OSError(f"{name}: its bytes end after {copied} of {size}")
                write(piece)
                copied += len(piece)
        pad = padding(size)
        write(pad)
        self.offset += BLOCK + size + len(pad)

    def add(self, sample: Sample, stream: BinaryIO) -> str:
        """The sample's image, `.json` and (with a caption) `.txt` members."""
        key = sample.skey
        image = f"{key}.{extension(sample.content_type, sample.key)}"
        self._member(image, sample.size, sample.data if sample.data is not None else stream)
        meta = _JSON(sample.row()).encode()
        self._member(f"{key}.json", len(meta), meta)
        caption = sample.caption
        if caption is not None:
            text = caption.encode()
            self._member(f"{key}.txt", len(text), text)
        return image

    def flush(self) -> None:
        """Nothing held: members go straight to the file."""

    def close(self) -> None:
        """The tar's end: two zero blocks, padded to a whole record (the file stays open)."""
        self.stream.write(end(self.offset))


class WebDatasetFormat:
    """WebDataset tar shards."""

    suffix = ".tar"
    sidecar = True

    def start(self, stream: BinaryIO) -> TarWriter:
        return TarWriter(stream)

    def locate(self, stream: BinaryIO) -> ShardContents:
        """The samples of a tar, by the `.json` member of each (raises when unreadable)."""
        members: dict[str, tarfile.TarInfo] = {}
        samples: dict[str, tuple[str, int, str]] = {}
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            for info in tar:
                members[info.name] = info
            for name, info in members.items():
                if not name.endswith(".json"):
                    continue
                read = tar.extractfile(info)
                if read is None:
                    continue
                row = json.loads(read.read())
                stem = name[: -len(".json")]
                image = next(
                    (m for m in members if m.startswith(stem + ".") and m not in _TEXT(stem)),
                    None,
                )
                if image is not None:
                    samples[str(row["key"])] = (image, members[image].size, str(row["sha256"]))

        def read_member(member: str) -> bytes:
            info = members[member]
            stream.seek(info.offset_data)
            data = stream.read(info.size)
            if len(data) != info.size:
                raise OSError(f"member {member} is cut short")
            return data

        return ShardContents(samples, read_member)

    def copy(self, source: BinaryIO, out: BinaryIO, keep: Collection[str]) -> int:
        """The members of the samples whose image member is in `keep`, copied as they are
        (headers and padded data), then the tar's end."""
        stems = {member.split(".", 1)[0] for member in keep}
        offset = 0
        kept: set[str] = set()
        spans: list[tuple[int, int]] = []
        with tarfile.open(fileobj=source, mode="r:") as tar:
            for info in tar:
                stem = info.name.split(".", 1)[0]
                if stem in stems:
                    kept.add(stem)
                    spans.append((info.offset, info.offset_data + info.size))
        for start, stop in spans:
            source.seek(start)
            length = stop - start
            data = source.read(length)
            if len(data) != length:
                raise OSError(f"a member at {start} is cut short")
            pad = padding(length)
            out.write(data + pad)
            offset += length + len(pad)
        out.write(end(offset))
        return len(kept)


def _TEXT(stem: str) -> tuple[str, str]:
    return (f"{stem}.json", f"{stem}.txt")


def webdataset_layout(shard_size: int = DEFAULT_SHARD_SIZE) -> ShardLayout:
    """The webdataset layout, `shard_size` samples a shard."""
    return ShardLayout(WebDatasetFormat(), shard_size)
