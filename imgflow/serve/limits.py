"""Request-body limits of `imgflow serve`: size (read incrementally) and JSON nesting depth."""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request

from imgflow.serve.errors import Refusal


def too_large(limit: int) -> Refusal:
    """The 413 refusal (the connection is closed: the rest of the body stays unread)."""
    return Refusal(
        413,
        f"request body is larger than {limit} bytes (serve.max_body_bytes)",
        close=True,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise Refusal(400, f"Content-Length is not a number: {length!r}", close=True)
        if int(length) > limit:
            raise too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large(limit)
    except ClientDisconnect:
        raise Refusal(400, "the client closed the connection before the body was sent") from None
    return bytes(body)


def json_depth(value: Any) -> int:
    """The deepest nesting of arrays and objects in a parsed JSON value (walked, not recursed)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in item if isinstance(v, dict | list))
    return deepest
