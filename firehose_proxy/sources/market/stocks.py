"""The simulated stocks ``T``/``Q``/``A``/``AM`` and the scheduled ``LULD``/``NOI``/``FMV``/``LV``.

Scheduled events report the market at their time: LULD bands around the NBBO midpoint (the reference price),
closing-auction imbalances whose book clearing price sits near the midpoint, FMV near the midpoint, LV the last
sale. The market has no session hours, so imbalances for the 16:00 close are published all day.
"""

from __future__ import annotations

import numpy as np

from firehose_proxy.sources.market.aggregates import SecondMinuteBars, equity_aggs
from firehose_proxy.sources.market.config import (
    CLOSING_AUCTION,
    LISTING_X,
    LULD_INDICATOR,
    LULD_PCT_HIGH,
    LULD_PCT_MID,
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
from firehose_proxy.sources.market.periodic import (
    fair_values,
    last_per_symbol,
    latest,
    merge_into,
    schedule,
)
from firehose_proxy.sources.market.wire import (
    FairValue,
    Imbalance,
    LaunchpadValue,
    PriceBand,
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
        self.bars = SecondMinuteBars(n, cfg.minute_ms)
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
        self.cfg = cfg
        self.last_px = self.book.bid.copy()  # last sale (ticks); before the first one, the opening bid
        self.luld_offset = rng.integers(0, cfg.luld_period_ms, n)
        self.luld_seq = rng.integers(1_000, 100_000, n)
        self.noi_offset = rng.integers(0, cfg.imbalance_period_ms, n)
        self.noi_seq = np.zeros(n, np.int64)
        self.imbalance = 100 * rng.integers(10, 500, n)
        self.paired = 100 * rng.integers(100, 5_000, n)
        self.value_offset = rng.integers(0, cfg.value_period_ms, n)
        self.events_per_second += n * (1000 / cfg.luld_period_ms + 1000 / cfg.imbalance_period_ms
                                       + 2000 / cfg.value_period_ms)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        prev_bid, prev_ask = self.book.bid.copy(), self.book.ask.copy()
        st = self.book.step(self.rng, lo, hi)
        px = np.empty(0, np.int64)
        out: list[bytes] = []
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
            out = [out[k] for k in st.order.tolist()]
            self.bars.add(st.t_sym, st.t_t, px, size, eligible)
        extra_t, extra = self._scheduled(lo, hi, st, prev_bid, prev_ask, px)
        merge_into(times, events, st.times if st is not None else np.empty(0, np.int64), out, extra_t, extra)
        equity_aggs(self.bars, hi, self.syms, self.book.scale, aggs)

    def _scheduled(self, lo: int, hi: int, st, prev_bid: np.ndarray, prev_ask: np.ndarray,
                   px: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        """LULD, NOI, FMV and LV due in (lo, hi], each reporting the NBBO / last sale at its time."""
        rng, cfg, scale, syms = self.rng, self.cfg, self.book.scale, self.syms
        empty = np.empty(0, np.int64)
        q_t, q_sym, q_bid, q_ask = (st.q_t, st.q_sym, st.q_bid, st.q_ask) if st is not None else (empty,) * 4
        t_t, t_sym = (st.t_t, st.t_sym) if st is not None else (empty, empty)

        def nbbo(t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return latest(q_t, q_sym, q_bid, prev_bid, lo, t, s), latest(q_t, q_sym, q_ask, prev_ask, lo, t, s)

        ts: list[np.ndarray] = []
        out: list[bytes] = []
        t, s = schedule(lo, hi, cfg.luld_period_ms, self.luld_offset)
        if len(t):
            bid, ask = nbbo(t, s)
            ref = (bid + ask) / 2.0 / scale[s]
            pct = np.where(ref > 3.0, LULD_PCT_HIGH, LULD_PCT_MID)
            width = np.where(ref >= 0.75, ref * pct, np.minimum(0.15, 0.75 * ref))
            high, low = np.round(ref + width, 2), np.maximum(0.01, np.round(ref - width, 2))
            for k, (tt, sk) in enumerate(zip(t.tolist(), s.tolist())):
                self.luld_seq[sk] += 1
                out.append(encode(PriceBand(syms[sk], float(high[k]), float(low[k]), [LULD_INDICATOR],
                                            int(self.tape[sk]), tt, int(self.luld_seq[sk]))))
            ts.append(t)
        t, s = schedule(lo, hi, cfg.imbalance_period_ms, self.noi_offset)
        if len(t):
            bid, ask = nbbo(t, s)
            clearing = np.round((bid + ask) / 2.0 * (1 + rng.normal(0, 5e-4, len(t)))) / scale[s]
            kind, at = CLOSING_AUCTION
            for k, (tt, sk) in enumerate(zip(t.tolist(), s.tolist())):
                # The imbalance shrinks or flips as offsetting interest arrives; paired shares only grow.
                self.imbalance[sk] = max(100, int(self.imbalance[sk] * rng.uniform(0.8, 1.2)) // 100 * 100)
                self.paired[sk] += 100 * int(rng.integers(0, 50))
                self.noi_seq[sk] += 1
                out.append(encode(Imbalance(syms[sk], tt, at, kind, int(self.noi_seq[sk]),
                                            LISTING_X.get(int(self.tape[sk]), 12), int(self.imbalance[sk]),
                                            int(self.paired[sk]), round(float(clearing[k]), 2))))
            ts.append(t)
        t, s = schedule(lo, hi, cfg.value_period_ms, self.value_offset)
        if len(t):
            bid, ask = nbbo(t, s)
            fmv = fair_values(rng, bid, ask, scale[s], 4)
            last = latest(t_t, t_sym, px, self.last_px, lo, t, s)
            lv = wire_prices(last, scale[s])
            tl, sl = t.tolist(), s.tolist()
            out.extend(encode(FairValue(v, syms[sk], tt)) for v, sk, tt in zip(fmv, sl, tl))
            out.extend(encode(LaunchpadValue(v, syms[sk], tt)) for v, sk, tt in zip(lv, sl, tl))
            ts.extend((t, t))
        if len(px):
            last_per_symbol(t_sym, px, self.last_px)
        return (np.concatenate(ts) if ts else empty), out
