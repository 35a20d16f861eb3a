"""Stored keys: any URL curl can fetch gets a file name that fits, never shared with another."""

from __future__ import annotations

import itertools
import random
import string

import pytest

from imgflow.engine.job import normalize_path
from imgflow.engine.keys import MAX_KEY_BYTES, MAX_NAME_BYTES, key_for
from imgflow.engine.plan import item_for

BASE = "https://img.example.com/base"


def key(path: str) -> str:
    return item_for(BASE, normalize_path(path)).key


def test_usual_urls_keep_their_path() -> None:
    assert key("data/flags/ad/ad.gif") == "img.example.com/base/data/flags/ad/ad.gif"


def test_a_query_digest_goes_before_the_extension() -> None:
    stored = key("0000.png?v=1")
    assert stored.startswith("img.example.com/base/0000%q") and stored.endswith(".png")
    assert stored != key("0000.png?v=2") != key("0000.png")


@pytest.mark.parametrize(
    "pair",
    [
        ("photos/123", "photos/123/thumb"),
        ("dir/", "dir"),
        ("x.gif", "x.gif/y.gif"),
        ("a/", "a/%25f"),
        ("v1.2/x.gif", "v1.2%25d/x.gif"),
    ],
)
def test_a_path_can_be_a_file_and_a_folder(pair: tuple[str, str]) -> None:
    first, second = (key(p) for p in pair)
    assert first != second
    assert not second.startswith(first + "/") and not first.startswith(second + "/")


def test_long_segments_are_shortened_keeping_the_extension() -> None:
    for name in ("x" * 300 + ".jpg", "\u4e2d" * 29 + ".png", "y" * 250 + ".png?v=1"):
        stored = key("a/" + name)
        assert all(len(s.encode()) <= MAX_NAME_BYTES for s in stored.split("/")), stored
        assert stored.endswith(name.partition("?")[0][-4:])
    assert key("a/" + "x" * 300 + ".jpg") != key("a/" + "x" * 301 + ".jpg")


def test_a_very_long_path_fits_in_a_key() -> None:
    stored = key("/".join([f"segment{i:03d}" for i in range(90)]) + ".png?q=1")
    assert len(stored.encode()) <= MAX_KEY_BYTES and stored.endswith(".png")


def test_equivalent_spellings_are_one_key() -> None:
    assert key("a b.jpg") == key("a%20b.jpg")
    assert key("%7Euser/x.gif") == key("~user/x.gif")
    assert key("%e4%b8%ad.gif") == key("\u4e2d.gif")


def test_random_urls_never_share_a_key_or_nest_in_a_file() -> None:
    rng = random.Random(11)
    alphabet = string.ascii_letters[:4] + "./%20?=" + "\u4e2d"
    paths = set()
    for _ in range(5000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        raw = raw.replace("%20", " ").replace("%", "")
        try:
            paths.add(normalize_path(raw))
        except Exception:
            continue
    for long in range(3):
        paths.add("L/" + "z" * (250 + long) + ".png")
    keys = {p: item_for(BASE, p).key for p in paths}
    assert len(set(keys.values())) == len(keys)
    files = set(keys.values())
    for stored in files:
        parts = stored.split("/")
        for depth in range(1, len(parts)):
            assert "/".join(parts[:depth]) not in files, stored


def test_ipv6_and_ports() -> None:
    assert key_for("http://[::1]:8080/x.gif") == "[::1]:8080/x.gif"
    assert list(itertools.islice(key_for("http://h/").split("/"), 2)) == ["h", "%f"]


@pytest.mark.parametrize(
    "raw", ["a b.jpg", "%7euser/%e4%b8%ad.gif", "dir/", "x.png?q=a b&r=%7e", "\u4e2d/\u4e2d"]
)
def test_normalising_twice_changes_nothing(raw: str) -> None:
    """The AWS plan step validates the paths the CLI already normalised."""
    once = normalize_path(raw)
    assert normalize_path(once) == once
