"""The job: base URL and resource paths, validated and normalised.

Normalising happens once, here: a path is percent-encoded canonically (`canonical`), so
equivalent spellings (``a b.jpg`` and ``a%20b.jpg``, ``%7E`` and ``~``) are one path, one
URL and one stored key, and the plan counts the second as a duplicate. Segments of any
length are accepted: stored keys shorten long names (imgflow/engine/keys.py).

Job input keeps the original pipeline's contract:
``{"baseUrl": str, "resourcePaths": [str], "lambdaConcur": int}``.
Every check raises JobError with one line that names the problem (and the line number of
the paths file where there is one).
"""

from __future__ import annotations

import json
import re
import string
import sys
from typing import Any
from urllib.parse import quote, urlsplit

from imgflow.errors import JobError

MAX_PATH_CHARS = 1024
MAX_URL_CHARS = 2048
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SAFE = "/:@!$&'()*+,;=-._~%?"
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PLAIN = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~?]*")  # already canonical: no % at all
_DIGITS = re.compile(r"\s*[0-9]+\s*")
# A path already in normal form: segments of unreserved characters, none empty and none
# starting with "." (so neither "." nor ".."), no query.
_NORMAL = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*")


def validate_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; only http(s) with a host is accepted."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise JobError("base URL: missing")
    base = base_url.strip()
    _check_unicode(base, "base URL")
    if _CONTROL.search(base) or " " in base:
        raise JobError(f"base URL: contains spaces or control characters: {base!r}")
    try:
        parts = urlsplit(base)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise JobError(f"base URL: not a valid URL: {base!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise JobError(f"base URL: only http:// and https:// are supported, got {base!r}")
    if not parts.hostname:
        raise JobError(f"base URL: no host in {base!r}")
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise JobError(f"base URL: invalid port in {base!r}") from None
    if parts.query or parts.fragment:
        raise JobError(f"base URL: must not have a query or fragment: {base!r}")
    if _BARE_PERCENT.search(parts.path):
        raise JobError(f"base URL: {base!r} has a % that starts no %XX escape (write %25)")
    return parts._replace(path=canonical(parts.path)).geturl().rstrip("/")


def canonical(text: str) -> str:
    """`text` percent-encoded once, the way every equivalent spelling of it is encoded.

    Characters a URL cannot hold (spaces, non-ASCII) are encoded as UTF-8 ``%XX``; escapes
    of unreserved characters are decoded (``%7E`` is ``~``, RFC 3986 6.2.2.2); other escapes
    get upper-case hex. So ``a b``, ``a%20b`` and ``a%20%62`` are the same path.
    """

    if _PLAIN.fullmatch(text):
        return text

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _ESCAPE.sub(fix, quote(text, safe=_SAFE))


def normalize_path(raw: str, where: str = "path") -> str:
    """A resource path made safe to join to the base URL, or JobError naming `where`.

    ``.`` and ``..`` segments are resolved; empty ones are kept (``a//b`` is requested
    as written and stored under a key of its own, not merged with ``a/b``)."""
    path = raw.strip()
    if len(path) <= MAX_PATH_CHARS and _NORMAL.fullmatch(path):
        return path  # what the checks and steps below make of it: itself
    if not path:
        raise JobError(f"{where}: empty path")
    _check_unicode(path, where)
    if _CONTROL.search(path):
        raise JobError(f"{where}: contains a NUL or control character")
    if len(path) > MAX_PATH_CHARS:
        raise JobError(f"{where}: path is {len(path)} characters long (at most {MAX_PATH_CHARS})")
    if path.startswith("//"):
        raise JobError(f"{where}: {_show(path)} names another host (starts with //)")
    if _SCHEME.match(path):
        raise JobError(f"{where}: {_show(path)} is a full URL; give a path relative to the base")
    if "\\" in path:
        raise JobError(f"{where}: {_show(path)} contains a backslash")
    if "#" in path:
        raise JobError(f"{where}: {_show(path)} contains a fragment (#)")
    if _BARE_PERCENT.search(path):
        raise JobError(f"{where}: {_show(path)} has a % that starts no %XX escape (write %25)")
    path_part, _, query = path.partition("?")
    path_part, query = canonical(path_part), canonical(query)
    segments = _without_dots(path_part.lstrip("/"))
    if segments is None:
        raise JobError(f"{where}: {_show(path)} uses .. to leave the base URL")
    normal = "/".join(segments)
    if not normal.strip("/"):
        raise JobError(f"{where}: {_show(path)} names no resource")
    return normal + "?" + query if query else normal  # an empty query is no query


def _check_unicode(text: str, where: str) -> None:
    """JobError unless `text` can be sent as UTF-8 (JSON's \\ud800 escapes make strings
    that cannot: a lone surrogate)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise JobError(f"{where}: not valid Unicode (a lone surrogate)") from None


def number_too_long() -> str:
    """Why Python's JSON parser refused a document: an integer over its digit limit."""
    return f"a number of more than {sys.get_int_max_str_digits()} digits"


def _without_dots(path: str) -> list[str] | None:
    """`path`'s segments with ``.`` and ``..`` resolved as RFC 3986 5.2.4 does (an empty
    segment is one: ``a//../b`` is ``a/b``), or None when a ``..`` leaves the base."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if not kept:
                return None
            kept.pop()
        elif segment != ".":
            kept.append(segment)
    return kept


def _show(path: str) -> str:
    return repr(path if len(path) <= 80 else path[:77] + "...")


def url_for(base_url: str, path: str) -> str:
    """The URL of a normalised path under a validated base URL."""
    return f"{base_url}/{quote(path, safe=_SAFE)}"


def full_url(raw: object, where: str) -> str:
    """`raw` as a full http(s) URL (a table's row, a ``urls`` entry), its path normalised
    as a job's path is, or JobError naming `where`."""
    if not isinstance(raw, str) or not raw.strip():
        raise JobError(f"{where}: empty URL")
    text = raw.strip()
    if len(text) > MAX_URL_CHARS:
        raise JobError(f"{where}: URL is {len(text)} characters long (at most {MAX_URL_CHARS})")
    text = text.partition("#")[0]
    try:
        parts = urlsplit(text)
    except ValueError:
        raise JobError(f"{where}: not a valid URL: {text[:80]!r}") from None
    if parts.scheme and parts.scheme.lower() not in ("http", "https"):
        raise JobError(f"{where}: only http:// and https:// URLs are supported, got {text[:80]!r}")
    if not parts.scheme or not parts.netloc:
        raise JobError(f"{where}: {text[:80]!r} is not a full URL (give http:// or https://)")
    try:
        base = validate_base_url(f"{parts.scheme}://{parts.netloc}")
    except JobError as exc:
        raise JobError(f"{where}: {str(exc).removeprefix('base URL: ')}") from None
    rest = text[len(parts.scheme) + 3 + len(parts.netloc) :]
    if not rest.strip("/") or rest.startswith("?"):
        raise JobError(f"{where}: {text[:80]!r} names no image (no path)")
    return url_for(base, normalize_path(rest, where))


def validate_concurrency(value: Any, name: str = "concurrency") -> int:
    """A concurrency of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobError(f"{name}: expected a whole number, got {value!r}")
    if value < 1:
        raise JobError(f"{name}: must be at least 1, got {value}")
    return value


def load_json(text: str, source: str) -> Any:
    """A job body's JSON text parsed, or JobError naming `source`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError:  # an integer over Python's digit limit
        raise JobError(f"{source}: not a job: {number_too_long()}") from None


def parse_job_json(text: str, source: str) -> tuple[str, list[str], int | None]:
    """(base URL, normalised paths, lambdaConcur) from an original-format job body."""
    return job_from_document(load_json(text, source), source)


def job_from_document(body: Any, source: str) -> tuple[str, list[str], int | None]:
    """(base URL, normalised paths, lambdaConcur) from an already parsed job body."""
    if not isinstance(body, dict):
        raise JobError(f"{source}: expected a JSON object with baseUrl and resourcePaths")
    unknown = sorted(set(body) - {"baseUrl", "resourcePaths", "lambdaConcur"})
    if unknown:
        raise JobError(f"{source}: unknown field {unknown[0]!r}")
    for required in ("baseUrl", "resourcePaths"):
        if required not in body:
            raise JobError(f"{source}: missing field {required!r}")
    base = validate_base_url(body["baseUrl"]) if isinstance(body["baseUrl"], str) else None
    if base is None:
        raise JobError(f"{source}: baseUrl must be a string")
    paths = body["resourcePaths"]
    if not isinstance(paths, list):
        raise JobError(f"{source}: resourcePaths must be a list of strings")
    normal: list[str] = []
    for i, p in enumerate(paths):
        if not isinstance(p, str):
            raise JobError(f"{source}: resourcePaths[{i}] must be a string, got {p!r}")
        normal.append(normalize_path(p, f"{source} resourcePaths[{i}]"))
    if not normal:
        raise JobError(f"{source}: resourcePaths is empty")
    return base, normal, lambda_concur(body.get("lambdaConcur"), source)


def lambda_concur(value: Any, source: str) -> int | None:
    """A body's ``lambdaConcur``: None when absent, else a whole number of at least 1 (a
    string of digits too: the original handler took ``int(lambdaConcur)``)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        try:
            value = int(value)
        except ValueError:  # over Python's digit limit
            detail = f"expected a whole number, got {number_too_long()}"
            raise JobError(f"{source}: lambdaConcur: {detail}") from None
    return None if value is None else validate_concurrency(value, f"{source}: lambdaConcur")
