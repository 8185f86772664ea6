"""The simulated options ``T``/``Q``/``A``/``AM`` on OCC contracts, and ``FMV`` near each contract's midpoint."""

from __future__ import annotations

import math

import numpy as np

from firehose_proxy.sources.market.aggregates import SecondMinuteBars, equity_aggs
from firehose_proxy.sources.market.config import (
    OPTIONS_CONDITIONS,
    OPTIONS_X,
    STOCK_PROFILES,
    MarketConfig,
)
from firehose_proxy.sources.market.engine import (
    Book,
    Choice,
    ClusterStream,
    PendingAgg,
    popularity,
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
    OptionQuote,
    OptionTrade,
    encode,
)


def parse_occ(symbol: str) -> tuple[str, bool, float] | None:
    """(underlying, is_call, strike) of an OCC option symbol like ``O:SPY251219C00600000``."""
    body = symbol[2:] if symbol.startswith("O:") else symbol
    if len(body) < 16 or body[-9] not in "CP" or not body[-8:].isdigit():
        return None
    return body[:-15], body[-9] == "C", int(body[-8:]) / 1000.0


class Options(ClusterStream):
    name = "options"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.options_tickers)
        n = len(self.syms)
        prices = np.empty(n)
        for k, sym in enumerate(self.syms):
            occ = parse_occ(sym)
            if occ is None or occ[0] not in STOCK_PROFILES:
                prices[k] = 5.0
                continue
            root, call, strike = occ
            spot = STOCK_PROFILES[root][0]
            intrinsic = max(0.0, spot - strike if call else strike - spot)
            moneyness = math.log(spot / strike)
            prices[k] = intrinsic + 0.03 * spot * math.exp(-moneyness * moneyness / 0.02) + 0.05
        prices = np.round(prices, 2)
        rate = cfg.trades_per_second * cfg.options_ratio
        self.book = Book(rng, prices, np.full(n, 2), popularity(n), np.full(n, 5e-4),
                          rate * cfg.options_quotes_per_trade, rate, 0.01, 0.2)
        self.events_per_second = rate * (1 + cfg.options_quotes_per_trade)
        self.bars = SecondMinuteBars(n, cfg.minute_ms)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.x = Choice(OPTIONS_X)
        self.cond = Choice(OPTIONS_CONDITIONS)
        self.cond_lists = {c: [c] for c in OPTIONS_CONDITIONS}
        self.cfg = cfg
        self.value_offset = rng.integers(0, cfg.value_period_ms, n)
        self.events_per_second += n * 1000 / cfg.value_period_ms

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        prev_bid, prev_ask = self.book.bid.copy(), self.book.ask.copy()
        st = self.book.step(self.rng, lo, hi)
        out: list[bytes] = []
        if st is not None:
            rng = self.rng
            scale = self.book.scale
            nq, nt = len(st.q_t), len(st.t_t)
            qsc = scale[st.q_sym]
            out = [encode(OptionQuote(*a)) for a in zip(
                self.sym_obj[st.q_sym].tolist(), self.x.draw(rng, nq).tolist(), self.x.draw(rng, nq).tolist(),
                wire_prices(st.q_bid, qsc), wire_prices(st.q_ask, qsc), np.minimum(rng.geometric(0.05, nq), 500).tolist(),
                np.minimum(rng.geometric(0.05, nq), 500).tolist(), st.q_t.tolist(), st.q_seq.tolist())]
            side = rng.random(nt)
            inside = st.t_bid + (rng.random(nt) * (st.t_ask - st.t_bid + 1)).astype(np.int64)
            px = np.where(side < 0.35, st.t_bid, np.where(side < 0.7, st.t_ask, inside))
            size = np.where(rng.random(nt) < 0.02, rng.integers(50, 500, nt), np.minimum(rng.geometric(0.3, nt), 49))
            cl = self.cond_lists
            conds = [cl[c] for c in self.cond.draw(rng, nt).tolist()]
            out.extend(encode(OptionTrade(*a)) for a in zip(
                self.sym_obj[st.t_sym].tolist(), self.x.draw(rng, nt).tolist(), wire_prices(px, scale[st.t_sym]),
                size.tolist(), conds, st.t_t.tolist(), st.t_seq.tolist()))
            out = [out[k] for k in st.order.tolist()]
            self.bars.add(st.t_sym, st.t_t, px, size, np.ones(nt, bool))
        empty = np.empty(0, np.int64)
        q = (st.q_t, st.q_sym, st.q_bid, st.q_ask) if st is not None else (empty,) * 4
        t, s = schedule(lo, hi, self.cfg.value_period_ms, self.value_offset)
        values: list[bytes] = []
        if len(t):
            bid = latest(q[0], q[1], q[2], prev_bid, lo, t, s)
            ask = latest(q[0], q[1], q[3], prev_ask, lo, t, s)
            values = [encode(FairValue(v, self.syms[sk], tt)) for v, sk, tt
                      in zip(fair_values(self.rng, bid, ask, self.book.scale[s], 4), s.tolist(), t.tolist())]
        merge_into(times, events, st.times if st is not None else empty, out, t, values)
        equity_aggs(self.bars, hi, self.syms, self.book.scale, aggs)
