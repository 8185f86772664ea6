"""The simulated stocks ``T``/``Q``/``A``/``AM``."""

from __future__ import annotations

import numpy as np

from firehose_proxy.sources.market.aggregates import SecondMinuteBars, equity_aggs
from firehose_proxy.sources.market.config import (
    NO_OHLC_CONDITIONS,
    ODD_LOT,
    STOCK_CONDITIONS,
    STOCK_PROFILES,
    STOCK_QUOTE_X,
    STOCK_TRADE_X,
    MarketConfig,
)
from firehose_proxy.sources.market.engine import (
    Book,
    Choice,
    ClusterStream,
    PendingAgg,
    cumulative,
    popularity,
    wire_prices,
)
from firehose_proxy.sources.market.wire import (
    StockQuote,
    StockTrade,
    StockTradeC,
    encode,
)


class Stocks(ClusterStream):
    name = "stocks"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.stock_tickers)
        n = len(self.syms)
        prices = np.empty(n)
        self.tape = np.empty(n, np.int64)
        for k, sym in enumerate(self.syms):
            price, tape = STOCK_PROFILES.get(sym) or (float(np.exp(rng.uniform(np.log(10), np.log(500)))), 3)
            prices[k], self.tape[k] = price, tape
        prices = np.round(prices, 2)
        rate = cfg.trades_per_second
        self.book = Book(rng, prices, np.full(n, 2), popularity(n), np.full(n, 1.5e-4),
                          rate * cfg.quotes_per_trade, rate, 5e-5, 0.05)
        self.events_per_second = rate * (1 + cfg.quotes_per_trade)
        self.bars = SecondMinuteBars(n)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.odd_fraction = cfg.odd_lot_fraction
        self.trade_x = Choice(STOCK_TRADE_X)
        self.quote_x = Choice(STOCK_QUOTE_X)
        self.cond_cum = np.cumsum([p for _, p in STOCK_CONDITIONS])
        # Condition list per (category, odd lot); category len(STOCK_CONDITIONS) means "regular".
        codes = [c for c, _ in STOCK_CONDITIONS] + [None]
        self.cond_lists: list[list[int] | None] = []
        for code in codes:
            for odd in (False, True):
                lst = sorted(([code] if code is not None else []) + ([ODD_LOT] if odd else []))
                self.cond_lists.append(lst or None)
        self.no_ohlc = np.array([(c in NO_OHLC_CONDITIONS) for c in codes])
        self.lots = np.array([1, 2, 3, 4, 5, 6, 8, 10], np.int64)
        self.lots_cum = cumulative(np.array([55, 18, 8, 5, 6, 2, 2, 4], np.float64))
        self.trade_id = int(rng.integers(10**12, 5 * 10**13))

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        st = self.book.step(self.rng, lo, hi)
        if st is not None:
            rng = self.rng
            scale = self.book.scale
            nq, nt = len(st.q_t), len(st.t_t)
            sym_q = self.sym_obj[st.q_sym].tolist()
            bx, ax = self.quote_x.draw(rng, nq).tolist(), self.quote_x.draw(rng, nq).tolist()
            bs = np.minimum(rng.geometric(0.3, nq), 100).tolist()
            as_ = np.minimum(rng.geometric(0.3, nq), 100).tolist()
            qsc = scale[st.q_sym]
            bp, ap = wire_prices(st.q_bid, qsc), wire_prices(st.q_ask, qsc)
            ind = np.where(rng.random(nq) < 0.02, 1, 0).tolist()
            inds: tuple[list[int], list[int]] = ([], [604])
            qz = self.tape[st.q_sym].tolist()
            quote = StockQuote
            out = [encode(quote(sy, b1, b2, b3, a1, a2, a3, 0, inds[k], t, q, z))
                   for sy, b1, b2, b3, a1, a2, a3, k, t, q, z
                   in zip(sym_q, bx, bp, bs, ax, ap, as_, ind, st.q_t.tolist(), st.q_seq.tolist(), qz)]

            # Trades: mostly at the touch, some inside the spread (midpoint crosses, price improvement).
            side = rng.random(nt)
            inside = st.t_bid + (rng.random(nt) * (st.t_ask - st.t_bid + 1)).astype(np.int64)
            px = np.where(side < 0.42, st.t_bid, np.where(side < 0.84, st.t_ask, inside))
            odd = rng.random(nt) < self.odd_fraction
            odd_size = 1 + (99 * rng.random(nt) ** 2).astype(np.int64)  # small odd lots are the common ones
            lots = self.lots[np.searchsorted(self.lots_cum, rng.random(nt), side="right")]
            block = rng.random(nt) < 0.005
            lots = np.where(block, rng.integers(20, 100, nt), lots)
            size = np.where(odd, odd_size, 100 * lots)
            cat = np.searchsorted(self.cond_cum, rng.random(nt), side="right")
            eligible = ~odd & ~self.no_ohlc[cat]
            code = (cat * 2 + odd).tolist()
            x = self.trade_x.draw(rng, nt).tolist()
            ids = map(str, range(self.trade_id, self.trade_id + nt))
            self.trade_id += nt
            cond_lists = self.cond_lists
            tz = self.tape[st.t_sym].tolist()
            tp = wire_prices(px, scale[st.t_sym])
            for sym, xx, i, z, p, s, cd, t, q in zip(self.sym_obj[st.t_sym].tolist(), x, ids, tz, tp,
                                                     size.tolist(), code, st.t_t.tolist(), st.t_seq.tolist()):
                cl = cond_lists[cd]
                out.append(encode(StockTrade(sym, xx, i, z, p, s, t, q) if cl is None
                                   else StockTradeC(sym, xx, i, z, p, s, cl, t, q)))
            events.extend([out[k] for k in st.order.tolist()])
            times.extend(st.times.tolist())
            self.bars.add(st.t_sym, st.t_t, px, size, eligible)
        equity_aggs(self.bars, hi, self.syms, self.book.scale, aggs)
