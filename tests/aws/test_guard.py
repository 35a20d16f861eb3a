"""The target guard refuses non-public addresses, directly, through DNS and via redirects."""

from __future__ import annotations

import httpx
import pytest

from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.guard import TargetRefused, make_guard
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.settings import FetchConfig

PUBLIC = "93.184.216.34"
GIF = b"GIF89a" + b"\x00" * 20


def resolver_for(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str) -> list[str]:
        return table.get(host, [])

    return resolve


def check(url: str, table: dict[str, list[str]] | None = None, runtime_api: str = "") -> None:
    guard = make_guard(resolver=resolver_for(table or {}), runtime_api=runtime_api)
    engine_loop.run(guard(url))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/a.gif", "loopback"),
        ("http://127.8.9.10:8080/a.gif", "loopback"),
        ("http://[::1]/a.gif", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/a.gif", "link-local"),
        ("http://10.1.2.3/a.gif", "private"),
        ("http://172.16.0.9/a.gif", "private"),
        ("http://192.168.1.1/a.gif", "private"),
        ("http://[fc00::5]/a.gif", "private"),
        ("http://100.64.0.1/a.gif", "non-public"),
        ("http://0.0.0.0/a.gif", "unspecified"),
        ("http://224.0.0.1/a.gif", "multicast"),
        ("http://[::ffff:127.0.0.1]/a.gif", "loopback"),
        ("http://[::ffff:169.254.169.254]/a.gif", "link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/a.gif", "link-local"),
        ("http://[2002:a00:1::]/a.gif", "private"),
    ],
)
def test_refuses_non_public_literals(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        check(url)


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["127.0.0.1"], "loopback"),
        (["169.254.169.254"], "link-local"),
        ([PUBLIC, "10.0.0.7"], "private"),
        (["::1"], "loopback"),
    ],
)
def test_refuses_names_resolving_to_non_public(answers: list[str], reason: str) -> None:
    with pytest.raises(TargetRefused, match=rf"images.example resolves to .*{reason}"):
        check("https://images.example/a.gif", {"images.example": answers})


def test_refuses_the_lambda_runtime_api_address() -> None:
    table = {"runtime.example": ["8.8.4.4"], "images.example": ["8.8.4.4"]}
    with pytest.raises(TargetRefused, match="runtime API"):
        check("http://images.example/a.gif", table, runtime_api="runtime.example:9001")
    with pytest.raises(TargetRefused, match="runtime API"):
        check("http://8.8.4.4/a.gif", runtime_api="8.8.4.4:9001")


def test_runtime_api_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "8.8.4.4:9001")
    guard = make_guard(resolver=resolver_for({}))
    with pytest.raises(TargetRefused, match="runtime API"):
        engine_loop.run(guard("http://8.8.4.4/x.gif"))


def asked_for(url: str, table: dict[str, list[str]]) -> list[str]:
    """The names the guard resolved while letting `url` through (it must not raise)."""
    asked: list[str] = []

    async def resolve(host: str) -> list[str]:
        asked.append(host)
        return table.get(host, [])

    guard = make_guard(resolver=resolve, runtime_api="")
    assert engine_loop.run(guard(url)) is None
    return asked


def test_allows_public_addresses_and_names() -> None:
    assert asked_for(f"http://{PUBLIC}/a.gif", {}) == []  # a literal is never resolved
    assert asked_for("http://[2606:4700::1111]/a.gif", {}) == []
    answers = {"images.example": [PUBLIC, "2606:4700::1111"]}
    assert asked_for("https://images.example/a.gif", answers) == ["images.example"]
    # The same name is refused as soon as one of its answers is not public.
    with pytest.raises(TargetRefused, match=r"images\.example resolves to 10\.0\.0\.7"):
        check("https://images.example/a.gif", {"images.example": [PUBLIC, "10.0.0.7"]})


def test_unresolvable_names_are_left_to_the_fetch() -> None:
    assert asked_for("https://nowhere.invalid/a.gif", {}) == ["nowhere.invalid"]


def test_the_system_resolver_is_used_by_default() -> None:
    with pytest.raises(TargetRefused, match=r"localhost resolves to .*loopback"):
        engine_loop.run(make_guard(runtime_api="")("http://localhost:9/a.gif"))


def fetch_with_guard(handler: httpx.MockTransport, url: str) -> Fetched | FetchFailure:
    guard = make_guard(
        resolver=resolver_for({"images.example": [PUBLIC], "evil.example": ["169.254.169.254"]}),
        runtime_api="",
    )

    async def main() -> Fetched | FetchFailure:
        settings = FetchConfig(retries=0)
        async with Fetcher(settings, max_connections=2, guard=guard, transport=handler) as f:
            return await f.fetch(url)

    return engine_loop.run(main())


@pytest.mark.parametrize(
    "location", ["http://169.254.169.254/latest/meta-data/", "http://evil.example/x.gif"]
)
def test_every_redirect_hop_is_checked(location: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "images.example":
            return httpx.Response(302, headers={"Location": location})
        return httpx.Response(200, content=GIF, headers={"Content-Type": "image/gif"})

    result = fetch_with_guard(httpx.MockTransport(handle), "http://images.example/a.gif")
    assert isinstance(result, FetchFailure)
    assert result.message.startswith("Refused target: http://images.example/a.gif")
    assert "link-local" in result.message and location in result.message


def test_a_public_target_is_fetched() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=GIF, headers={"Content-Type": "image/gif"})

    result = fetch_with_guard(httpx.MockTransport(handle), "http://images.example/a.gif")
    assert isinstance(result, Fetched) and result.data == GIF
