"""Politeness per host: a request rate, adaptive concurrency and a shared cool-down.

Every request to a host passes its `HostGate`:

- **Rate.** A token bucket holding at most `burst` tokens, refilled at `rate` per second
  (`fetch.rate`, `--rate`). With the default burst of 1 two requests never start closer
  than 1/rate seconds apart, which is what a strict server-side limiter (nginx's
  ``limit_req`` without ``burst``) accepts: a request that leaves late pushes the next
  ones back rather than letting them catch up.
- **Adaptive concurrency (AIMD).** The host's allowed requests in flight start at the
  run's ceiling (concurrency x batches in flight: the caps never grow). A throttling
  answer (429, 503, a refused or reset connection) halves it, at most once per cool-down;
  every success adds 1/limit, so it grows back by about one per round of requests.
- **Adaptive rate.** A throttle also sets (or lowers) the host's rate to a little under
  the rate it was sent just before (at most once per two seconds); the rate then grows back
  fast to near the lowest rate refused lately and slowly beyond it, so a server with a
  fixed request rate is approached from below and probed rarely. It never exceeds
  `fetch.rate` when set.
- **Cool-down.** A throttle makes every worker of that host wait for the Retry-After the
  server gave (or a backoff that doubles with each consecutive throttle), not each
  request on its own. Refusals that come back during a cool-down answer requests sent
  before it: they are the same signal (only a longer Retry-After extends it).

Only the event loop's thread uses a gate; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

MIN_RATE = 0.5  # requests per second: the slowest an adaptive rate goes
RATE_CUT = 0.85  # after a throttle: this share of the rate that was being served
RATE_GROWTH = 0.003  # per second, as a share of the rate refused lately (probing)
NEAR = 0.95  # below this share of that rate, the rate grows back fast
SUCCESS_WINDOW = 2.0  # seconds of requests that estimate the rate a host refused
RATE_WINDOW = 2.0  # seconds between two cuts of the rate
BURST_START = 1.0  # requests per second: the least a rate starts from after a first burst
HINT_MEMORY = 30.0  # seconds a refused rate is remembered as the ceiling of fast growth


class Signal(Enum):
    """What one request told about the host's load."""

    OK = "ok"  # any complete answer that is not a throttle (404 included)
    THROTTLED = "throttled"  # 429 or 503: the host asks us to slow down
    OVERLOADED = "overloaded"  # refused or reset while other requests were in flight
    OTHER = "other"  # timeouts, 5xx, anything that says nothing about politeness

    @property
    def refused(self) -> bool:
        """The host refused the request (a throttle or an overload)."""
        return self is Signal.THROTTLED or self is Signal.OVERLOADED


@dataclass(frozen=True)
class Change:
    """A host's politeness changed: shown on the progress line."""

    host: str
    limit_before: int
    limit_after: int
    rate: float | None
    wait: float


OnChange = Callable[[Change], None]


