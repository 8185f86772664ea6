"""The simulated crypto ``XT``/``XQ``/``XA``."""

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
from firehose_proxy.sources.market.wire import (
    CryptoAgg,
    CryptoQuote,
    CryptoTrade,
    encode,
)


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
        self.bars = SecondMinuteBars(n)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.x = Choice(CRYPTO_X)
        self.trade_id = int(rng.integers(10**6, 10**9))

    def _lag(self, t: np.ndarray) -> np.ndarray:
        # Polygon's receive time: a few ms (at most 250) after the exchange's time.
        return t + np.minimum(self.rng.geometric(0.08, len(t)), 250)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[PendingAgg]) -> None:
        st = self.book.step(self.rng, lo, hi)
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
            events.extend([out[k] for k in st.order.tolist()])
            times.extend(st.times.tolist())
            self.bars.add(st.t_sym, st.t_t, px, size, np.ones(nt, bool))
        _secs, mins = self.bars.close(hi)
        scale = self.book.scale
        for s, start, end, cnt, v, pv, o, h, lo_, c, _op, _av, _apv in mins:
            sc = float(scale[s])
            aggs.append((end, 1, s, encode(CryptoAgg(
                self.syms[s], wire_number(round(v, 8)), wire_number(round(pv / v / sc, self.vw_digits[s])), int(v / cnt),
                wire_number(o / sc), wire_number(c / sc), wire_number(h / sc), wire_number(lo_ / sc), start, end))))
