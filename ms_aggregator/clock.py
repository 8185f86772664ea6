"""The aggregator's market clock: the local clock mapped onto the trades' clock (pure; time is an argument)."""

from __future__ import annotations

from collections import deque

__all__ = ["ClockSkew"]


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

    def observe(self, local_now_ms: int, trade_t_ms: int | None) -> None:
        """Record that a trade stamped ``trade_t_ms`` arrived at ``local_now_ms``. For a batch, pass its newest
        timestamp (:attr:`TradeBatch.max_t`): the least-delayed trade of the batch. None is ignored."""
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
        """The local time mapped onto the trades' clock: what to pass to :meth:`BarBook.close_due`."""
        return int(local_now_ms) - self._offset
