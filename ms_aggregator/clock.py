"""The aggregator's market clocks: the local clock mapped onto each source's trade clock (pure; time is an argument).

A *source* is the exchange or venue a trade came from (its ``x``). Each source stamps trades with its own clock
and reaches us with its own delay, so each gets its own :class:`ClockSkew`. :class:`SourceClocks` holds them for
one cluster: it turns ``x`` values into small source indices, feeds each source's clock from the batches it
sends, and on every tick moves each source's *horizon* (the latest market time it has reached) forward.
It never decides which bar closes: :class:`ms_aggregator.book.BarBook` does, from these horizons.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["MAX_SOURCES", "NEVER", "ClockSkew", "SourceClocks"]

#: Sources a cluster can tell apart; a source mask is one int64 bit per source, so the 63rd and later share the last.
MAX_SOURCES = 63
#: "No horizon yet" (a source not yet ticked, a cluster without trades).
NEVER = -(2**62)
_LUT_SIZE = 1024  # x values below this are mapped through an array; others through a dict


class ClockSkew:
    """Estimates ``offset = local clock - trade clock`` so that ``market_now(local) = local - offset`` tracks the
    timestamps of the trades arriving now.

    Each observation is ``d = local_now - trade_t``: the clock offset plus that trade's transport latency. The
    estimate is the lower median of per-bucket minima (``bucket_ms`` buckets over the last ``buckets`` of them,
    the current one included). A bucket's minimum is its least-delayed trade, so delayed trades do not inflate it;
    the median over buckets ignores a bucket with a bogus early timestamp. The estimate therefore includes the
    minimal transport latency, and grace only has to absorb jitter above it. A step of the local clock is followed
    within about half the window; until then a forward step can close windows early. No observations: offset 0.
    """

    def __init__(self, bucket_ms: int = 1000, buckets: int = 10) -> None:
        if bucket_ms <= 0 or buckets <= 0:
            raise ValueError("bucket_ms and buckets must be positive")
        self.bucket_ms = int(bucket_ms)
        self.buckets = int(buckets)
        self._done: deque[tuple[int, int]] = deque()  # (bucket number, min d) of completed buckets
        self._bucket: int | None = None
        self._min = 0
        self._offset = 0

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def known(self) -> bool:
        return self._bucket is not None

    def observe(self, local_now_ms: int, trade_t_ms: int | None) -> None:
        """Record that a trade stamped ``trade_t_ms`` arrived at ``local_now_ms``. For a batch, pass its newest
        timestamp: the least-delayed trade of the batch. None is ignored."""
        if trade_t_ms is None:
            return
        local = int(local_now_ms)
        d = local - int(trade_t_ms)
        bucket = local // self.bucket_ms
        if bucket == self._bucket:
            if d >= self._min:
                return
            self._min = d
        else:
            if self._bucket is not None:
                self._done.append((self._bucket, self._min))
            self._bucket, self._min = bucket, d
            while self._done and self._done[0][0] <= bucket - self.buckets:
                self._done.popleft()
        mins = sorted([m for _, m in self._done] + [self._min])
        self._offset = mins[(len(mins) - 1) // 2]

    def market_now(self, local_now_ms: int) -> int:
        """The local time mapped onto the trades' clock."""
        return int(local_now_ms) - self._offset


