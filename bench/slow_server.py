"""A loopback HTTP/1.1 server that waits before every response and counts requests in flight.

    python slow_server.py PORT [DELAY_SECONDS]

Every GET answers a small GIF after DELAY_SECONDS (default 0.05), with keep-alive.
``GET /_stats`` returns JSON: requests served, the most ever in flight at once, the
time from the first request's arrival to the last response, and the mean in flight over
that span; ``GET /_reset`` clears them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


class Stats:
    """What the server saw since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first = 0.0
        self.last = 0.0
        self.area = 0.0  # requests in flight integrated over time (mean = area / span)
        self.changed = 0.0

    def step(self, delta: int) -> None:
        """One more (or one fewer) request in flight, now."""
        now = time.perf_counter()
        if self.in_flight:
            self.area += self.in_flight * (now - self.changed)
        self.changed = now
        self.in_flight += delta
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def as_json(self) -> bytes:
        span = self.last - self.first if self.served else 0.0
        mean = self.area / span if span else 0.0
        return json.dumps(
            {
                "served": self.served,
                "max_in_flight": self.max_in_flight,
                "span": span,
                "mean_in_flight": mean,
            }
        ).encode()


def _response(body: bytes, content_type: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type
    return head + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


async def serve(
    delay: float, stats: Stats, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            if target == b"/_stats":
                writer.write(_response(stats.as_json(), b"application/json"))
                continue
            if target == b"/_reset":
                stats.reset()
                writer.write(_response(b"{}", b"application/json"))
                continue
            now = time.perf_counter()
            if not stats.served and not stats.in_flight:
                stats.first = now
            stats.step(1)
            await asyncio.sleep(delay)
            writer.write(_response(GIF, b"image/gif"))
            stats.step(-1)
            stats.served += 1
            stats.last = time.perf_counter()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, delay: float) -> None:
    stats = Stats()
    server = await asyncio.start_server(
        lambda r, w: serve(delay, stats, r, w), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.05))
