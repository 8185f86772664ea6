"""The subscription plan of a bar book: interval columns and the rows a batch makes (pure, no I/O).

Each distinct subscribed interval gets a column ``k`` (a series is ``sid = tid * kcap + k``). :meth:`Plan.assign`
keeps the columns of intervals still wanted and gives new ones a free column; :meth:`Plan.rows` turns a batch into
one row per (trade, interval it feeds), rows of one window always in arrival order. It never merges trades and
never decides which ticker is subscribed by name (the per-ticker ``want`` matrix it is given does).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["Plan"]


class Plan:
    """Interval columns of a book's subscriptions."""

    def __init__(self) -> None:
        self.intervals: list[int] = []  # k -> interval ms; 0 = free column
        self.k_of: dict[int, int] = {}
        self.wild = np.zeros(4, bool)  # k -> subscribed through "*"
        self.entries: list[tuple[int, int, bool]] = []  # (k, interval, wildcard) for each interval in use
        self.all_wild = False
        self._wild_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see rows()
        self._arange_buf = np.arange(0, dtype=np.int64)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def assign(self, wild: set[int], named: set[int], widen: Callable[[int], int]) -> None:
        """Columns for exactly these intervals. ``widen(n)`` makes room for n columns and returns kcap."""
        needed = wild | named
        for iv in [iv for iv in self.k_of if iv not in needed]:
            self.intervals[self.k_of.pop(iv)] = 0
        kcap = len(self.wild)
        for iv in sorted(needed - self.k_of.keys()):
            k = self.intervals.index(0) if 0 in self.intervals else len(self.intervals)
            if k == len(self.intervals):
                self.intervals.append(0)
            kcap = widen(k + 1)
            self.intervals[k] = iv
            self.k_of[iv] = k
        self.wild = np.zeros(max(kcap, len(self.wild)), bool)
        for iv in wild:
            self.wild[self.k_of[iv]] = True
        self.entries = sorted((k, iv, bool(self.wild[k])) for iv, k in self.k_of.items())
        self.all_wild = bool(self.entries) and all(w for _, _, w in self.entries)
        self._wild_rows = None

    def arange(self, m: int) -> np.ndarray:
        """0..m-1 from a shared read-only buffer."""
        if len(self._arange_buf) < m:
            self._arange_buf = np.arange(max(m, 2 * len(self._arange_buf), 1024), dtype=np.int64)
            self._arange_buf.flags.writeable = False
        return self._arange_buf[:m]

    def rows(self, tid: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(trade index, interval, interval column) per row for a batch of these tickers; None: no rows."""
        m = len(tid)
        if self.all_wild:
            # Every trade feeds every interval: trade-major rows, sliced from one template for any batch size.
            count = len(self.entries)
            tpl = self._wild_rows
            if tpl is None or len(tpl[0]) < m * count:
                cap = max(m, 2 * (len(tpl[0]) // count if tpl is not None else 0), 1024)
                ks = np.array([k for k, _, _ in self.entries], np.int64)
                ivls = np.array([iv for _, iv, _ in self.entries], np.int64)
                tpl = (np.repeat(np.arange(cap, dtype=np.int64), count), np.tile(ivls, cap), np.tile(ks, cap))
                for a in tpl:
                    a.flags.writeable = False
                self._wild_rows = tpl
            rows = m * count
            return tpl[0][:rows], tpl[1][:rows], tpl[2][:rows]
        everyone = self.arange(m)
        parts, ivls, ks, counts = [], [], [], []
        for k, interval, wildcard in self.entries:
            part = everyone if wildcard else want[tid, k].nonzero()[0]
            if len(part):
                parts.append(part)
                ivls.append(interval)
                ks.append(k)
                counts.append(len(part))
        if not parts:
            return None
        return (np.concatenate(parts), np.repeat(np.array(ivls, np.int64), counts),
                np.repeat(np.array(ks, np.int64), counts))
