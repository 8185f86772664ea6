"""The simulated market's engine: Poisson arrivals, a random-walk NBBO per symbol, trades against it, and the
per-cluster stream that generates blocks ahead of the clock and releases what is due. Pure; time is an argument."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np

from firehose_proxy.sources.market.config import BLOCK_MS_RANGE, EVENTS_PER_BLOCK


def popularity(n: int) -> np.ndarray:
    """Zipf-like weights summing to 1: the k-th name gets ~1/k**0.9 of the flow."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** 0.9
    return w / w.sum()


def wire_prices(ticks: np.ndarray, scale: np.ndarray | float) -> list[float]:
    """``ticks / scale`` as Python floats, whole values as ints: Polygon's (Go) encoder writes 175, not 175.0."""
    vals = (ticks / scale).tolist()
    for k in np.flatnonzero(ticks % scale == 0).tolist():
        vals[k] = int(vals[k])
    return vals


def wire_number(x: float) -> float:
    """A scalar the way :func:`prices` writes it."""
    return int(x) if x.is_integer() else x


def cumulative(weights: np.ndarray) -> np.ndarray:
    c = np.cumsum(weights / weights.sum()) if len(weights) else np.empty(0)
    if len(c):
        c[-1] = 1.0  # no draw can fall past the last bucket through rounding
    return c


class Choice:
    """Weighted draws of ids from a fixed table, vectorised."""

    def __init__(self, table: dict[int, float]) -> None:
        self.values = np.array(list(table), dtype=np.int64)
        self.cum = cumulative(np.array(list(table.values()), dtype=np.float64))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.values[np.searchsorted(self.cum, rng.random(n), side="right")]


