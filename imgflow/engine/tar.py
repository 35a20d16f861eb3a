"""Tar members as bytes: the ustar headers both shard writers use (local webdataset shards,
imgflow/local/layouts/webdataset.py, and the aws batch shards, imgflow/aws/runtime/shards.py).

Each header is built in one step (tarfile's own costs about 30 us a member); what is
written is what tarfile writes and reads back: ustar regular files, data padded to
512-byte blocks, and an archive ending in two zero blocks padded to a whole record.
"""

from __future__ import annotations

BLOCK = 512
RECORD = 20 * BLOCK  # what tar pads an archive to


# A ustar header's fixed fields (a regular file, mode 644, no owner), around the name, the
# size and the time; their checksum is counted once (the checksum field as spaces).
_OWNER = b"0000644\x00" + b"0000000\x00" * 2  # mode, owner, group
_TAIL = b"".join(
    (
        b"0",  # a regular file
        b"\0" * 100,  # no link
        b"ustar\x0000",
        b"\0" * 64,  # no user or group name
        b"0000000\0" * 2,  # no device
        b"\0" * 167,  # no prefix, the block's end
    )
)
_FIXED_SUM = sum(_OWNER) + sum(b" " * 8) + sum(_TAIL)


def ustar_header(name: str, size: int, mtime: int) -> bytes:
    """A ustar member header of a regular file (what tarfile writes, built in one step:
    tarfile's own costs about 30 us a member; the fixed fields' checksum is counted once).
    `name` fits in 100 bytes."""
    raw = name.encode()
    if len(raw) > 100:
        raise ValueError(f"member name too long for ustar: {name}")
    times = b"%011o\0%011o\0" % (size, mtime)
    checksum = b"%06o\0 " % (_FIXED_SUM + sum(raw) + sum(times))
    return b"".join((raw.ljust(100, b"\0"), _OWNER, times, checksum, _TAIL))


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
