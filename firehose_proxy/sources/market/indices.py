"""The simulated indices ``V``/``A``/``AM``."""

from __future__ import annotations

import math

import numpy as np

from firehose_proxy.sources.market.aggregates import SecondMinuteBars
from firehose_proxy.sources.market.config import INDEX_PROFILES, MarketConfig
from firehose_proxy.sources.market.engine import (
    ClusterStream,
    PendingAgg,
    wire_number,
    wire_prices,
)
from firehose_proxy.sources.market.wire import IndexAgg, IndexAggM, IndexValue, encode


class Indices(ClusterStream):
    name = "indices"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.indices)
        n = len(self.syms)
        start = np.empty(n)
        self.sigma = np.empty(n)
        for k, sym in enumerate(self.syms):
            start[k], self.sigma[k] = INDEX_PROFILES.get(sym) or (float(rng.uniform(100, 10_000)), 1.5e-4)
        self.logv = np.log(start * 100.0)  # in hundredths: indices publish two decimals
        self.offset = rng.integers(0, 1000, n)  # each index publishes at its own ms within the second
        self.bars = SecondMinuteBars(n, cfg.minute_ms)
        self.events_per_second = float(n)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        ts: list[np.ndarray] = []
        syms: list[np.ndarray] = []
        for k, off in enumerate(self.offset.tolist()):
            first = lo + 1 + (off - lo - 1) % 1000  # first ms in (lo, hi] that is off mod 1000
            ts.append(np.arange(first, hi + 1, 1000, dtype=np.int64))
            syms.append(np.full(len(ts[-1]), k, np.int64))
        t, sym = np.concatenate(ts), np.concatenate(syms)
        if len(t):
            o = np.argsort(t * len(self.syms) + sym, kind="stable")
            t, sym = t[o], sym[o]
            incr = self.rng.standard_normal(len(t)) * self.sigma[sym]
            vals = np.empty(len(t), np.int64)
            # Few values per call (one per index per second): a loop is cheaper than grouping.
            logv = self.logv
            for j, (s, d) in enumerate(zip(sym.tolist(), incr.tolist())):
                logv[s] += d
                vals[j] = int(round(math.exp(logv[s])))
            times.extend(t.tolist())
            events.extend(encode(IndexValue(v, self.syms[s], tt))
                          for v, s, tt in zip(wire_prices(vals, 100.0), sym.tolist(), t.tolist()))
            self.bars.add(sym, t, vals, np.ones(len(t)), np.ones(len(t), bool))
        secs, mins = self.bars.close(hi)
        for kind, cls, rows in ((0, IndexAgg, secs), (1, IndexAggM, mins)):
            for s, start, end, _cnt, _v, _pv, o, h, lo_, c, op, _av, _apv in rows:
                aggs.append((end, kind, s, encode(cls(
                    self.syms[s], wire_number(op / 100.0), wire_number(o / 100.0), wire_number(c / 100.0), wire_number(h / 100.0),
                    wire_number(lo_ / 100.0), start, end))))