def arrivals(rng: np.random.Generator, rate: float, lo: int, hi: int,
              cum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals in (lo, hi] at ``rate``/s: sorted integer ms timestamps and the symbol index of each."""
    n = int(rng.poisson(rate * (hi - lo) / 1000.0)) if rate > 0 else 0
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    t = lo + 1 + (rng.random(n) * (hi - lo)).astype(np.int64)
    t.sort()
    sym = np.searchsorted(cum, rng.random(n), side="right").astype(np.int64)
    return t, sym


@dataclass
class Step:
    """One chunk of a book's events. Quote and trade arrays are in time order; ``order`` interleaves them:
    ``order[k] < nq`` is quote ``order[k]``, otherwise trade ``order[k] - nq``."""

    q_t: np.ndarray
    q_sym: np.ndarray
    q_bid: np.ndarray
    q_ask: np.ndarray
    q_seq: np.ndarray
    t_t: np.ndarray
    t_sym: np.ndarray
    t_bid: np.ndarray
    t_ask: np.ndarray
    t_seq: np.ndarray
    order: np.ndarray
    times: np.ndarray  # t of every event in interleaved order


class Book:
    """NBBO and trade arrivals for one cluster's symbols. Prices are integer ticks of ``10**-decimals``.

    The log-mid of each symbol takes one Gaussian step per quote, sized so its variance grows by
    ``sigma**2`` per second whatever the symbol's quote rate. A trade sees the last quote of its symbol before
    it in the interleaved order (quotes sort before trades within a millisecond).
    """

    def __init__(self, rng: np.random.Generator, prices: np.ndarray, decimals: np.ndarray, weights: np.ndarray,
                 sigma: np.ndarray, quote_rate: float, trade_rate: float, spread_rel: float,
                 seq_gap_p: float) -> None:
        self.n = len(prices)
        self.scale = 10.0 ** decimals.astype(np.float64)
        self.logmid = np.log(prices * self.scale)
        w = weights / weights.sum()
        self.cum = cumulative(w)
        self.quote_rate = quote_rate
        self.trade_rate = trade_rate
        lam = np.maximum(quote_rate * w, 1e-12)
        self.step_sigma = np.where(quote_rate * w > 0, sigma / np.sqrt(lam), 0.0)
        self.base_spread = np.maximum(1, np.rint(prices * spread_rel * self.scale)).astype(np.int64)
        self.bid, self.ask = self._nbbo(np.exp(self.logmid), self.base_spread)
        self.seq = rng.integers(1_000, 5_000_000, self.n).astype(np.int64)
        self.seq_gap_p = seq_gap_p
        self.primed = False

    @staticmethod
    def _nbbo(mid: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bid = np.maximum(np.floor(mid - spread / 2.0).astype(np.int64), 1)
        return bid, bid + spread

    def step(self, rng: np.random.Generator, lo: int, hi: int) -> Step | None:
        """Quotes and trades in (lo, hi]; None if there are none. The first call opens with one quote per symbol
        so every trade has a published NBBO before it."""
        q_t, q_sym = arrivals(rng, self.quote_rate, lo, hi, self.cum)
        t_t, t_sym = arrivals(rng, self.trade_rate, lo, hi, self.cum)
        if not self.primed:
            self.primed = True
            q_t = np.concatenate((np.full(self.n, lo + 1, np.int64), q_t))
            q_sym = np.concatenate((np.arange(self.n, dtype=np.int64), q_sym))
        nq, nt = len(q_t), len(t_t)
        n = nq + nt
        if n == 0:
            return None
        all_t = np.concatenate((q_t, t_t))
        all_sym = np.concatenate((q_sym, t_sym))
        is_q_all = np.arange(n) < nq
        order = np.argsort(all_t * 2 + ~is_q_all, kind="stable")

        # Regroup by symbol (keeping time order inside each group) for the per-symbol running state.
        src = order[np.argsort(all_sym[order], kind="stable")]
        g_sym = all_sym[src]
        first = np.empty(n, bool)
        first[0] = True
        np.not_equal(g_sym[1:], g_sym[:-1], out=first[1:])
        gstart = np.flatnonzero(first)
        gid = np.cumsum(first) - 1
        glast = np.append(gstart[1:] - 1, n - 1)
        is_q = src < nq

        # Mid path: steps only at quotes.
        incr = np.zeros(n)
        incr[is_q] = rng.standard_normal(nq) * self.step_sigma[g_sym[is_q]]
        csum = np.cumsum(incr)
        logmid = self.logmid[g_sym] + csum - (csum[gstart] - incr[gstart])[gid]
        self.logmid[g_sym[glast]] = logmid[glast]

        spread = self.base_spread[g_sym] + np.minimum(rng.geometric(0.6, n) - 1, 4 * self.base_spread[g_sym])
        bid, ask = self._nbbo(np.exp(logmid), spread)

        # The NBBO a trade sees: its symbol's latest quote before it, else the NBBO carried from earlier chunks.
        pos = np.arange(n)
        last_q = np.maximum.accumulate(np.where(is_q, pos, -1))
        fresh = last_q >= gstart[gid]
        lq = np.maximum(last_q, 0)
        seen_bid = np.where(fresh, bid[lq], self.bid[g_sym])
        seen_ask = np.where(fresh, ask[lq], self.ask[g_sym])
        self.bid[g_sym[glast]] = seen_bid[glast]
        self.ask[g_sym[glast]] = seen_ask[glast]

        # Sequence numbers: increasing per symbol across trades and quotes, with occasional gaps as on the SIP.
        gaps = 1 + (rng.random(n) < self.seq_gap_p) * rng.integers(1, 4, n)
        gsum = np.cumsum(gaps)
        seq = self.seq[g_sym] + gsum - (gsum[gstart] - gaps[gstart])[gid]
        self.seq[g_sym[glast]] = seq[glast]

        # Back to per-kind arrays in time order.
        qsel, tsel = src[is_q], src[~is_q] - nq
        q_bid = np.empty(nq, np.int64)
        q_ask = np.empty(nq, np.int64)
        q_seq = np.empty(nq, np.int64)
        q_bid[qsel], q_ask[qsel], q_seq[qsel] = bid[is_q], ask[is_q], seq[is_q]
        t_bid = np.empty(nt, np.int64)
        t_ask = np.empty(nt, np.int64)
        t_seq = np.empty(nt, np.int64)
        t_bid[tsel], t_ask[tsel], t_seq[tsel] = seen_bid[~is_q], seen_ask[~is_q], seq[~is_q]
        return Step(q_t, q_sym, q_bid, q_ask, q_seq, t_t, t_sym, t_bid, t_ask, t_seq, order, all_t[order])


# An emitted aggregate waiting for the end of advance(): (end ms, 0 for per-second / 1 per-minute, sym, bytes).
PendingAgg = tuple[int, int, int, bytes]


class ClusterStream:
    """One cluster's stream. Subclasses implement :meth:`chunk`; this class generates whole blocks ahead of the
    clock and releases events once the clock reaches their ``t``, aggregates once it reaches their end."""

    name: str
    syms: list[str]
    events_per_second: float

    def _start(self, start_ms: int) -> None:
        rate = max(self.events_per_second, 1e-9)
        lo, hi = BLOCK_MS_RANGE
        self.block_ms = int(min(hi, max(lo, 1000.0 * EVENTS_PER_BLOCK / rate)))
        self.generated_to = start_ms
        self.times: list[int] = []
        self.events: list[bytes] = []
        self.released = 0  # events[:released] are out
        self.aggs: deque[PendingAgg] = deque()

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        """Append the events with t in (lo, hi] in time order (and their t to ``times``), then the aggregates
        that close by ``hi`` in (end, kind, symbol) order."""
        raise NotImplementedError

    def take(self, now: int) -> list[bytes]:
        """Events with t <= now not yet taken, in time order, then aggregates with end <= now."""
        while self.generated_to < now:
            if self.released:
                del self.times[:self.released], self.events[:self.released]
                self.released = 0
            aggs: list[PendingAgg] = []
            hi = self.generated_to + self.block_ms
            self.chunk(self.generated_to, hi, self.times, self.events, aggs)
            aggs.sort(key=lambda r: r[:3])
            self.aggs.extend(aggs)
            self.generated_to = hi
        k = bisect.bisect_right(self.times, now, self.released)
        out = self.events[self.released:k]
        self.released = k
        pending = self.aggs
        while pending and pending[0][0] <= now:
            out.append(pending.popleft()[3])
        return out
