"""imgflow's transport checks the addresses it connects to (DNS rebinding is refused)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from support.faultserver import FaultServer, Ok

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine import messages
from imgflow.engine.fetch import Fetcher
from imgflow.engine.guard import make_address_check, make_guard
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.settings import FetchConfig

SETTINGS = FetchConfig(retries=0, timeout=2, connect_timeout=2)
PUBLIC = "93.184.216.34"
REAL_GETADDRINFO = socket.getaddrinfo


def answering(address: str) -> Any:
    """A getaddrinfo that answers `address` for rebind.test, and asks the system otherwise."""

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    return fake


def rebound_to_loopback(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch, path: str
) -> str:
    """`path` on the fault server, named as rebind.test, a name that now answers 127.0.0.1."""
    monkeypatch.setattr(socket, "getaddrinfo", answering("127.0.0.1"))
    return fault_server.url(path).replace("127.0.0.1", "rebind.test")


def fetch(url: str, *, pin: bool, allow_loopback: bool = False) -> Fetched | FetchFailure:
    async def public_first(host: str) -> list[str]:
        return [PUBLIC]  # what the name answered when the URL was checked

    async def go() -> Fetched | FetchFailure:
        check = make_address_check(runtime_api="")

        async def address_check(address: str) -> str | None:
            return None if allow_loopback and address == "127.0.0.1" else await check(address)

        async with Fetcher(
            SETTINGS,
            max_connections=2,
            guard=make_guard(resolver=public_first, runtime_api=""),
            address_check=address_check if pin else None,
        ) as fetcher:
            return await fetcher.fetch(url)

    return engine_loop.run(go())


def test_a_name_that_rebinds_to_loopback_is_refused_at_connect(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault_server.set("/secret.gif", Ok(make_gif("s")))
    url = rebound_to_loopback(fault_server, monkeypatch, "/secret.gif")
    result = fetch(url, pin=True)
    assert isinstance(result, FetchFailure)
    assert result.message.startswith(messages.REFUSED_TARGET)
    assert "rebind.test resolves to 127.0.0.1 is a loopback address" in result.message
    assert fault_server.requests == []


def test_without_pinning_the_rebound_name_gets_through(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gap the address check closes: the URL check alone saw a public answer."""
    fault_server.set("/secret.gif", Ok(make_gif("s")))
    url = rebound_to_loopback(fault_server, monkeypatch, "/secret.gif")
    assert isinstance(fetch(url, pin=False), Fetched)


def test_the_checked_address_is_the_one_connected_to(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gif = make_gif("ok")
    fault_server.set("/ok.gif", Ok(gif))
    url = rebound_to_loopback(fault_server, monkeypatch, "/ok.gif")
    result = fetch(url, pin=True, allow_loopback=True)
    assert isinstance(result, Fetched) and result.data == gif
    [request] = fault_server.requests
    assert request.headers["host"].startswith("rebind.test:")
