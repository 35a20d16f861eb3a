"""imgflow's transport resolves a name once and connects to the very address it checked."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from support.faultserver import FaultServer, Ok

from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.guard import make_address_check
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.settings import FetchConfig

GIF = b"GIF89a" + bytes(64)
SETTINGS = FetchConfig(retries=0, timeout=2, connect_timeout=2)


def test_a_second_answer_for_the_name_is_never_used(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer (the fault server) is checked; a later one (nothing listens) would
    be what a rebinding name answers to a second lookup."""
    fault_server.set("/ok.gif", Ok(GIF))
    answers = ["127.0.0.1", "127.0.0.3"]
    asked: list[str] = []
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    check = make_address_check(runtime_api="")
    checked: list[str] = []

    async def only_the_server(address: str) -> str | None:
        checked.append(address)
        return None if address == "127.0.0.1" else await check(address)

    async def go() -> Fetched | FetchFailure:
        async with Fetcher(SETTINGS, max_connections=2, address_check=only_the_server) as f:
            return await f.fetch(fault_server.url("/ok.gif").replace("127.0.0.1", "rebind.test"))

    result = engine_loop.run(go())
    assert isinstance(result, Fetched) and result.data == GIF
    assert asked == ["rebind.test"] and checked == ["127.0.0.1"]
    assert fault_server.count("/ok.gif") == 1
