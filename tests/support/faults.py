"""A catalogue of hostile server behaviours and a seeded job that mixes them into good paths.

Each `Fault` scripts one path on a `FaultServer` for a first run and says how that run must
end: ``transient`` faults clear up within the fetcher's retries (the image ends stored),
``persistent`` ones are retryable but outlast the retries (failed first; `heal` makes them
good for a second run), ``permanent`` ones are not worth retrying (failed on every run).

The timings assume `FAULT_FETCH` (short timeouts, 2 retries, a 32 KiB size cap).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from imgflow.engine import messages
from imgflow.engine.settings import FetchConfig
from support.faultserver import FaultServer, Reply
from support.replies import Drip, HttpDate, Ok, PerMethod, Redirect, Reset, Short, Stall, Status

# The fault server shares a process (and the GIL) with the client under test, on a machine
# that may be busy with other tests: the read timeout leaves it a full second to answer, so
# only the scripted stalls (5 s) and drips (longer than `total_timeout`) ever time out.
FAULT_FETCH = FetchConfig(
    timeout=1.0,
    connect_timeout=1.0,
    total_timeout=2.0,
    retries=2,
    backoff_base=0.005,
    backoff_max=0.01,
    retry_after_max=5.0,
    max_bytes=32 * 1024,
    max_redirects=3,
    throttle_patience=2.0,  # a 503 storm is retried this long, then fails as Throttled
    # Scripted per-path 429/503 are not a host's rate limit: keep the host's rate (the
    # cool-down and the halved concurrency still apply; tests/test_throttling.py covers
    # the adaptive rate against real nginx).
    adaptive_rate=False,
)


class Kind(StrEnum):
    """How a fault behaves over retries and runs."""

    TRANSIENT = "transient"
    PERSISTENT = "persistent"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Env:
    """What a script may use: the server, a second host and the path being scripted."""

    server: FaultServer
    other: FaultServer
    path: str
    body: bytes


Script = Callable[[Env], list[Reply]]


@dataclass(frozen=True)
class Fault:
    """One hostile behaviour: its script, kind and the failure classes it may end in."""

    name: str
    kind: Kind
    script: Script
    classes: tuple[str, ...] = ()


def _moved(env: Env, target: str, server: FaultServer | None = None) -> list[Reply]:
    host = server or env.server
    host.set(target, Ok(env.body))
    return [Redirect(host.url(target) if server is not None else target)]


HTML = b"<!doctype html><html><body><h1>Service error</h1></body></html>"
CUT = (messages.CONNECTION_RESET, messages.INCOMPLETE)

FAULTS: tuple[Fault, ...] = (
    # transient: within the retries, so the image must end stored
    Fault("reset-before-head-once", Kind.TRANSIENT, lambda e: [Reset(), Ok(e.body)]),
    Fault("reset-mid-body-once", Kind.TRANSIENT, lambda e: [Reset(False, e.body[:8]), Ok(e.body)]),
    Fault("short-once", Kind.TRANSIENT, lambda e: [Short(e.body[:9], len(e.body)), Ok(e.body)]),
    Fault("500-then-200", Kind.TRANSIENT, lambda e: [Status(500), Ok(e.body)]),
    Fault("503-storm-of-2", Kind.TRANSIENT, lambda e: [Status(503), Status(503), Ok(e.body)]),
    Fault("429-seconds", Kind.TRANSIENT, lambda e: [Status(429, retry_after=0.05), Ok(e.body)]),
    Fault(
        "429-http-date",
        Kind.TRANSIENT,
        lambda e: [Status(429, retry_after=HttpDate(1)), Ok(e.body)],
    ),
    Fault("stall-after-head-once", Kind.TRANSIENT, lambda e: [Stall(True, 5), Ok(e.body)]),
    Fault("stall-before-head-once", Kind.TRANSIENT, lambda e: [Stall(False, 5), Ok(e.body)]),
    Fault("drip-once", Kind.TRANSIENT, lambda e: [Drip(b"GIF89a", 0.05), Ok(e.body)]),
    Fault("redirect-same-host", Kind.TRANSIENT, lambda e: _moved(e, "/moved" + e.path)),
    Fault("redirect-other-host", Kind.TRANSIENT, lambda e: _moved(e, e.path, e.other)),
    Fault(
        "redirect-absolute-loopback",
        Kind.TRANSIENT,
        lambda e: _moved(e, "/abs" + e.path, e.server),
    ),
    Fault("head-404-get-200", Kind.TRANSIENT, lambda e: [PerMethod(Status(404), Ok(e.body))]),
    Fault("gzip-chunked", Kind.TRANSIENT, lambda e: [Ok(e.body, gzip=True, chunked=True)]),
    # persistent: retryable, but longer than the retries
    Fault("reset-always", Kind.PERSISTENT, lambda e: [Reset()], (messages.CONNECTION_RESET,)),
    Fault("reset-mid-body-always", Kind.PERSISTENT, lambda e: [Reset(False)], CUT),
    Fault("short-always", Kind.PERSISTENT, lambda e: [Short(e.body[:9], 999)], CUT),
    Fault("503-storm", Kind.PERSISTENT, lambda e: [Status(503)], (messages.THROTTLED,)),
    Fault(
        "429-retry-after-too-long",
        Kind.PERSISTENT,
        lambda e: [Status(429, retry_after=3600)],
        (messages.HTTP_ERROR,),
    ),
    Fault("stall-always", Kind.PERSISTENT, lambda e: [Stall(True, 5)], (messages.TIMED_OUT,)),
    Fault(
        "drip-forever", Kind.PERSISTENT, lambda e: [Drip(b"GIF89a", 0.05)], (messages.TIMED_OUT,)
    ),
    # permanent: not retried, failed on every run
    Fault("404", Kind.PERMANENT, lambda e: [Status(404)], (messages.NOT_FOUND,)),
    Fault("410", Kind.PERMANENT, lambda e: [Status(410)], (messages.NOT_FOUND,)),
    Fault("403", Kind.PERMANENT, lambda e: [Status(403)], (messages.HTTP_ERROR,)),
    Fault(
        "html-error-page-200",
        Kind.PERMANENT,
        lambda e: [Ok(HTML, content_type="text/html; charset=utf-8")],
        (messages.NOT_AN_IMAGE,),
    ),
    Fault(
        "html-labelled-gif",
        Kind.PERMANENT,
        lambda e: [Ok(HTML, content_type="image/gif")],
        (messages.NOT_AN_IMAGE,),
    ),
    Fault(
        "head-image-get-html",
        Kind.PERMANENT,
        lambda e: [PerMethod(Ok(e.body), Ok(HTML, content_type="text/html"))],
        (messages.NOT_AN_IMAGE,),
    ),
    Fault(
        "over-size-cap",
        Kind.PERMANENT,
        lambda e: [Ok(e.body + bytes(64 * 1024))],
        (messages.TOO_LARGE,),
    ),
    Fault(
        "over-cap-chunked",
        Kind.PERMANENT,
        lambda e: [Ok(e.body + bytes(64 * 1024), chunked=True)],
        (messages.TOO_LARGE,),
    ),
    Fault(
        "gzip-bomb",
        Kind.PERMANENT,
        lambda e: [Ok(b"GIF89a" + bytes(4 * 1024 * 1024), gzip=True)],
        (messages.TOO_LARGE,),
    ),
    Fault(
        "redirect-loop",
        Kind.PERMANENT,
        lambda e: [Redirect(e.path)],
        (messages.TOO_MANY_REDIRECTS,),
    ),
    Fault(
        "redirect-to-file",
        Kind.PERMANENT,
        lambda e: [Redirect("file:///etc/passwd")],
        (messages.BAD_REDIRECT,),
    ),
    Fault(
        "redirect-without-location",
        Kind.PERMANENT,
        lambda e: [Redirect("")],
        (messages.BAD_REDIRECT,),
    ),
)


@dataclass
class Planned:
    """A seeded job: paths, each path's body, and which fault (if any) it was given."""

    paths: list[str]
    bodies: dict[str, bytes]
    faults: dict[str, Fault] = field(default_factory=dict)

    def of_kind(self, kind: Kind) -> list[str]:
        """The paths whose fault is of `kind`."""
        return [p for p, f in self.faults.items() if f.kind is kind]


