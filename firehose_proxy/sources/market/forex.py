"""The simulated forex ``C``/``CA``/``CAS`` and ``FMV`` (near the quote midpoint, each pair once a period)."""

from __future__ import annotations

import numpy as np

from firehose_proxy.sources.market.aggregates import SecondMinuteBars
from firehose_proxy.sources.market.config import FOREX_PROFILES, FOREX_X, MarketConfig
from firehose_proxy.sources.market.engine import (
    Book,
    Choice,
    ClusterStream,
    PendingAgg,
    popularity,
    wire_number,
    wire_prices,
)
from firehose_proxy.sources.market.periodic import (
    fair_values,
    latest,
    merge_into,
    schedule,
)
from firehose_proxy.sources.market.wire import (
    FairValue,
    ForexAgg,
    ForexAggS,
    ForexQuote,
    encode,
)


class Forex(ClusterStream):
    name = "forex"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.forex_pairs)
        n = len(self.syms)
        prices, decimals = np.empty(n), np.empty(n, np.int64)
        for k, sym in enumerate(self.syms):
            prices[k], decimals[k] = FOREX_PROFILES.get(sym) or (float(np.exp(rng.uniform(-0.5, 0.5))), 5)
        rate = cfg.trades_per_second * cfg.forex_ratio
        self.book = Book(rng, prices, decimals, popularity(n) ** 0.5, np.full(n, 2e-5), rate, 0.0, 2e-5, 0.0)
        self.events_per_second = rate
        self.bars = SecondMinuteBars(n, cfg.minute_ms)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.fmv_syms = ["C:" + sym.replace("/", "") for sym in self.syms]  # the spec's FMV example: C:EURUSD
        self.x = Choice(FOREX_X)
        self.cfg = cfg
        self.digits = [int(d) + 1 for d in decimals]
        self.value_offset = rng.integers(0, cfg.value_period_ms, n)
        self.events_per_second += n * 1000 / cfg.value_period_ms

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        prev_bid, prev_ask = self.book.bid.copy(), self.book.ask.copy()
        st = self.book.step(self.rng, lo, hi)
        empty = np.empty(0, np.int64)
        q_t, q_sym, q_bid, q_ask = (st.q_t, st.q_sym, st.q_bid, st.q_ask) if st is not None else (empty,) * 4
        nq = len(q_t)
        qsc = self.book.scale[q_sym]
        quotes = [encode(ForexQuote(*a)) for a in zip(
            self.sym_obj[q_sym].tolist(), self.x.draw(self.rng, nq).tolist(), wire_prices(q_ask, qsc),
            wire_prices(q_bid, qsc), q_t.tolist())]
        # Forex bars are built from the bids; their volume is the number of quotes.
        self.bars.add(q_sym, q_t, q_bid, np.ones(nq), np.ones(nq, bool))
        t, s = schedule(lo, hi, self.cfg.value_period_ms, self.value_offset)
        values: list[bytes] = []
        if len(t):
            bid = latest(q_t, q_sym, q_bid, prev_bid, lo, t, s)
            ask = latest(q_t, q_sym, q_ask, prev_ask, lo, t, s)
            digits = [self.digits[k] for k in s.tolist()]
            values = [encode(FairValue(v, self.fmv_syms[sk], tt)) for v, sk, tt
                      in zip(fair_values(self.rng, bid, ask, self.book.scale[s], digits), s.tolist(), t.tolist())]
        merge_into(times, events, q_t, quotes, t, values)
        secs, mins = self.bars.close(hi)
        scale = self.book.scale
        for kind, cls, rows in ((0, ForexAggS, secs), (1, ForexAgg, mins)):
            for s_, start, end, cnt, _v, _pv, o, h, lo_, c, _op, _av, _apv in rows:
                sc = float(scale[s_])
                aggs.append((end, kind, s_, encode(cls(
                    self.syms[s_], wire_number(o / sc), wire_number(c / sc), wire_number(h / sc),
                    wire_number(lo_ / sc), cnt, start))))
