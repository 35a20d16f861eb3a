"""Job validation, URLs and stored keys."""

from __future__ import annotations

import json
import random
import re

import pytest

from imgflow.engine import job
from imgflow.engine.job import normalize_path, parse_job_json, url_for, validate_base_url
from imgflow.engine.keys import key_for
from imgflow.engine.plan import batches, item_for
from imgflow.errors import JobError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ad/ad.gif", "ad/ad.gif"),
        ("  ad/ad.gif \n", "ad/ad.gif"),
        ("/ad/ad.gif", "ad/ad.gif"),
        ("a/./b/../c.gif", "a/c.gif"),
        ("img.gif?size=2", "img.gif?size=2"),
        ("dir with space/x.gif", "dir%20with%20space/x.gif"),
        ("a%20b.jpg", "a%20b.jpg"),
        ("%7euser/%e4%b8%ad.gif", "~user/%E4%B8%AD.gif"),
        ("a/" + "x" * 300 + ".gif", "a/" + "x" * 300 + ".gif"),
        # An empty segment is kept (S3 and GCS keys with // are objects of their own);
        # dot segments are removed as RFC 3986 5.2.4 does, empty segments counting.
        ("a//b/x.png", "a//b/x.png"),
        ("a///b.gif", "a///b.gif"),
        ("a/b//", "a/b//"),
        ("a/.//b.gif", "a//b.gif"),
        ("a//../b.gif", "a/b.gif"),
        ("a//b/../c.gif", "a//c.gif"),
    ],
)
def test_paths_are_normalised(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


def _normalised(raw: str) -> str:
    try:
        return normalize_path(raw, "p")
    except JobError as exc:
        return f"error: {exc}"


def test_a_path_in_normal_form_is_what_the_whole_normalisation_makes_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shortcut for a path already in normal form (`job._NORMAL`) answers as the
    checks and steps it skips would: the same path, or the same error."""
    rng = random.Random(23)
    alphabet = "ab9._~-/%2eE?#:\\ \t\u00e9"
    raws = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(20_000)]
    raws += ["x" * 1024, "x" * 1025, "a/" + "b" * 1022, ".a/b", "a/.b", "~/-/_", "a-/b.c.d"]
    fast = [_normalised(raw) for raw in raws]
    monkeypatch.setattr(job, "_NORMAL", re.compile(r"(?!)"))  # the shortcut never taken
    assert fast == [_normalised(raw) for raw in raws]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "empty path"),
        ("../etc/passwd", "uses .. to leave"),
        ("a/../../b", "uses .. to leave"),
        ("//evil.example/x.gif", "names another host"),
        ("https://evil.example/x.gif", "is a full URL"),
        ("javascript:alert(1)", "is a full URL"),
        ("a\x00b.gif", "NUL or control"),
        ("a\tb.gif", "NUL or control"),
        ("x" * 10_000, "characters long"),
        ("a\\b.gif", "backslash"),
        ("a.gif#frag", "fragment"),
        (".", "names no resource"),
        ("%2e%2E/etc/passwd", "uses .. to leave"),
        ("a//../../../b.gif", "uses .. to leave"),
        ("a/..", "names no resource"),
    ],
)
def test_bad_paths_are_named(raw: str, problem: str) -> None:
    with pytest.raises(JobError, match=problem):
        normalize_path(raw, "paths.txt line 3")


@pytest.mark.parametrize(
    "base",
    [
        "file:///etc",
        "javascript:alert(1)",
        "ftp://host/x",
        "http://",
        "not a url",
        "",
        "http://h/?q=1",
        "http://[::1",
        "https://h[1/x",
    ],
)
def test_bad_base_urls(base: str) -> None:
    with pytest.raises(JobError, match="base URL"):
        validate_base_url(base)


def test_base_url_loses_its_trailing_slash() -> None:
    assert validate_base_url("https://Example.com/data/flags/") == "https://Example.com/data/flags"


def test_urls_are_quoted() -> None:
    assert (
        url_for("http://h/base", "dir with space/x.gif") == "http://h/base/dir%20with%20space/x.gif"
    )
    assert url_for("http://h", "a/b.gif?x=1") == "http://h/a/b.gif?x=1"


def test_keys_keep_the_whole_path_so_same_basenames_never_collide() -> None:
    a = key_for("https://www.example.com/data/flags/a/x.gif")
    b = key_for("https://www.example.com/data/flags/b/x.gif")
    assert a == "www.example.com/data/flags/a/x.gif" and a != b


def test_keys_distinguish_ports_and_queries() -> None:
    assert key_for("http://127.0.0.1:8765/x.gif") == "127.0.0.1:8765/x.gif"
    assert key_for("http://h_1/x.gif") != key_for("http://h:1/x.gif")
    assert key_for("http://[::1]:8080/x.gif") == "[::1]:8080/x.gif"
    assert key_for("http://h:80/x.gif") == "h/x.gif"
    q1, q2 = key_for("http://h/x.gif?a=1"), key_for("http://h/x.gif?a=2")
    assert q1 != q2 and q1.startswith("h/x%q") and q1.endswith(".gif")


def test_batches_split_in_order() -> None:
    items = [item_for("http://h", f"{i}.gif") for i in range(7)]
    sizes = [len(b) for b in batches(items, 3)]
    assert sizes == [3, 3, 1]
    assert [i.path for b in batches(items, 3) for i in b] == [f"{i}.gif" for i in range(7)]


@pytest.mark.parametrize("given", ["2", " 2 ", "02"])
def test_lambda_concur_may_be_a_string_of_digits_as_the_original_took_it(given: str) -> None:
    body = json.dumps({"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": given})
    assert parse_job_json(body, "job.json")[2] == 2


def test_job_json_in_the_original_format() -> None:
    base, paths, concur = parse_job_json(
        '{"baseUrl": "https://h/flags", "resourcePaths": ["cn/cn.gif", "zz/zz.gif"], '
        '"lambdaConcur": 2}',
        "job.json",
    )
    assert (base, paths, concur) == ("https://h/flags", ["cn/cn.gif", "zz/zz.gif"], 2)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"resourcePaths": ["a"]}', "missing field 'baseUrl'"),
        ('{"baseUrl": "http://h"}', "missing field 'resourcePaths'"),
        ('{"baseUrl": "http://h", "resourcePaths": "a.gif"}', "must be a list"),
        ('{"baseUrl": "http://h", "resourcePaths": []}', "is empty"),
        ('{"baseUrl": "http://h", "resourcePaths": [1]}', r"resourcePaths\[0\] must be a string"),
        ('{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": 0}', "at least 1"),
        ('{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "5x"}', "whole number"),
        ('{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "-1"}', "whole number"),
        ('{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": "0"}', "at least 1"),
        ('{"baseUrl": "http://h", "resourcePaths": ["a"], "lambdaConcur": 2.5}', "whole number"),
        ('{"baseUrl": "http://h", "resourcePaths": ["a"], "extra": 1}', "unknown field 'extra'"),
        ('{"baseUrl": 5, "resourcePaths": ["a"]}', "baseUrl must be a string"),
        ('{"baseUrl": "http://h", "resourcePaths": ["../x"]}', r"resourcePaths\[0\]"),
    ],
)
def test_bad_job_json(body: str, problem: str) -> None:
    with pytest.raises(JobError, match=problem):
        parse_job_json(body, "job.json")
