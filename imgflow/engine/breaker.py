"""The circuit breaker: a host that cannot be reached is paused for the rest of the run.

Each finished image tells its host's breaker what happened. A host whose name does not
resolve, or that refuses connections, `threshold` images in a row (each after its own
retries) is paused: its images not yet started fail at once with `FailureKind.HOST_PAUSED`
instead of each waiting out its retries, and the run's summary has one line for the host.
Any other answer (an image stored, a 404, a timeout) starts the count again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from imgflow.engine import messages
from imgflow.engine.failures import FailureKind
from imgflow.engine.outcome import FetchFailure

BREAKER_THRESHOLD = 5
UNREACHABLE = frozenset({FailureKind.DNS_FAILED, FailureKind.CONNECTION_REFUSED})
_WHAT = {
    FailureKind.DNS_FAILED: "did not resolve",
    FailureKind.CONNECTION_REFUSED: "refused connections",
}


@dataclass
class Pause:
    """A paused host: why (the kind of its failures in a row) and the images it cost."""

    host: str
    kind: FailureKind
    failures: int  # the failures in a row that paused it
    skipped: int = 0  # its images failed without a try since

    def line(self) -> str:
        """``host 127.0.0.1:9 paused: refused connections 5 times in a row (12 images
        not tried)``."""
        return (
            f"host {self.host} paused: {_WHAT[self.kind]} {self.failures} times in a row"
            f" ({self.skipped:,} {'image' if self.skipped == 1 else 'images'} not tried)"
        )


class Breaker:
    """The breakers of every host of a run (one event loop's)."""

    def __init__(self, threshold: int = BREAKER_THRESHOLD) -> None:
        self.threshold = threshold
        self.pauses: dict[str, Pause] = {}
        self._streaks: dict[str, tuple[FailureKind, int]] = {}
        self.dns_failed: dict[str, int] = {}  # images per host whose name did not resolve

    def record(self, host: str, kind: FailureKind | None) -> None:
        """An image of `host` finished: `kind` is its failure's (None when it did not fail)."""
        if kind is FailureKind.DNS_FAILED:
            self.dns_failed[host] = self.dns_failed.get(host, 0) + 1
        if host in self.pauses:
            return
        if kind not in UNREACHABLE:
            self._streaks.pop(host, None)
            return
        assert kind is not None
        _, count = self._streaks.get(host, (kind, 0))
        count += 1
        if count >= self.threshold:
            self._streaks.pop(host, None)
            self.pauses[host] = Pause(host, kind, count)
        else:
            self._streaks[host] = (kind, count)

    def paused(self, host: str) -> Pause | None:
        """The host's pause, when it is paused."""
        return self.pauses.get(host)

    def skip(self, pause: Pause, url: str) -> FetchFailure:
        """The failure of an image of a paused host (counted in its pause)."""
        pause.skipped += 1
        if pause.kind is FailureKind.DNS_FAILED:
            self.dns_failed[pause.host] = self.dns_failed.get(pause.host, 0) + 1
        detail = f"{pause.host} {_WHAT[pause.kind]} {pause.failures} times in a row"
        return FetchFailure(
            FailureKind.HOST_PAUSED, messages.failure(messages.HOST_PAUSED, url, detail), None, 0
        )

    def lines(self) -> list[str]:
        """The run summary's lines: one per paused host, then one for the DNS failures."""
        lines = [pause.line() for _, pause in sorted(self.pauses.items())]
        dns = dns_line(self.dns_failed.items())
        return lines if dns is None else [*lines, dns]


def dns_line(failed: Iterable[tuple[str, int]]) -> str | None:
    """``DNS lookup failed for 3 hosts (1,204 images)`` from (host, images) pairs."""
    pairs = [(host, count) for host, count in failed if count]
    if not pairs:
        return None
    hosts = len(pairs)
    images = sum(count for _, count in pairs)
    return (
        f"{messages.DNS_FAILED} for {hosts:,} {'host' if hosts == 1 else 'hosts'}"
        f" ({images:,} {'image' if images == 1 else 'images'})"
    )
