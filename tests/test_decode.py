"""Bounded decoders fed as a network feeds them: any split of the input, small output steps."""

from __future__ import annotations

import gzip
import random
import zlib

import brotli
import pytest

from imgflow.engine.decode import DecodeError, decoder_for

try:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports import zstd  # type: ignore[no-redef,unused-ignore]

DATA = random.Random(1).randbytes(50_000) + b"\0" * 100_000 + b"tail"
ENCODED = {
    "gzip": gzip.compress(DATA),
    "x-gzip": gzip.compress(DATA),
    "deflate": zlib.compress(DATA),
    "br": brotli.compress(DATA),
    "zstd": zstd.compress(DATA[:100_000]) + zstd.compress(DATA[100_000:]),  # two frames
    "identity": DATA,
}


def decode_all(coding: str, body: bytes, split: int, step: int) -> bytes:
    decoder = decoder_for([coding])
    out: list[bytes] = []
    for start in range(0, len(body), split):
        piece = decoder.decode(body[start : start + split], step)
        while True:
            # brotli's limit is loose: its output buffer starts at 32 KB.
            bound = max(2 * step, 64 * 1024) if coding == "br" else 2 * step
            assert coding == "identity" or len(piece) <= bound
            out.append(piece)
            if not decoder.pending():
                break
            piece = decoder.decode(b"", step)
    while piece := decoder.decode(b"", step):
        out.append(piece)
    return b"".join(out)


@pytest.mark.parametrize("coding", sorted(ENCODED))
@pytest.mark.parametrize(("split", "step"), [(3, 4096), (1000, 1000), (65536, 65536), (7, 1)])
def test_any_split_decodes_whole(coding: str, split: int, step: int) -> None:
    body = ENCODED[coding]
    assert decode_all(coding, body, split, step) == DATA


def test_trailing_bytes_after_gzip_are_ignored() -> None:
    assert decode_all("gzip", ENCODED["gzip"] + b"\n\0\0", 1000, 4096) == DATA


def test_refusals() -> None:
    with pytest.raises(DecodeError, match="stacked content codings gzip, gzip"):
        decoder_for(["gzip", "gzip"])
    with pytest.raises(DecodeError, match="unsupported content coding 'compress'"):
        decoder_for(["compress"])
    assert decoder_for(["identity", "gzip"]).decode(gzip.compress(b"x"), 10) == b"x"


def test_zstd_window_over_8_mb_is_refused() -> None:
    """RFC 9659: a zstd content coding needs no window over 8 MB; a larger one would make
    the decoder allocate it."""
    packer = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 25})
    body = packer.compress(b"\0" * 100) + packer.flush()  # no content size: a 32 MB window
    with pytest.raises(DecodeError):
        decoder_for(["zstd"]).decode(body, 1000)
