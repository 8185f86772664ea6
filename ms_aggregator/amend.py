"""Corrected bars for late trades: the ``LATE_TRADES=amend`` policy (pure, no I/O).

With ``amend`` the book keeps every closed window (bar or volume-only) for ``AMEND_WINDOW_MS`` of market time
after its end. A late trade for a kept window is merged into it exactly as it would have been on time (it is the
newest arrival, so it becomes the close if it may set one), and at the next tick the whole corrected bar is sent
again with ``"rev": n`` (1, 2, … per window). A late trade for a window that had no trade at all opens a kept
window of its own. Late trades older than the amend window are only counted (``drop``). At most ``AMEND_MAX_BARS``
windows are kept: beyond that the oldest are given up early (counted), and late trades for a window as old as one
given up are dropped, never sent as a bar of their own. It never decides whether a trade is late:
:class:`ms_aggregator.book.BarBook` does.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ms_aggregator.bar_event import encode_bars
from ms_aggregator.conditions import (
    UPDATES_HIGH_LOW,
    UPDATES_OPEN_CLOSE,
    UPDATES_VOLUME,
)
from ms_aggregator.slots import NO_SEQ

__all__ = ["DEFAULT_AMEND_MAX_BARS", "LATE_POLICIES", "Amendments"]

LATE_POLICIES = ("drop", "amend")
DEFAULT_AMEND_MAX_BARS = 250_000  # kept windows per cluster: about 100 MB
_FIELDS = ("o", "c", "xo", "xc", "h", "l", "v", "pv", "n", "first", "xfirst", "partial", "rev", "dirty")
_RECORD_BYTES = 400  # a record, its key and its deque entry, roughly


class _Kept:
    __slots__ = _FIELDS

    def __init__(self) -> None:
        self.o = self.c = self.xo = self.xc = 0.0
        self.h, self.l = -np.inf, np.inf  # noqa: E741
        self.v = self.pv = 0.0
        self.n = 0
        self.first = self.xfirst = NO_SEQ
        self.partial = 0
        self.rev = 0
        self.dirty = False


class Amendments:
    """Closed windows kept for corrections, keyed by ``(ticker, interval, s)``."""

    def __init__(self, window_ms: int, float_volume: bool, max_bars: int = DEFAULT_AMEND_MAX_BARS) -> None:
        if int(max_bars) < 1:
            raise ValueError(f"max_bars must be >= 1, not {max_bars}")
        self.window_ms = int(window_ms)
        self.max_bars = int(max_bars)
        self.given_up = 0  # kept windows given up early for the cap
        self._given_up_end = -1  # the latest end of a window given up early
        self.float_volume = float_volume
        self.kept: dict[tuple[str, int, int], _Kept] = {}
        self._expiry: deque[tuple[int, tuple[str, int, int]]] = deque()  # (e, key), roughly in e order
        self._dirty: list[tuple[str, int, int]] = []
        self.bars_out = 0  # corrected bars sent

    def __len__(self) -> int:
        return len(self.kept)

    def keep(self, cols: dict[str, np.ndarray], slots: np.ndarray, names: list) -> None:
        """Windows closing now (slots of the book's columns): keep their state."""
        get = {name: cols[name][slots].tolist() for name in ("o", "c", "xo", "xc", "h", "l", "v", "pv", "n",
                                                               "first", "xfirst", "partial", "tid", "ivl", "s", "end")}
        for i in range(len(slots)):
            rec = _Kept()
            for name in ("o", "c", "xo", "xc", "h", "l", "v", "pv", "n", "first", "xfirst", "partial"):
                setattr(rec, name, get[name][i])
            key = (names[get["tid"][i]], get["ivl"][i], get["s"][i])
            self.kept[key] = rec
            self._expiry.append((get["end"][i], key))
        self._cap()

    def amend(self, key: tuple[str, int, int], price: float, size: float, flags: int, seq: int, partial: bool) -> bool:
        """Merge one late trade into the kept window ``key`` (opened now, ``partial`` or not, if it had none).
        False, and nothing kept, if windows that old were given up for the cap: the trade is dropped."""
        rec = self.kept.get(key)
        if rec is None:
            if key[2] + key[1] <= self._given_up_end:  # it may have been one of them: a bar of it alone would lie
                return False
            rec = self.kept[key] = _Kept()
            rec.partial = int(partial)
            self._expiry.append((key[2] + key[1], key))
            self._cap()
        rec.n += 1
        if flags & UPDATES_OPEN_CLOSE:
            if rec.first == NO_SEQ:
                rec.first, rec.o = seq, price
            rec.c = price
        elif flags & UPDATES_HIGH_LOW:
            if rec.xfirst == NO_SEQ:
                rec.xfirst, rec.xo = seq, price
            rec.xc = price
        if flags & UPDATES_HIGH_LOW:
            rec.h = max(rec.h, price)
            rec.l = min(rec.l, price)
        if flags & UPDATES_VOLUME:
            rec.v += size
            rec.pv += price * size
        if not rec.dirty:
            rec.dirty = True
            self._dirty.append(key)
        return True

    def _cap(self) -> None:
        """Give up the oldest kept windows beyond ``max_bars`` (the expiry queue is roughly oldest first)."""
        expiry, kept = self._expiry, self.kept
        while len(kept) > self.max_bars and expiry:
            end, key = expiry.popleft()
            if kept.pop(key, None) is not None:
                self.given_up += 1
                self._given_up_end = max(self._given_up_end, end)

    def flush(self) -> list[bytes]:
        """The corrected bars of windows amended since the last flush, each with its next ``rev``."""
        if not self._dirty:
            return []
        keys, self._dirty = self._dirty, []
        recs = [self.kept[k] for k in keys if k in self.kept]
        keys = [k for k in keys if k in self.kept]
        for rec in recs:
            rec.dirty = False
        priced = [i for i, rec in enumerate(recs) if rec.first != NO_SEQ or rec.xfirst != NO_SEQ]
        if not priced:
            return []
        names = [keys[i][0] for i in priced]
        cols = {name: np.array([getattr(recs[i], name) for i in priced]) for name in
                ("o", "c", "xo", "xc", "h", "l", "v", "pv", "n", "first", "xfirst", "partial")}
        cols["tid"] = np.arange(len(priced))
        cols["ivl"] = np.array([keys[i][1] for i in priced], np.int64)
        cols["s"] = np.array([keys[i][2] for i in priced], np.int64)
        cols["end"] = cols["s"] + cols["ivl"]
        for i in priced:
            recs[i].rev += 1
        out, _ = encode_bars(cols, np.arange(len(priced)), names, self.float_volume, [recs[i].rev for i in priced])
        self.bars_out += len(out)
        return out

    def expire(self, clock: int) -> None:
        """Forget windows that ended more than the amend window before ``clock`` (the cluster's market time)."""
        limit = clock - self.window_ms
        expiry, kept = self._expiry, self.kept
        while expiry and expiry[0][0] < limit:
            kept.pop(expiry.popleft()[1], None)

    def retain_only(self, wanted) -> None:
        """Drop kept windows of series no longer subscribed (``wanted(interval, ticker)`` says which stay)."""
        for key in [k for k in self.kept if not wanted(k[1], k[0])]:
            del self.kept[key]

    def holds(self) -> set[str]:
        return {key[0] for key in self.kept}

    def nbytes(self) -> int:
        return _RECORD_BYTES * len(self.kept)
