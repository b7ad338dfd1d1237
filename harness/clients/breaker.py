"""A circuit breaker for one endpoint: it opens only on a sustained failure rate, then fails fast.

One failed attempt delays only the request that met it (its own back-off); the breaker is what
stops a run from spending retries on an endpoint that is down. It keeps the outcomes of the last
`window` attempts. Closed: every attempt goes through. It opens when at least `min_attempts` of
that window are recorded and the failed share reaches `open_rate`; while open, attempts are
refused at once (the caller fails them naming the endpoint and its last errors). Every `reset_s`
one probe attempt goes through (half-open); any success closes the breaker with a clean window.

The defaults keep a flaky endpoint closed (at a 20% fault rate, 25 failures in 50 attempts is
more than six standard deviations out) and open a dead one after 10 attempts, a second or two
into a run.
"""
from __future__ import annotations

import time
from collections import deque


class Breaker:
    def __init__(self, window: int = 50, min_attempts: int = 10, open_rate: float = 0.5, reset_s: float = 10.0):
        self.window, self.min_attempts, self.open_rate, self.reset_s = window, min_attempts, open_rate, reset_s
        self.outcomes: deque[bool] = deque(maxlen=window)  # True: the attempt failed
        self.last_errors: deque[str] = deque(maxlen=3)
        self.opened_at: float | None = None  # or when the last probe was let through
        self.times_opened = 0

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        """May an attempt go to this endpoint now? (Claims the probe slot when half-open.)"""
        now = time.monotonic()
        if self.opened_at is None:
            return True
        if now - self.opened_at < self.reset_s:
            return False
        self.opened_at = now  # the next probe waits another reset_s, whether this one ends or not
        return True

    def success(self) -> None:
        if self.opened_at is not None:  # a probe (or an attempt sent before it opened) was answered
            self.outcomes.clear()
            self.opened_at = None
        self.outcomes.append(False)

    def failure(self, message: str) -> None:
        self.last_errors.append(message)
        if self.opened_at is not None:  # a probe, or an attempt sent before the breaker opened
            return
        self.outcomes.append(True)
        if len(self.outcomes) >= self.min_attempts and sum(self.outcomes) >= self.open_rate * len(self.outcomes):
            self.opened_at = time.monotonic()
            self.times_opened += 1
