"""Tar members as bytes: the ustar headers both shard writers use (local webdataset shards,
imgflow/local/layouts/webdataset.py, and the aws batch shards, imgflow/aws/runtime/shards.py).

Each header is built in one step (tarfile's own costs about 30 us a member); what is
written is what tarfile writes and reads back: ustar regular files, data padded to
512-byte blocks, and an archive ending in two zero blocks padded to a whole record.
"""

from __future__ import annotations

BLOCK = 512
RECORD = 20 * BLOCK  # what tar pads an archive to


def ustar_header(name: str, size: int, mtime: int) -> bytes:
    """A ustar member header of a regular file (what tarfile writes, built in one step:
    tarfile's own costs about 30 us a member). `name` fits in 100 bytes."""
    raw = name.encode()
    if len(raw) > 100:
        raise ValueError(f"member name too long for ustar: {name}")
    head = b"".join(
        (
            raw.ljust(100, b"\0"),
            b"0000644\0",
            b"0000000\0",
            b"0000000\0",
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b"        ",  # the checksum, counted as spaces
            b"0",
            b"\0" * 100,
            b"ustar\x0000",
            b"\0" * 32,
            b"\0" * 32,
            b"0000000\0",
            b"0000000\0",
            b"\0" * 155,
            b"\0" * 12,
        )
    )
    checksum = b"%06o\0 " % sum(head)
    return head[:148] + checksum + head[156:]


def padding(size: int) -> bytes:
    """The zero bytes that fill a member's data of `size` bytes to a whole block."""
    return b"\0" * (-size % BLOCK)


def member(name: str, data: bytes, mtime: int) -> bytes:
    """A whole member in memory: header, data, padding."""
    return ustar_header(name, len(data), mtime) + data + padding(len(data))


def end(offset: int) -> bytes:
    """The archive's end after `offset` bytes of members: two zero blocks, padded to a
    whole record."""
    after = offset + 2 * BLOCK
    return b"\0" * (2 * BLOCK + -after % RECORD)
