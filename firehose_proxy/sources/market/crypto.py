"""The simulated crypto ``XT``/``XQ``/``XA``/``XAS``, ``XL2`` book snapshots and ``FMV``.

``XL2`` snapshots show one exchange's book (Coinbase, x=1) around the pair's NBBO at the snapshot's time, a few
levels a side, evolving between snapshots; ``FMV`` sits near the NBBO midpoint.
"""

from __future__ import annotations

import numpy as np

from firehose_proxy.sources.market.aggregates import SecondMinuteBars
from firehose_proxy.sources.market.config import CRYPTO_PROFILES, CRYPTO_X, MarketConfig
from firehose_proxy.sources.market.engine import (
    Book,
    Choice,
    ClusterStream,
    PendingAgg,
    popularity,
    wire_number,
    wire_prices,
)
from firehose_proxy.sources.market.l2book import L2Books
from firehose_proxy.sources.market.periodic import (
    fair_values,
    latest,
    merge_into,
    schedule,
)
from firehose_proxy.sources.market.wire import (
    CryptoAgg,
    CryptoAggS,
    CryptoBook,
    CryptoQuote,
    CryptoTrade,
    FairValue,
    encode,
)

BOOK_EXCHANGE = 1  # Coinbase


class Crypto(ClusterStream):
    name = "crypto"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.crypto_pairs)
        n = len(self.syms)
        prices, decimals = np.empty(n), np.empty(n, np.int64)
        for k, sym in enumerate(self.syms):
            prices[k], decimals[k] = CRYPTO_PROFILES.get(sym) or (float(np.exp(rng.uniform(0, np.log(500)))), 4)
        prices = np.round(prices * 10.0**decimals) / 10.0**decimals
        rate = cfg.trades_per_second * cfg.crypto_ratio
        self.book = Book(rng, prices, decimals, popularity(n), np.full(n, 1.2e-4),
                          rate * cfg.quotes_per_trade, rate, 1e-5, 0.0)
        self.events_per_second = rate * (1 + cfg.quotes_per_trade)
        self.vw_digits = [max(4, int(d) + 2) for d in decimals]
        self.bars = SecondMinuteBars(n, cfg.minute_ms)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.fmv_syms = [f"X:{sym}" for sym in self.syms]  # FMV carries the reference-data ticker (the spec's example)
        self.x = Choice(CRYPTO_X)
        self.trade_id = int(rng.integers(10**6, 10**9))
        self.cfg = cfg
        self.l2 = L2Books(rng, prices, cfg.book_depth, self.book.base_spread)
        self.book_offset = rng.integers(0, cfg.book_period_ms, n)
        self.value_offset = rng.integers(0, cfg.value_period_ms, n)
        self.events_per_second += n * (1000 / cfg.book_period_ms + 1000 / cfg.value_period_ms)

    def _lag(self, t: np.ndarray) -> np.ndarray:
        # Polygon's receive time: a few ms (at most 250) after the exchange's time.
        return t + np.minimum(self.rng.geometric(0.08, len(t)), 250)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        prev_bid, prev_ask = self.book.bid.copy(), self.book.ask.copy()
        st = self.book.step(self.rng, lo, hi)
        out: list[bytes] = []
        if st is not None:
            rng = self.rng
            scale = self.book.scale
            nq, nt = len(st.q_t), len(st.t_t)
            qsc = scale[st.q_sym]
            qmid = (st.q_bid + st.q_ask) / (2 * qsc)
            bsz = np.maximum(1, np.rint(np.exp(rng.normal(np.log(5000), 1.2, nq)) / qmid * 1e4))
            asz = np.maximum(1, np.rint(np.exp(rng.normal(np.log(5000), 1.2, nq)) / qmid * 1e4))
            out = [encode(CryptoQuote(*a)) for a in zip(
                self.sym_obj[st.q_sym].tolist(), wire_prices(st.q_bid, qsc), wire_prices(bsz, 1e4), wire_prices(st.q_ask, qsc),
                wire_prices(asz, 1e4), st.q_t.tolist(), self.x.draw(rng, nq).tolist(), self._lag(st.q_t).tolist())]
            buy = rng.random(nt) < 0.5  # buys lift the ask (condition 2), sells hit the bid (1)
            px = np.where(buy, st.t_ask, st.t_bid)
            price = px / scale[st.t_sym]
            units = np.maximum(1, np.rint(np.exp(rng.normal(np.log(300), 1.4, nt)) / price * 1e8))
            size = units / 1e8  # sizes in satoshi-like units of 1e-8
            sides = ([1], [2])
            ids = range(self.trade_id, self.trade_id + nt)
            self.trade_id += nt
            out.extend(encode(CryptoTrade(sym, p, t, s, sides[b], i, x, r)) for sym, p, t, s, b, i, x, r in zip(
                self.sym_obj[st.t_sym].tolist(), wire_prices(px, scale[st.t_sym]), st.t_t.tolist(), wire_prices(units, 1e8),
                buy.astype(np.int64).tolist(), ids, self.x.draw(rng, nt).tolist(), self._lag(st.t_t).tolist()))
            out = [out[k] for k in st.order.tolist()]
            self.bars.add(st.t_sym, st.t_t, px, size, np.ones(nt, bool))
        extra_t, extra = self._scheduled(lo, hi, st, prev_bid, prev_ask)
        merge_into(times, events, st.times if st is not None else np.empty(0, np.int64), out, extra_t, extra)
        secs, mins = self.bars.close(hi)
        scale = self.book.scale
        for kind, cls, rows in ((0, CryptoAggS, secs), (1, CryptoAgg, mins)):
            for s, start, end, cnt, v, pv, o, h, lo_, c, _op, _av, _apv in rows:
                sc = float(scale[s])
                aggs.append((end, kind, s, encode(cls(
                    self.syms[s], wire_number(round(v, 8)), wire_number(round(pv / v / sc, self.vw_digits[s])),
                    int(v / cnt), wire_number(o / sc), wire_number(c / sc), wire_number(h / sc),
                    wire_number(lo_ / sc), start, end))))

    def _scheduled(self, lo: int, hi: int, st, prev_bid: np.ndarray, prev_ask: np.ndarray
                   ) -> tuple[np.ndarray, list[bytes]]:
        """XL2 snapshots and FMV due in (lo, hi], each at the NBBO of its time."""
        rng, cfg, scale, syms = self.rng, self.cfg, self.book.scale, self.syms
        empty = np.empty(0, np.int64)
        q = (st.q_t, st.q_sym, st.q_bid, st.q_ask) if st is not None else (empty,) * 4
        ts: list[np.ndarray] = []
        out: list[bytes] = []
        t, s = schedule(lo, hi, cfg.book_period_ms, self.book_offset)
        if len(t):
            bid = latest(q[0], q[1], q[2], prev_bid, lo, t, s)
            ask = latest(q[0], q[1], q[3], prev_ask, lo, t, s)
            for tt, r, sk, b, a in zip(t.tolist(), self._lag(t).tolist(), s.tolist(), bid.tolist(), ask.tolist()):
                bids, asks = self.l2.snapshot(rng, sk, b, a, float(scale[sk]))
                out.append(encode(CryptoBook(syms[sk], tt, r, BOOK_EXCHANGE, bids, asks)))
            ts.append(t)
        t, s = schedule(lo, hi, cfg.value_period_ms, self.value_offset)
        if len(t):
            bid = latest(q[0], q[1], q[2], prev_bid, lo, t, s)
            ask = latest(q[0], q[1], q[3], prev_ask, lo, t, s)
            digits = [self.vw_digits[k] for k in s.tolist()]
            out.extend(encode(FairValue(v, self.fmv_syms[sk], tt))
                       for v, sk, tt in zip(fair_values(rng, bid, ask, scale[s], digits), s.tolist(), t.tolist()))
            ts.append(t)
        return (np.concatenate(ts) if ts else empty), out
