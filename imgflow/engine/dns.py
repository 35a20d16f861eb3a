"""Name resolution for a run: each host looked up once, off the event loop, and remembered.

`Resolver.resolve` runs the system's getaddrinfo in the loop's thread pool (never on the
loop's thread), shares one lookup among every request that asks for the same name while it
runs, and keeps its answer, a failure included, for `ttl` seconds (the system resolver
gives no record's TTL, so this bound is the TTL imgflow respects: an answer is never used
longer). A name that does not resolve is therefore looked up once per `ttl`, not once per
image, and its every image fails at once with the same DNS error.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], float]

DNS_TTL = 300.0  # seconds an answer (or a failure) is used before the name is asked again


@dataclass
class _Entry:
    expires: float
    lookup: asyncio.Future[list[str]]


class Resolver:
    """Cached lookups of host names; use from one event loop."""

    def __init__(self, ttl: float = DNS_TTL, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self.lookups = 0  # system lookups made (the cache's misses)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host` (itself for an IP literal); socket.gaierror when the
        name does not resolve (the same error for every caller within the TTL)."""
        name = host.strip("[]")
        if self.fresh(name):  # the common case: a name (or literal) known, and fresh
            return list(self._entries[name].lookup.result())
        return await self._resolve(name, port)

    def fresh(self, host: str) -> bool:
        """Whether `host`'s addresses are known and fresh (resolving it would not wait)."""
        entry = self._entries.get(host.strip("[]"))
        return entry is not None and _answered(entry.lookup) and self._clock() < entry.expires

    async def _resolve(self, name: str, port: int) -> list[str]:
        if _is_literal(name):
            known: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
            known.set_result([name])
            self._entries[name] = _Entry(math.inf, known)
            return [name]
        while True:
            entry = self._entries.get(name)
            if entry is None or self._clock() >= entry.expires:
                return await self._lookup(name, port)
            # Another request's lookup of the name: its answer (or failure) is this one's.
            await asyncio.wait([entry.lookup])
            if not entry.lookup.cancelled():
                failure = entry.lookup.exception()
                if failure is not None:  # a fresh error each time (a raise grows its traceback)
                    raise _copy(failure)
                return list(entry.lookup.result())

    async def _lookup(self, name: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str]] = loop.create_future()
        self._entries[name] = _Entry(self._clock() + self.ttl, future)
        self.lookups += 1
        try:
            infos = await getaddrinfo(name, port)
        except (OSError, UnicodeError) as exc:  # (gaierror is an OSError)
            failure = exc if isinstance(exc, socket.gaierror) else _gaierror(exc)
            future.set_exception(failure)
            future.exception()  # (retrieved: a failure nobody else awaits is no warning)
            raise _copy(failure) from None
        except BaseException:
            # Cancelled (an interrupt): the next caller asks again.
            del self._entries[name]
            future.cancel()
            raise
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        future.set_result(addresses)
        return list(addresses)


async def getaddrinfo(host: str, port: int | None) -> list[Any]:
    """socket.getaddrinfo for a stream socket, in the running loop's thread pool (as asyncio's
    own loop.getaddrinfo does; uvloop's would call libuv's, past Python's)."""
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return await loop.run_in_executor(None, lookup)


def _is_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _gaierror(exc: BaseException) -> socket.gaierror:
    error = socket.gaierror(socket.EAI_NONAME, str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error


def _copy(failure: BaseException) -> socket.gaierror:
    if isinstance(failure, socket.gaierror):
        return socket.gaierror(failure.errno, failure.strerror)
    return _gaierror(failure)


def _answered(lookup: asyncio.Future[list[str]]) -> bool:
    """A lookup done with addresses (not failed, not cancelled)."""
    return lookup.done() and not lookup.cancelled() and lookup.exception() is None
