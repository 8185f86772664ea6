"""The simulated forex ``C``/``CA``."""

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
from firehose_proxy.sources.market.wire import ForexAgg, ForexQuote, encode


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
        self.bars = SecondMinuteBars(n)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.x = Choice(FOREX_X)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        st = self.book.step(self.rng, lo, hi)
        if st is not None:
            nq = len(st.q_t)
            qsc = self.book.scale[st.q_sym]
            times.extend(st.q_t.tolist())
            events.extend(encode(ForexQuote(*a)) for a in zip(
                self.sym_obj[st.q_sym].tolist(), self.x.draw(self.rng, nq).tolist(), wire_prices(st.q_ask, qsc),
                wire_prices(st.q_bid, qsc), st.q_t.tolist()))
            # Forex bars are built from the bids; their volume is the number of quotes.
            self.bars.add(st.q_sym, st.q_t, st.q_bid, np.ones(nq), np.ones(nq, bool))
        _secs, mins = self.bars.close(hi)
        scale = self.book.scale
        for s, start, _end, cnt, _v, _pv, o, h, lo_, c, _op, _av, _apv in mins:
            sc = float(scale[s])
            aggs.append((_end, 1, s, encode(ForexAgg(
                self.syms[s], wire_number(o / sc), wire_number(c / sc), wire_number(h / sc), wire_number(lo_ / sc), cnt, start))))
