"""Reconnect delays: exponential backoff with full jitter, reset after a connection that stayed up."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: uniform in [0, min(cap, base * 2**attempts)]."""
        ceiling = min(self.cap_s, self.base_s * (2**self.attempts))
        self.attempts += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempts = 0
