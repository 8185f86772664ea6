"""Which windows may be missing trades: the ``"partial": true`` rule of millisecond bars (pure, no I/O).

A window ``[s, e)`` is partial when it began before its series was covered (the subscription that asks for it
started at market time ``start > s``: the trades before that were never asked for) or when it overlaps an
upstream gap ``(g0, g1)``: ``e > g0 and s < g1``. Market times come from the book's clocks; a start or gap end
taken before any clock was known stays :data:`PENDING` (every window counts as beginning before it) until the
next batch or tick that knows the clock, and is then that clock: the first windows after a cold start or a
reconnect are partial, since nobody knows what they held before the first trade arrived. It never decides when
a bar closes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ms_aggregator.clock import NEVER

__all__ = ["PENDING", "Coverage"]

#: A start or gap end not known yet: every window begins before it.
PENDING = 2**62
MAX_GAPS = 64  # the newest gaps kept; older ones end long before any window that can still open


class Coverage:
    """Subscription starts and upstream gaps of one book."""

    def __init__(self) -> None:
        self.wild: dict[int, int] = {}  # interval -> market ms its "*" subscription started
        self.named: dict[tuple[int, str], int] = {}  # (interval, ticker) -> market ms
        self.gaps: list[list[int]] = []  # [g0, g1]; g1 PENDING while the gap is open or its end is unresolved
        self.down = False
        self._pending = False

    def subscribe(self, subs: Iterable[tuple[int, str]], clock: int) -> None:
        """The series wanted from now on; new ones start at ``clock`` (the cluster's market time)."""
        start = clock if clock != NEVER else PENDING
        wild: dict[int, int] = {}
        named: dict[tuple[int, str], int] = {}
        for interval, ticker in subs:
            if ticker == "*":
                wild[interval] = self.wild.get(interval, start)
            else:
                named[(interval, ticker)] = self.named.get((interval, ticker), start)
        self.wild, self.named = wild, named
        self._pending = self._pending or start == PENDING

    def link_down(self, g0: int) -> bool:
        """The upstream went away; windows ending after ``g0`` may miss trades. False if it was already down."""
        if self.down:
            return False
        self.down = True
        self.gaps.append([g0, PENDING])
        del self.gaps[:-MAX_GAPS]
        return True

    def link_up(self, clock: int) -> bool:
        """The upstream is back; windows starting before ``clock`` may have missed trades."""
        if not self.down:
            return False
        self.down = False
        self.gaps[-1][1] = clock if clock != NEVER else PENDING
        self._pending = self._pending or clock == NEVER
        return True

    @property
    def pending(self) -> bool:
        return self._pending

    def resolve(self, clock: int) -> None:
        """Starts and gap ends taken before the clock was known become ``clock``."""
        if not self._pending or clock == NEVER:
            return
        self.wild = {iv: clock if st == PENDING else st for iv, st in self.wild.items()}
        self.named = {key: clock if st == PENDING else st for key, st in self.named.items()}
        for gap in self.gaps[:-1] if self.down else self.gaps:
            if gap[1] == PENDING:
                gap[1] = clock
        self._pending = False

    def partial(self, s: np.ndarray, e: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Per new window: partial or not, given each one's series start."""
        out = s < start
        for g0, g1 in self.gaps:
            out |= (e > g0) & (s < g1)
        return out

    def start(self, interval: int, ticker: str, wildcard: bool, named: bool) -> int:
        """When the series (interval, ticker) became covered: its earliest subscription."""
        start = PENDING
        if wildcard:
            start = self.wild.get(interval, PENDING)
        if named:
            start = min(start, self.named.get((interval, ticker), PENDING))
        return start
