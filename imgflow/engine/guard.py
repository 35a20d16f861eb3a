"""The target guard: refuse URLs whose host is (or resolves to) a non-public address.

The download Lambda runs inside a VPC-less AWS sandbox where a fetched URL could reach the
instance metadata service (169.254.169.254), the Lambda runtime API or private networks.
`make_guard` returns an async check the fetcher awaits before every request, redirects
included; it raises `TargetRefused` (whose text the fetcher puts in the failure message)
when the host is a refused address or a DNS name with any refused address.

Refused: loopback, link-local, private, shared (CGNAT), multicast, reserved, unspecified
and documentation ranges (everything that is not globally routable), their IPv6 forms
(IPv4-mapped, NAT64, 6to4 and Teredo embeddings are unwrapped), and the address of
AWS_LAMBDA_RUNTIME_API. A name that does not resolve is let through: the fetch then fails
with its own DNS message.

`make_address_check` closes the gap a URL check alone leaves (DNS rebinding: the name
answering a public address to the check and a private one to the connection): imgflow's
transport resolves the host itself, passes every address through it, and connects to the
address it checked.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from imgflow.engine.dns import getaddrinfo

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]
Guard = Callable[[str], Awaitable[None]]
AddressCheck = Callable[[str], Awaitable[str | None]]

RUNTIME_API_VARIABLE = "AWS_LAMBDA_RUNTIME_API"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(Exception):
    """The URL's host is an address imgflow does not fetch from."""


def unwrap(address: Address) -> Address:
    """The IPv4 address embedded in an IPv6 address (mapped, NAT64, 6to4, Teredo), or itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def refusal(address: Address, extra: Iterable[Address] = ()) -> str | None:
    """Why `address` is refused, or None when it is a public address."""
    inner = unwrap(address)
    shown = str(address) if inner == address else f"{address} ({inner})"
    if inner in set(extra) or address in set(extra):
        return f"{shown} is the Lambda runtime API address"
    kinds = (
        ("loopback", inner.is_loopback),
        ("link-local", inner.is_link_local),
        ("unspecified", inner.is_unspecified),
        ("multicast", inner.is_multicast),
        ("private", inner.is_private),
        ("reserved", inner.is_reserved),
        ("non-public", not inner.is_global),
    )
    for kind, hit in kinds:
        if hit:
            return f"{shown} is a {kind} address"
    return None


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def system_resolver(host: str) -> list[str]:
    """Every address `host` resolves to (empty when it does not resolve)."""
    try:
        infos = await getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


async def _addresses(host: str, resolver: Resolver) -> list[Address]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    found: list[Address] = []
    for text in await resolver(host):
        address = _literal(text)
        if address is not None:
            found.append(address)
    return found


async def runtime_api_addresses(resolver: Resolver, value: str | None) -> list[Address]:
    """The addresses of the Lambda runtime API (``host:port`` in AWS_LAMBDA_RUNTIME_API)."""
    if not value:
        return []
    host = urlsplit(f"//{value}").hostname
    return await _addresses(host, resolver) if host else []


def make_guard(
    *,
    resolver: Resolver = system_resolver,
    runtime_api: str | None = None,
) -> Guard:
    """An async check that raises TargetRefused for a URL on a refused address.

    `runtime_api` defaults to the AWS_LAMBDA_RUNTIME_API variable.
    """
    api_value = os.environ.get(RUNTIME_API_VARIABLE) if runtime_api is None else runtime_api
    api_addresses: list[Address] | None = None

    async def check(url: str) -> None:
        nonlocal api_addresses
        host = urlsplit(url).hostname
        if not host:
            raise TargetRefused("the URL has no host")
        if api_addresses is None:
            api_addresses = await runtime_api_addresses(resolver, api_value)
        for address in await _addresses(host, resolver):
            reason = refusal(address, api_addresses)
            if reason is not None:
                where = "" if _literal(host) is not None else f"{host} resolves to "
                raise TargetRefused(where + reason)

    return check


def make_address_check(
    *,
    resolver: Resolver = system_resolver,
    runtime_api: str | None = None,
) -> AddressCheck:
    """An async check of one resolved address: why it is refused, or None when it is public.

    imgflow's transport calls it with the addresses it is about to connect to.
    """
    api_value = os.environ.get(RUNTIME_API_VARIABLE) if runtime_api is None else runtime_api
    api_addresses: list[Address] | None = None

    async def check(text: str) -> str | None:
        nonlocal api_addresses
        if api_addresses is None:
            api_addresses = await runtime_api_addresses(resolver, api_value)
        address = _literal(text)
        if address is None:
            return f"{text} is not an IP address"
        return refusal(address, api_addresses)

    return check
