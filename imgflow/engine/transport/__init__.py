"""A lean HTTP/1.1 transport for httpx, built on asyncio protocols and llhttp.

httpx's default async transport (httpcore over anyio and h11) spends about 2 ms of CPU on
each small response; imgflow fetches thousands of small images a second, so it plugs this
transport into ``httpx.AsyncClient`` instead. The client's API, headers, timeouts and
redirect handling are unchanged: only the bytes on the wire are handled here.

Responses are framed by llhttp (Node's strict HTTP parser, through httptools), never by
hand: a malformed or conflicting Content-Length, a bad chunk size, an HTTP/0.9 reply, an
oversized head or an unexpected 101 raise `BadResponse` and close the connection. Bytes
left after a complete response, or arriving while a connection waits in the pool, close
that connection: it is never reused. Interim 1xx responses are skipped.

Also: a keep-alive pool per origin, flow control, read-until-close bodies, forward proxies
(http URLs in absolute form, https URLs through a CONNECT tunnel, Proxy-Authorization from
the proxy URL's credentials), and a transparent resend when a reused keep-alive
connection turns out closed. Body bytes are delivered as received: content decoding is the
caller's. Errors are httpx's exception types, narrowed where a caller tells them apart
(`errors`: a malformed response, a close before the head, a body cut short).

`parse` frames responses (llhttp), `connection` is the asyncio protocol of one connection,
`stream` a response's body (and `direct` the rest of a large one, read by a thread),
`pool` the keep-alive pool behind httpx's transport interface.
"""

from imgflow.engine.transport.errors import BadResponse, ConnectionClosed, IncompleteBody
from imgflow.engine.transport.pool import FastTransport
from imgflow.engine.transport.stream import direct_body

__all__ = ["BadResponse", "ConnectionClosed", "FastTransport", "IncompleteBody", "direct_body"]
