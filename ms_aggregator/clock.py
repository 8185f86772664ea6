"""The aggregator's market clocks: the local clock mapped onto each source's trade clock (pure; time is an argument).

A *source* is the exchange or venue a trade came from (its ``x``). Each source stamps trades with its own clock
and reaches us with its own delay, so each gets its own :class:`ClockSkew`. :class:`SourceClocks` holds them for
one cluster: it feeds each source's clock from the batches it sends, and on every tick moves each source's
*horizon* (the latest market time it has reached) forward.
It never decides which bar closes: :class:`ms_aggregator.book.BarBook` does, from these horizons.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ms_aggregator.decode import MAX_SOURCES, SourceTable

__all__ = ["NEVER", "ClockSkew", "SourceClocks"]

#: "No horizon yet" (a source not yet ticked, a cluster without trades).
NEVER = -(2**62)


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

    @property
    def bucket_min(self) -> int:
        """The least delay seen in the current bucket."""
        return self._min

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

    Source indices come from a :class:`~ms_aggregator.decode.SourceTable` (shared with the decoder).
    :meth:`observe` feeds each source's :class:`ClockSkew` with its newest trade of a batch. :meth:`tick` sets
    ``horizon[i] = max(horizon[i], local - offset_i)`` for every source seen so far and ``market_ms`` to the newest
    of them (the cluster's clock, :data:`NEVER` before the first tick after the first trade). Horizons only move at
    ticks. There are a few sources per cluster (at most :data:`MAX_SOURCES`), so per-source values are lists.
    """

    def __init__(self, sources: SourceTable, bucket_ms: int = 1000, buckets: int = 10) -> None:
        self.sources = sources
        self._bucket_ms, self._buckets = bucket_ms, buckets
        self.skews: list[ClockSkew] = []
        self.offsets: list[int] = []
        # Each source's current bucket and its minimum, mirrored from its ClockSkew: a batch whose sources
        # neither start a bucket nor lower a minimum changes no estimate and needs no call per source.
        self._bucket: list[int] = []
        self._min: list[int] = []
        self._newest = np.full(MAX_SOURCES, -1, np.int64)
        self.horizon: list[int] = []
        self.market_ms = NEVER
        self.changed = False  # an offset changed since the owner last cleared this
        self._order: list[int] | None = None  # source indices by horizon, slowest first (after a tick: on demand)

    @property
    def keys(self) -> list[int]:
        return self.sources.keys

    def __len__(self) -> int:
        return len(self.skews)

    def observe(self, local_ms: int, src: np.ndarray, t: np.ndarray) -> None:
        """Each source's newest trade of a batch: one clock observation per source."""
        if len(t) == 0:
            return
        while len(self.skews) < len(self.sources):  # sources the decoder met in this batch
            self.changed = True
            self.skews.append(ClockSkew(self._bucket_ms, self._buckets))
            self.offsets.append(0)
            self._bucket.append(-1)
            self._min.append(0)
            self.horizon.append(NEVER)
        n = len(self.skews)
        newest = self._newest
        newest[:n] = -1
        np.maximum.at(newest, src, t)
        local = int(local_ms)
        bucket = local // self._bucket_ms
        buckets, mins = self._bucket, self._min
        for i, t_max in enumerate(newest[:n].tolist()):
            if t_max < 0 or (buckets[i] == bucket and local - t_max >= mins[i]):
                continue  # not in this batch, or changes nothing
            skew = self.skews[i]
            skew.observe(local, t_max)
            if skew.offset != self.offsets[i]:
                self.offsets[i] = skew.offset
                self.changed = True
            buckets[i], mins[i] = bucket, skew.bucket_min

    def tick(self, local_ms: int) -> None:
        """Move every source's horizon to ``local - offset`` (never back) and the cluster clock with them."""
        if not self.skews:
            return
        local = int(local_ms)
        self.horizon = [h if h >= local - o else local - o for h, o in zip(self.horizon, self.offsets)]
        self.market_ms = max(self.horizon)
        self._order = None

    def market_at(self, local_ms: int) -> int:
        """The cluster's market time at ``local_ms`` by the current estimates, without moving any horizon
        (:data:`NEVER` before the first trade)."""
        return int(local_ms) - min(self.offsets) if self.offsets else NEVER

    def slowest(self) -> int:
        """The oldest horizon among sources that have one (:data:`NEVER` before the first tick)."""
        return min((h for h in self.horizon if h != NEVER), default=NEVER)

    def min_horizon(self, masks: np.ndarray, empty: int) -> np.ndarray:
        """Per source mask (bit i = source i): the oldest horizon among its sources that have one; ``empty``
        where the mask holds no such source."""
        out = np.full(len(masks), empty, np.int64)
        rest = np.arange(len(masks))
        horizon = self.horizon
        if self._order is None:
            self._order = sorted(range(len(horizon)), key=horizon.__getitem__)
        for i in self._order:  # slowest first: the first source a mask holds is its minimum
            if len(rest) == 0:
                break
            h = horizon[i]
            if h == NEVER:
                continue
            hit = (masks[rest] & (1 << i)) != 0
            if hit.any():
                out[rest[hit]] = h
                rest = rest[~hit]
        return out

    def status(self) -> dict:
        return {str(key): {"offset_ms": skew.offset, "market_ms": h if h != NEVER else None}
                for key, skew, h in zip(self.keys, self.skews, self.horizon)}
