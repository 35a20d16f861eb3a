"""Credentials given as headers (-H 'Authorization: ...', 'Cookie: ...', 'Proxy-Authorization:
...') never follow a redirect to another origin (scheme, host, port), as curl and httpx do;
other extra headers still do, and a redirect within the origin keeps them all."""

from __future__ import annotations

import pytest
from support.faultserver import FaultServer, Ok, Redirect

from imgflow.demo.images import make_gif
from imgflow.engine import loop as engine_loop
from imgflow.engine.fetch import Fetcher
from imgflow.engine.outcome import Fetched, FetchFailure
from imgflow.engine.settings import FetchConfig

GIF = make_gif("ad")
HEADERS = (
    "Authorization: Bearer secret-token",
    "Cookie: session=secret-cookie",
    "Proxy-Authorization: Basic c2VjcmV0",
    "X-Client: imgflow-test",
)
CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


def _fetch(url: str, transport: str) -> Fetched | FetchFailure:
    settings = FetchConfig(transport=transport, headers=HEADERS)  # type: ignore[arg-type]

    async def go() -> Fetched | FetchFailure:
        async with Fetcher(settings, max_connections=2, env={}) as fetcher:
            result = await fetcher.fetch(url)
            assert isinstance(result, Fetched | FetchFailure)
            return result

    return engine_loop.run(go())


@pytest.mark.parametrize("transport", ["imgflow", "httpx"])
def test_credentials_stay_with_their_origin(fault_server: FaultServer, transport: str) -> None:
    with FaultServer() as other:  # another port: another origin
        other.set("/b.gif", Ok(GIF))
        fault_server.set("/a.gif", Redirect(other.url("/b.gif")))
        result = _fetch(fault_server.url("/a.gif"), transport)
        assert isinstance(result, Fetched), result
        first, second = fault_server.requests[0].headers, other.requests[0].headers
    for name in CREDENTIALS:
        assert name in first, name
        assert name not in second, (name, second)
    assert second["x-client"] == "imgflow-test"  # not a credential: it goes on


@pytest.mark.parametrize("transport", ["imgflow", "httpx"])
def test_credentials_follow_a_redirect_within_the_origin(
    fault_server: FaultServer, transport: str
) -> None:
    fault_server.set("/a.gif", Redirect("/b.gif"))
    fault_server.set("/b.gif", Ok(GIF))
    assert isinstance(_fetch(fault_server.url("/a.gif"), transport), Fetched)
    second = fault_server.requests[1].headers
    assert [second[name] for name in CREDENTIALS] == [
        "Bearer secret-token",
        "session=secret-cookie",
        "Basic c2VjcmV0",
    ]


def test_credentials_stay_dropped_when_the_redirects_come_back(fault_server: FaultServer) -> None:
    with FaultServer() as other:
        fault_server.set("/a.gif", Redirect(other.url("/b.gif")))
        other.set("/b.gif", Redirect(fault_server.url("/c.gif")))
        fault_server.set("/c.gif", Ok(GIF))
        assert isinstance(_fetch(fault_server.url("/a.gif"), "imgflow"), Fetched)
        back = fault_server.requests[1].headers
    # The origin that redirected back chose where the request goes: no credentials there.
    assert not any(name in back for name in CREDENTIALS), back