def image_body(rng: random.Random, size_range: tuple[int, int] = (40, 3000)) -> bytes:
    """A unique GIF-looking body (the sniff only reads the magic)."""
    return b"GIF89a" + rng.randbytes(rng.randint(*size_range))


def plan_job(
    server: FaultServer,
    other: FaultServer,
    *,
    seed: int,
    count: int,
    fault_rate: float,
    faults: tuple[Fault, ...] = FAULTS,
    prefix: str = "img",
) -> Planned:
    """Script `count` paths on `server`: `fault_rate` of them get a fault drawn at random."""
    rng = random.Random(seed)
    planned = Planned(paths=[], bodies={})
    for i in range(count):
        path = f"{prefix}/{i % 37}/{i}-{rng.randrange(10**6)}.gif"
        body = image_body(rng)
        planned.paths.append(path)
        planned.bodies[path] = body
        if rng.random() < fault_rate:
            fault = rng.choice(faults)
            planned.faults[path] = fault
            server.set("/" + path, *fault.script(Env(server, other, "/" + path, body)))
        else:
            server.set("/" + path, Ok(body))
    return planned


def heal(server: FaultServer, planned: Planned) -> list[str]:
    """Make every persistent fault good; the healed paths."""
    healed = planned.of_kind(Kind.PERSISTENT)
    for path in healed:
        server.set("/" + path, Ok(planned.bodies[path]))
    return healed
