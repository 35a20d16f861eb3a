"""httpx's own transport, with imgflow's proxy routing and TLS context (fetch.transport: httpx)."""

from __future__ import annotations

import ssl

import httpx

from imgflow.engine.proxy import Proxy, ProxyRouter


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