class HostGate:
    """The politeness state of one host; see the module's description."""

    def __init__(
        self,
        host: str,
        ceiling: int,
        *,
        rate: float | None = None,
        burst: int = 1,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        adaptive_rate: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_change: OnChange | None = None,
    ) -> None:
        self.host = host
        self.adaptive_rate = adaptive_rate
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.max_rate = rate
        self.rate = rate
        self.burst = max(1, burst)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.in_flight = 0
        self.throttles = 0
        self.cool_until = 0.0
        self._clock = clock
        self._sleep = sleep
        self._on_change = on_change
        self._tokens = float(self.burst)
        self._filled = clock()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._cut_at = -math.inf
        self._streak = 0  # consecutive throttles with no success between
        self._refused_rate: float | None = None
        self._rate_cut_at = -math.inf
        self._learnt_at = -math.inf
        self._ok: deque[float] = deque()  # when recent requests succeeded
        self._sent: deque[float] = deque()  # when recent requests left
        self._grown = clock()

    # -- taking and giving back a slot ---------------------------------------------------

    async def acquire(self) -> None:
        """Wait for the cool-down, a slot under the current limit and a token; take them.

        The slot is taken before the token is waited for. A waiting worker looks at the
        rate again each time it wakes (the rate may have changed while it waited), and
        only one takes each token, so workers waiting together leave one after another,
        1/rate apart; a cool-down that begins meanwhile holds them too.
        """
        waited_for = -math.inf
        while True:
            now = self._clock()
            if now < self.cool_until and self.cool_until > waited_for:
                waited_for = self.cool_until
                await self._sleep(self.cool_until - now)
                continue
            if self.in_flight >= self.allowed:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                continue
            break
        self.in_flight += 1
        try:
            await self._take_token()
        except BaseException:
            self.in_flight -= 1
            self._wake()
            raise
        now = self._clock()
        self._sent.append(now)
        self._window(now)  # (drops what is older than the window)

    def release(self, signal: Signal, retry_after: float | None = None) -> bool:
        """Give the slot back with what the request told about the host; see `tell`."""
        self.in_flight = max(0, self.in_flight - 1)
        return self.tell(signal, retry_after)

    def tell(self, signal: Signal, retry_after: float | None = None) -> bool:
        """What a request told about the host, from a redirect to it (which took no slot
        here), or from `release`. True when a refusal was taken as a signal of its own,
        False for one answering a request sent before the cool-down it is part of."""
        now = self._clock()
        taken = False
        if signal is Signal.OK:
            self._succeeded(now)
        elif signal.refused:
            taken = self._throttled(now, retry_after)
        self._wake()
        return taken

    async def cool_down(self) -> None:
        """Wait out the host's cool-down, taking no slot (a redirect to this host)."""
        while (left := self.cool_until - self._clock()) > 0:
            await self._sleep(left)

    def space(self, seconds: float) -> None:
        """Start requests at least `seconds` apart (robots.txt's Crawl-delay): the rate
        and its ceiling become at most 1/seconds, with a burst of one."""
        most = 1.0 / seconds
        self.max_rate = most if self.max_rate is None else min(self.max_rate, most)
        self.rate = most if self.rate is None else min(self.rate, most)
        self.burst = 1
        self._tokens = min(self._tokens, 1.0)

    @property
    def allowed(self) -> int:
        """Requests this host may have in flight now."""
        return max(1, min(self.ceiling, int(self.limit)))

    @property
    def cooling(self) -> float:
        """Seconds of cool-down left (0 when none)."""
        return max(0.0, self.cool_until - self._clock())

    # -- internals -------------------------------------------------------------------------

    async def _take_token(self) -> None:
        """Wait until a token is there at the rate of the moment, and take it.

        Tokens are taken when they are there, never reserved ahead: a request that
        leaves late (a busy loop) pushes the next ones back rather than letting them
        catch up, so with a burst of 1 no two leave closer than 1/rate, which a strict
        limiter would refuse.
        """
        while True:
            now = self._clock()
            if now < self.cool_until:
                await self._sleep(self.cool_until - now)
                continue
            rate = self.rate
            if rate is None:
                return
            self._tokens = min(float(self.burst), self._tokens + (now - self._filled) * rate)
            self._filled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await self._sleep(max((1.0 - self._tokens) / rate, 0.001))

    def _succeeded(self, now: float) -> None:
        self._streak = 0
        self._ok.append(now)
        _prune(self._ok, now)
        if self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        hint = self._refused_rate
        if self.rate is not None:
            if hint is None:  # no refused rate measured yet (only a burst): doubles a second
                grown = self.rate * 2 ** min(1.0, now - self._grown)
            elif self.rate < NEAR * hint:  # far below where the host refused: 5% a success
                grown = min(NEAR * hint, self.rate * 1.05)
            else:  # near it: probe slowly
                grown = self.rate + RATE_GROWTH * hint * (now - self._grown)
            self.rate = grown if self.max_rate is None else min(self.max_rate, grown)
        self._grown = now

    def _throttled(self, now: float, retry_after: float | None) -> bool:
        self.throttles += 1
        if now < self.cool_until:
            # An answer to a request sent before this cool-down began: the same signal.
            if retry_after is not None:
                self.cool_until = max(self.cool_until, now + retry_after)
            return False
        self._streak += 1
        if retry_after is not None:
            wait = retry_after
        else:
            ceiling = min(self.backoff_max, self.backoff_base * 2 ** (self._streak - 1))
            wait = random.uniform(ceiling / 2, ceiling)
        self.cool_until = max(self.cool_until, now + wait)
        if self.adaptive_rate:
            self._learn(now)
        if now - self._cut_at < max(wait, 0.1):
            return True  # one cut per cool-down: a burst of refusals is one signal
        self._cut_at = now
        before = self.allowed
        self.limit = max(1.0, self.limit / 2)
        if self.adaptive_rate:
            self._cut_rate(now)
        if self._on_change is not None:
            self._on_change(Change(self.host, before, self.allowed, self.rate, wait))
        return True

    def _window(self, now: float) -> tuple[float, float] | None:
        """(requests per second sent over the last window, the window's span), or None."""
        _prune(self._sent, now)
        if not self._sent:
            return None
        span = now - self._sent[0]
        return len(self._sent) / max(1.0, span), span

    def _learn(self, now: float) -> None:
        """The host refused the rate being sent: it becomes the ceiling of fast growth.

        The lowest rate refused lately is kept (for HINT_MEMORY seconds): a probe refused
        above it must not raise the point the rate grows back to fast, which would
        ratchet the rate up past the host's limit. Requests sent within less than a
        second (the run's first burst) are no measure of a rate and teach nothing.
        """
        window = self._window(now)
        if self.rate is None or window is None or self._burst(window):
            return
        # The rate requests were spaced at (the window's average would count the
        # cool-downs' silence in and learn a rate the host never refused).
        refused = self.rate
        hint = self._refused_rate
        if hint is not None and now - self._learnt_at < HINT_MEMORY:
            refused = min(hint, refused)
        self._refused_rate = refused
        self._learnt_at = now

    def _burst(self, window: tuple[float, float]) -> bool:
        """True for requests sent within less than a second before any rate was learnt:
        the run's first burst, no measure of a rate."""
        return window[1] < 1.0 and self._refused_rate is None

    def _cut_rate(self, now: float) -> None:
        """Set the rate under the one the host refused, at most once per RATE_WINDOW.

        The refused rate is the lowest of the rate set, what was being sent over the last
        window (at least one second of it) and the lowest rate refused lately: a host with
        a fixed request rate refuses once that is exceeded. One cut per window keeps a
        single path that always answers 503 from dragging a healthy host's rate down
        request after request; the growth between cuts outweighs it.

        After the run's first burst (no rate learnt yet) the next throttle may cut again
        at once, so the rate comes down fast to where the host accepts it.
        """
        if now - self._rate_cut_at < RATE_WINDOW:
            return
        window = self._window(now)
        if window is None:
            return
        current = self.rate if self.rate is not None else math.inf
        hint = self._refused_rate if self._refused_rate is not None else math.inf
        base = min(current, window[0], hint)
        rate = max(MIN_RATE, base * RATE_CUT)
        if self._burst(window):
            # Start from what the host accepted of it (at least one a second: the accepted
            # ones may still be streaming), and double (slow start).
            _prune(self._ok, now)
            rate = max(BURST_START, min(rate, float(len(self._ok))))
        self.rate = rate if self.max_rate is None else min(self.max_rate, rate)
        self._tokens = min(self._tokens, 1.0)
        self._grown = now
        if self._refused_rate is not None:
            self._rate_cut_at = now

    def _wake(self) -> None:
        free = self.allowed - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


def _prune(times: deque[float], now: float) -> None:
    """Drop the times older than the window."""
    while times and times[0] < now - SUCCESS_WINDOW:
        times.popleft()


class Politeness:
    """The gates of every host a fetcher talks to, made on first use by `make_gate`
    (``make_gate(host, on_change=...)``, e.g. a `functools.partial` of `HostGate`)."""

    def __init__(self, make_gate: Callable[..., HostGate], on_change: OnChange | None = None):
        self._make_gate = make_gate
        self.on_change = on_change
        self.gates: dict[str, HostGate] = {}

    def gate(self, host: str) -> HostGate:
        """The gate of `host` (``name[:port]``)."""
        gate = self.gates.get(host)
        if gate is None:
            gate = self.gates[host] = self._make_gate(host, on_change=self._changed)
        return gate

    def throttles(self) -> dict[str, int]:
        """How often each host throttled this fetcher (hosts that never did are left out)."""
        return {host: g.throttles for host, g in self.gates.items() if g.throttles}

    def _changed(self, change: Change) -> None:
        if self.on_change is not None:
            self.on_change(change)
