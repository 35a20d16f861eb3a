"""httpx's own transport, with imgflow's proxy routing and TLS context (fetch.transport: httpx).

httpx reports every protocol failure of httpcore and h11 as one type, RemoteProtocolError,
told apart only by its words; here they become imgflow's transport's own types
(`imgflow.engine.transport.errors`), so callers map both transports' failures by type.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator

import httpx

from imgflow.engine.proxy import Proxy, ProxyRouter
from imgflow.engine.transport import BadResponse, ConnectionClosed, IncompleteBody


class RoutedTransport(httpx.AsyncBaseTransport):
    """One httpx transport per route: direct, or through each proxy `proxies` names."""

    def __init__(
        self, max_connections: int, ssl_context: ssl.SSLContext, proxies: ProxyRouter
    ) -> None:
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._ssl = ssl_context
        self._proxies = proxies
        self._direct = self._transport(None)
        self._through: dict[Proxy, httpx.AsyncHTTPTransport] = {}

    def _transport(self, proxy: Proxy | None) -> httpx.AsyncHTTPTransport:
        via = None
        if proxy is not None:
            headers = {}
            if proxy.authorization is not None:
                headers["Proxy-Authorization"] = proxy.authorization.decode("ascii")
            via = httpx.Proxy(proxy.shown, headers=headers)
        return httpx.AsyncHTTPTransport(verify=self._ssl, limits=self._limits, proxy=via)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _typed_errors():
            response = await self._send(request)
        response.stream = _TypedStream(response.stream)
        return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        proxy = self._proxies.proxy_for(url.scheme, url.host, port)
        if proxy is None:
            return await self._direct.handle_async_request(request)
        transport = self._through.get(proxy)
        if transport is None:
            transport = self._through[proxy] = self._transport(proxy)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._through.values():
            await transport.aclose()


class _TypedStream(httpx.AsyncByteStream):
    """A response body whose protocol failures are raised as imgflow's types."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _typed_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        with _typed_errors():
            await self._stream.aclose()


@contextlib.contextmanager
def _typed_errors() -> Iterator[None]:
    """Re-raise httpx's RemoteProtocolError as the type its words describe."""
    try:
        yield
    except httpx.RemoteProtocolError as exc:
        if type(exc) is not httpx.RemoteProtocolError:
            raise
        raise _typed(str(exc)) from exc


def _typed(text: str) -> httpx.RemoteProtocolError:
    """A body cut short (h11: "peer closed connection without sending complete message
    body"), a close before the response ("Server disconnected ..."), or malformed bytes."""
    lowered = text.lower()
    if "incomplete" in lowered or "complete message body" in text:
        return IncompleteBody(text)
    if any(word in lowered for word in ("disconnected", "complete message body", "connection")):
        return ConnectionClosed(text)
    return BadResponse(text)
