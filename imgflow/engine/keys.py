"""Stored keys: one file name per URL, collision-free, valid on any POSIX file system and S3.

A key is ``<host>[:port]/<folder>/.../<leaf>``, built from the URL's normalised path (job
validation percent-encodes it canonically, so a segment holds only unreserved characters,
sub-delimiters, ``:@`` and ``%XX`` escapes with upper-case hex). A bare ``%`` (one that
starts no ``%XX`` escape) can therefore only be a marker imgflow added:

- ``%`` alone is an empty segment (``a//b``, or a folder ``a/``'s leaf is ``%f``);
- ``<stem>%q<digest><ext>``: the URL has a query string; its digest goes before the
  extension, so ``0000.png?v=1`` is stored as ``0000%q<digest>.png`` and keeps its type;
- ``<prefix>%h<digest><ext>``: a segment over 255 bytes (or a key over 1,000 bytes,
  ``%p<digest>``), shortened with a digest of the whole segment, keeping the extension;
- ``%f`` ends a leaf without a dot and ``%d`` ends a folder with one, so a leaf and a folder
  never share a name: ``/photos/123`` is ``photos/123%f`` and ``/photos/123/thumb`` is
  ``photos/123/thumb%f``; ``x.gif`` (a leaf) and ``x.gif%d/`` (a folder) can coexist.

Usual URLs (folders without dots, files with an extension, no query) keep their path as it
is: ``www.example.com/data/flags/ad/ad.gif``. Keys are identical on both backends (the AWS
backend stores them as S3 keys); the index (url -> key) remains the source of truth.
"""

from __future__ import annotations

import functools
import hashlib
import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_NAME_BYTES = 255
MAX_KEY_BYTES = 1000  # S3 allows 1,024
_DIGEST = 16
_EXT = re.compile(r"\.[A-Za-z0-9]{1,12}$")
LEAF_MARK = "%f"
FOLDER_MARK = "%d"


def key_for(url: str) -> str:
    """The stored key of `url`, e.g. ``www.example.com/data/flags/ad/ad.gif``."""
    url = url.partition("#")[0]
    scheme, _, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    authority, mark, query = authority.partition("?")
    if not mark:
        tail, _, query = tail.partition("?")
    path = slash + tail if not mark else ""
    netloc = _netloc(scheme, authority)
    segments = path.split("/")[1:] or [""]
    folders = [_folder(segment) for segment in segments[:-1]]
    key = "/".join([netloc, *folders, _leaf(segments[-1], query)])
    if len(key.encode()) > MAX_KEY_BYTES:
        whole = hashlib.sha256(f"{path}?{query}".encode()).hexdigest()[:_DIGEST]
        key = "/".join([netloc, f"%p{whole}", _leaf(segments[-1], query, 120)])
    return key


@functools.lru_cache(maxsize=64)
def _netloc(scheme: str, authority: str) -> str:
    """``host`` or ``host:port`` (not the scheme's default port), host lower-case."""
    parts = urlsplit(f"{scheme}://{authority}")
    host = (parts.hostname or "unknown-host").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets, so a port can follow unambiguously
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"
    return _shorten(netloc, "")


def _folder(segment: str) -> str:
    if "." not in segment and 0 < len(segment) <= 60:  # the usual folder: as it is
        return segment
    if not segment:
        return "%"
    name = _shorten(segment, "", MAX_NAME_BYTES - len(FOLDER_MARK))
    return name + FOLDER_MARK if "." in name else name


def _leaf(segment: str, query: str, limit: int = MAX_NAME_BYTES) -> str:
    match = _EXT.search(segment)
    ext = match.group() if match and match.start() > 0 else ""
    stem = segment[: len(segment) - len(ext)]
    if query:
        digest = hashlib.sha256(query.encode()).hexdigest()[:_DIGEST]
        stem = f"{stem}%q{digest}"
    limit -= len(LEAF_MARK)
    name = stem + ext
    if len(name.encode()) > limit:
        name = _shorten(f"{segment}?{query}" if query else segment, ext, limit)
    return name if "." in name else name + LEAF_MARK


def _shorten(name: str, ext: str, limit: int = MAX_NAME_BYTES) -> str:
    """`name` itself when it fits in `limit` bytes, else a prefix, its digest and `ext`."""
    if len(name.encode()) <= limit:
        return name
    digest = f"%h{hashlib.sha256(name.encode()).hexdigest()[:_DIGEST]}"
    room = limit - len(digest) - len(ext.encode())
    prefix = name.encode()[:room].decode("utf-8", "ignore")
    prefix = re.sub(r"%[0-9A-Fa-f]?$", "", prefix)  # never cut an escape in half
    return prefix + digest + ext
