"""The transport's failures, each its own type so a caller maps them by type, never by text.

Each is the httpx exception a caller of an httpx transport expects, narrowed: code that
catches httpx's types is unchanged.
"""

from __future__ import annotations

import httpx


class BadResponse(httpx.RemoteProtocolError):
    """A response a strict HTTP/1.1 parser refuses; the connection is closed."""


class ConnectionClosed(httpx.RemoteProtocolError):
    """The server closed the connection before its response's head was complete."""


class IncompleteBody(httpx.RemoteProtocolError):
    """The server closed the connection before the whole body its head announced."""