class SourceClocks:
    """The clock of every source of one cluster, and each one's horizon.

    :meth:`sources` maps a batch's ``x`` column to source indices (assigned in order of first sight; the
    :data:`MAX_SOURCES`-th and later share the last index). :meth:`observe` feeds each source's
    :class:`ClockSkew` with its newest trade of the batch. :meth:`tick` sets ``horizon[i] = max(horizon[i],
    local - offset_i)`` for every source seen so far and ``market_ms`` to the newest of them (the cluster's
    clock, :data:`NEVER` before the first tick after the first trade). Horizons only move at ticks.
    """

    def __init__(self, bucket_ms: int = 1000, buckets: int = 10) -> None:
        self._bucket_ms, self._buckets = bucket_ms, buckets
        self.keys: list[int] = []  # source index -> x
        self.skews: list[ClockSkew] = []
        self._index: dict[int, int] = {}
        self._lut = np.full(_LUT_SIZE, -1, np.int64)
        self._offsets = np.zeros(MAX_SOURCES, np.int64)
        self._scratch = np.full(MAX_SOURCES, -1, np.int64)
        self.horizon = np.full(MAX_SOURCES, NEVER, np.int64)
        self.market_ms = NEVER
        self._order = np.empty(0, np.int64)  # source indices by horizon, slowest first (refreshed per tick)

    def __len__(self) -> int:
        return len(self.keys)

    def sources(self, x: np.ndarray) -> np.ndarray:
        """Source index per trade for a batch's ``x`` column."""
        if len(x) and 0 <= int(x.min()) and int(x.max()) < _LUT_SIZE:
            src = self._lut[x]
            if int(src.min()) >= 0:
                return src
        for key in dict.fromkeys(x.tolist()):  # new sources, in order of first sight
            if key not in self._index:
                self._add(key)
        if len(x) and 0 <= int(x.min()) and int(x.max()) < _LUT_SIZE:
            return self._lut[x]
        get = self._index.__getitem__
        return np.fromiter(map(get, x.tolist()), np.int64, len(x))

    def _add(self, key: int) -> None:
        index = min(len(self.keys), MAX_SOURCES - 1)
        if index == len(self.keys):
            self.keys.append(key)
            self.skews.append(ClockSkew(self._bucket_ms, self._buckets))
        self._index[key] = index
        if 0 <= key < _LUT_SIZE:
            self._lut[key] = index

    def observe(self, local_ms: int, src: np.ndarray, t: np.ndarray) -> None:
        """Each source's newest trade of a batch: one clock observation per source."""
        if len(t) == 0:
            return
        newest = self._scratch
        newest[: len(self.keys)] = -1
        np.maximum.at(newest, src, t)
        for i in np.flatnonzero(newest[: len(self.keys)] >= 0).tolist():
            skew = self.skews[i]
            skew.observe(local_ms, int(newest[i]))
            self._offsets[i] = skew.offset

    def tick(self, local_ms: int) -> None:
        """Move every source's horizon to ``local - offset`` (never back) and the cluster clock with them."""
        n = len(self.keys)
        if n == 0:
            return
        h = self.horizon[:n]
        np.maximum(h, int(local_ms) - self._offsets[:n], out=h)
        self.market_ms = int(h.max())
        self._order = np.argsort(h, kind="stable")

    def market_at(self, local_ms: int) -> int:
        """The cluster's market time at ``local_ms`` by the current estimates, without moving any horizon
        (:data:`NEVER` before the first trade)."""
        n = len(self.keys)
        return int((int(local_ms) - self._offsets[:n]).max()) if n else NEVER

    def slowest(self) -> int:
        """The oldest horizon among sources that have one (:data:`NEVER` before the first tick)."""
        h = self.horizon[: len(self.keys)]
        h = h[h != NEVER]
        return int(h.min()) if len(h) else NEVER

    def min_horizon(self, masks: np.ndarray, empty: int) -> np.ndarray:
        """Per source mask (bit i = source i): the oldest horizon among its sources that have one; ``empty``
        where the mask holds no such source."""
        out = np.full(len(masks), empty, np.int64)
        rest = np.arange(len(masks))
        horizon = self.horizon
        for i in self._order.tolist():  # slowest first: the first source a mask holds is its minimum
            if len(rest) == 0:
                break
            h = int(horizon[i])
            if h == NEVER:
                continue
            hit = (masks[rest] & (1 << i)) != 0
            if hit.any():
                out[rest[hit]] = h
                rest = rest[~hit]
        return out

    def status(self) -> dict:
        return {
            str(key): {"offset_ms": skew.offset, "market_ms": int(self.horizon[i]) if self.horizon[i] != NEVER else None}
            for i, (key, skew) in enumerate(zip(self.keys, self.skews))
        }
