"""A seedable simulated market that speaks Polygon's websocket event shapes (DESIGN §3, "No key").

Pure and deterministic: no I/O, no clock reads, no global random state. Time is passed in; the same
:class:`MarketConfig` and the same sequence of :meth:`SimulatedMarket.advance` times give identical bytes.

What it simulates, per cluster:

- **stocks** ``T``/``Q``/``A``/``AM``: a geometric random walk of each ticker's mid, an NBBO around it in whole
  cents (quotes move the NBBO), trades at or inside the NBBO current at their time, SIP exchange ids, tapes,
  condition codes, per-ticker sequence numbers shared by trades and quotes, and per-second / per-minute aggregates
  built from the market's own trades with the SIP consolidated update rules.
- **options** ``T``/``Q``/``A``/``AM``: the same engine on OCC contracts, low volume.
- **crypto** ``XT``/``XQ``/``XA``: the same engine with fractional sizes; buys lift the ask, sells hit the bid.
- **forex** ``C``/``CA``: quotes only; ``CA`` is built from the bids, its ``v`` counts quotes.
- **indices** ``V`` about once a second per index, ``A``/``AM`` built from those values.

Rates (events per second, summed over the cluster's tickers) all derive from ``trades_per_second``:

====================  ===========================================================
stocks ``T``          ``trades_per_second``
stocks ``Q``          ``trades_per_second * quotes_per_trade``
options ``T``         ``trades_per_second * options_ratio``
options ``Q``         options trades ``* options_quotes_per_trade``
crypto ``XT``         ``trades_per_second * crypto_ratio``
crypto ``XQ``         crypto trades ``* quotes_per_trade``
forex ``C``           ``trades_per_second * forex_ratio``
indices ``V``         one per index per second (not scaled)
====================  ===========================================================

Within a cluster, arrivals are Poisson and split across tickers by a Zipf-like popularity (earlier in the tuple =
busier), so a few names carry most of the flow as in the real tape.

Each cluster's stream is generated in fixed blocks of simulated time counted from ``start_ms`` (numpy-batched,
then encoded with msgspec), slightly ahead of the clock; :meth:`SimulatedMarket.advance` only releases what is
due. So the stream is a pure function of (config, start_ms), however the caller slices time.

Wire decisions where Polygon's spec is loose: numbers that are whole are written as integers (``"p":175``, as
Polygon's Go encoder does); a regular stock trade has no ``c`` key (Polygon omits it); TRF fields ``trfi``/``trft``
are never sent; forex ``x`` is an integer (the schema's type; the example shows a string); ``CA`` has no ``e``
(as in the example). Aggregates use wall-clock-aligned windows, so the first ones after ``start_ms`` are partial.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

import msgspec
import numpy as np

__all__ = [
    "DEFAULT_CRYPTO",
    "DEFAULT_FOREX",
    "DEFAULT_INDICES",
    "DEFAULT_OPTIONS",
    "DEFAULT_STOCKS",
    "NO_OHLC_CONDITIONS",
    "ODD_LOT",
    "MarketConfig",
    "SimulatedMarket",
]

# --------------------------------------------------------------------------------------------------------------
# Reference data: roughly realistic starting prices and listing tapes, ordered by how busy the name is.

# ticker: (starting price, tape) with tape 1 = NYSE-listed, 2 = NYSE Arca / American, 3 = Nasdaq-listed.
_STOCK_PROFILES: dict[str, tuple[float, int]] = {
    "SPY": (590.0, 2), "NVDA": (140.0, 3), "TSLA": (250.0, 3), "AAPL": (230.0, 3), "QQQ": (510.0, 3),
    "AMZN": (200.0, 3), "MSFT": (420.0, 3), "META": (580.0, 3), "AMD": (135.0, 3), "GOOGL": (175.0, 3),
    "PLTR": (60.0, 3), "IWM": (225.0, 2), "AVGO": (170.0, 3), "NFLX": (880.0, 3), "INTC": (23.0, 3),
    "BAC": (45.0, 1), "GOOG": (176.0, 3), "JPM": (240.0, 1), "F": (11.0, 1), "COST": (920.0, 3),
    "XOM": (115.0, 1), "BRK.B": (460.0, 1), "V": (310.0, 1), "MA": (520.0, 1), "UNH": (560.0, 1),
    "LLY": (780.0, 1), "WMT": (90.0, 1), "JNJ": (155.0, 1), "PG": (170.0, 1), "HD": (410.0, 1),
    "KO": (63.0, 1), "PEP": (155.0, 3), "CSCO": (58.0, 3), "ORCL": (175.0, 1), "CRM": (330.0, 1),
    "ADBE": (480.0, 3), "DIS": (115.0, 1), "NKE": (76.0, 1), "PFE": (26.0, 1), "T": (23.0, 1),
}
DEFAULT_STOCKS: tuple[str, ...] = tuple(_STOCK_PROFILES)

DEFAULT_OPTIONS: tuple[str, ...] = (
    "O:SPY251219C00600000", "O:SPY251219P00580000", "O:QQQ251219C00520000", "O:NVDA251219C00150000",
    "O:TSLA251219P00250000", "O:AAPL251219C00230000", "O:MSFT251219C00450000", "O:AMZN251219P00190000",
)

# pair: (starting price, price decimals)
_CRYPTO_PROFILES: dict[str, tuple[float, int]] = {
    "BTC-USD": (97000.0, 2), "ETH-USD": (3400.0, 2), "SOL-USD": (240.0, 2), "XRP-USD": (1.4, 4),
    "DOGE-USD": (0.38, 5), "ADA-USD": (1.0, 4), "AVAX-USD": (45.0, 2), "LINK-USD": (22.0, 3),
    "LTC-USD": (100.0, 2),
}
DEFAULT_CRYPTO: tuple[str, ...] = tuple(_CRYPTO_PROFILES)

_FOREX_PROFILES: dict[str, tuple[float, int]] = {
    "EUR/USD": (1.085, 5), "USD/JPY": (151.2, 3), "GBP/USD": (1.27, 5), "AUD/USD": (0.66, 5),
    "USD/CAD": (1.36, 5), "USD/CHF": (0.88, 5), "NZD/USD": (0.6, 5), "EUR/GBP": (0.855, 5),
}
DEFAULT_FOREX: tuple[str, ...] = tuple(_FOREX_PROFILES)

# index: (starting value, volatility per sqrt(second))
_INDEX_PROFILES: dict[str, tuple[float, float]] = {
    "I:SPX": (5900.0, 1.2e-4), "I:NDX": (21000.0, 1.5e-4), "I:DJI": (43000.0, 1.0e-4),
    "I:RUT": (2300.0, 1.6e-4), "I:VIX": (16.0, 1.0e-3), "I:COMP": (19000.0, 1.5e-4),
}
DEFAULT_INDICES: tuple[str, ...] = tuple(_INDEX_PROFILES)

# SIP exchange ids (Polygon's /v3/reference/exchanges) with rough shares of the flow. 4 is the FINRA TRF, where
# off-exchange (dark) trades print: it reports trades but never quotes.
_STOCK_TRADE_X = {4: 38, 12: 12, 11: 7, 10: 6, 8: 6, 19: 6, 21: 5, 15: 4, 20: 3, 7: 2, 18: 2, 2: 2, 3: 2,
                  17: 1, 9: 1, 1: 1}
_STOCK_QUOTE_X = {12: 20, 11: 12, 10: 10, 8: 10, 19: 10, 21: 10, 15: 6, 20: 4, 7: 4, 18: 4, 2: 3, 3: 3,
                  17: 2, 9: 1, 1: 1}
_OPTIONS_X = {302: 18, 313: 12, 308: 10, 323: 10, 316: 9, 312: 8, 325: 8, 315: 7, 301: 5, 307: 5, 300: 4,
              322: 2, 319: 2}
_CRYPTO_X = {1: 45, 23: 25, 2: 15, 6: 15}  # Coinbase, Kraken, Bitfinex, Bitstamp
_FOREX_X = {48: 90, 44: 10}

# Stock trade conditions (Polygon ids): 14 intermarket sweep, 41 trade-through exempt, 12 form T (extended hours),
# 2 average price, 37 odd lot. Shares of trades for the first four; odd lots are drawn separately.
_STOCK_CONDITIONS: tuple[tuple[int | None, float], ...] = ((14, 0.10), (41, 0.03), (12, 0.004), (2, 0.003))
ODD_LOT = 37
# SIP consolidated rules: these conditions update volume but neither open/close nor high/low.
NO_OHLC_CONDITIONS: frozenset[int] = frozenset({2, 12, 37})

# OPRA condition ids: 209 automatic execution, 219 intermarket sweep, 227 single-leg auction, 229 single-leg cross.
# All update every field of the consolidated bar.
_OPTIONS_CONDITIONS = {209: 80, 219: 8, 227: 8, 229: 4}

# Each cluster generates its stream in fixed blocks of simulated time, ahead of the clock, and advance() releases
# what is due. The block length aims at this many events per block: big enough to amortise numpy's per-call
# overhead, small enough that generating one block never stalls a caller for long.
_EVENTS_PER_BLOCK = 1500
_BLOCK_MS_RANGE = (10, 250)


@dataclass
class MarketConfig:
    """What to simulate and how busy. Rates are totals over a cluster's tickers (module docstring).

    ``options_ratio``, ``crypto_ratio`` and ``forex_ratio`` scale ``trades_per_second`` into the other clusters'
    rates; ``odd_lot_fraction`` is the share of stock trades under 100 shares (they carry condition 37). Tickers
    without a built-in profile get a seeded random starting price.
    """

    seed: int = 7
    stock_tickers: tuple[str, ...] = DEFAULT_STOCKS
    options_tickers: tuple[str, ...] = DEFAULT_OPTIONS
    crypto_pairs: tuple[str, ...] = DEFAULT_CRYPTO
    forex_pairs: tuple[str, ...] = DEFAULT_FOREX
    indices: tuple[str, ...] = DEFAULT_INDICES
    trades_per_second: float = 2000.0
    quotes_per_trade: float = 2.0
    options_ratio: float = 0.02
    options_quotes_per_trade: float = 5.0
    crypto_ratio: float = 0.1
    forex_ratio: float = 0.05
    odd_lot_fraction: float = 0.15


# --------------------------------------------------------------------------------------------------------------
# Wire shapes: tagged Structs put "ev" first; field order is the order of the spec's example payloads.


class _StockTrade(msgspec.Struct, tag_field="ev", tag="T"):
    sym: str
    x: int
    i: str
    z: int
    p: float
    s: int
    t: int
    q: int


class _StockTradeC(msgspec.Struct, tag_field="ev", tag="T"):
    sym: str
    x: int
    i: str
    z: int
    p: float
    s: int
    c: list[int]
    t: int
    q: int


class _StockQuote(msgspec.Struct, tag_field="ev", tag="Q"):
    sym: str
    bx: int
    bp: float
    bs: int
    ax: int
    ap: float
    as_: int = msgspec.field(name="as")
    c: int = 0
    i: list[int] = msgspec.field(default_factory=list)
    t: int = 0
    q: int = 0
    z: int = 0


class _EquityAgg(msgspec.Struct, tag_field="ev", tag="A"):
    sym: str
    v: int
    av: int
    op: float
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741  # the wire name
    a: float
    z: int
    s: int
    e: int


class _EquityAggM(_EquityAgg, tag="AM"):
    pass


class _OptionTrade(msgspec.Struct, tag_field="ev", tag="T"):
    sym: str
    x: int
    p: float
    s: int
    c: list[int]
    t: int
    q: int


class _OptionQuote(msgspec.Struct, tag_field="ev", tag="Q"):
    sym: str
    bx: int
    ax: int
    bp: float
    ap: float
    bs: int
    as_: int = msgspec.field(name="as")
    t: int = 0
    q: int = 0


class _CryptoTrade(msgspec.Struct, tag_field="ev", tag="XT"):
    pair: str
    p: float
    t: int
    s: float
    c: list[int]
    i: int
    x: int
    r: int


class _CryptoQuote(msgspec.Struct, tag_field="ev", tag="XQ"):
    pair: str
    bp: float
    bs: float
    ap: float
    as_: float = msgspec.field(name="as")
    t: int = 0
    x: int = 0
    r: int = 0


class _CryptoAgg(msgspec.Struct, tag_field="ev", tag="XA"):
    pair: str
    v: float
    vw: float
    z: int
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    s: int
    e: int


class _ForexQuote(msgspec.Struct, tag_field="ev", tag="C"):
    p: str
    x: int
    a: float
    b: float
    t: int


class _ForexAgg(msgspec.Struct, tag_field="ev", tag="CA"):
    pair: str
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    v: int
    s: int


class _IndexValue(msgspec.Struct, tag_field="ev", tag="V"):
    val: float
    T: str
    t: int


class _IndexAgg(msgspec.Struct, tag_field="ev", tag="A"):
    sym: str
    op: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    s: int
    e: int


class _IndexAggM(_IndexAgg, tag="AM"):
    pass


_encode = msgspec.json.Encoder().encode

# --------------------------------------------------------------------------------------------------------------
# Helpers


def _popularity(n: int) -> np.ndarray:
    """Zipf-like weights summing to 1: the k-th name gets ~1/k**0.9 of the flow."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** 0.9
    return w / w.sum()


def _prices(ticks: np.ndarray, scale: np.ndarray | float) -> list[float]:
    """``ticks / scale`` as Python floats, whole values as ints: Polygon's (Go) encoder writes 175, not 175.0."""
    vals = (ticks / scale).tolist()
    for k in np.flatnonzero(ticks % scale == 0).tolist():
        vals[k] = int(vals[k])
    return vals


def _num(x: float) -> float:
    """A scalar the way :func:`_prices` writes it."""
    return int(x) if x.is_integer() else x


def _cumulative(weights: np.ndarray) -> np.ndarray:
    c = np.cumsum(weights / weights.sum()) if len(weights) else np.empty(0)
    if len(c):
        c[-1] = 1.0  # no draw can fall past the last bucket through rounding
    return c


class _Choice:
    """Weighted draws of ids from a fixed table, vectorised."""

    def __init__(self, table: dict[int, float]) -> None:
        self.values = np.array(list(table), dtype=np.int64)
        self.cum = _cumulative(np.array(list(table.values()), dtype=np.float64))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.values[np.searchsorted(self.cum, rng.random(n), side="right")]


def _arrivals(rng: np.random.Generator, rate: float, lo: int, hi: int,
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
class _Step:
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


class _Book:
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
        self.cum = _cumulative(w)
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

    def step(self, rng: np.random.Generator, lo: int, hi: int) -> _Step | None:
        """Quotes and trades in (lo, hi]; None if there are none. The first call opens with one quote per symbol
        so every trade has a published NBBO before it."""
        q_t, q_sym = _arrivals(rng, self.quote_rate, lo, hi, self.cum)
        t_t, t_sym = _arrivals(rng, self.trade_rate, lo, hi, self.cum)
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
        return _Step(q_t, q_sym, q_bid, q_ask, q_seq, t_t, t_sym, t_bid, t_ask, t_seq, order, all_t[order])


# A closed bar: (symbol index, start ms, end ms, trades, volume, sum of ticks*size, o, h, l, c (ticks),
# day open (ticks), day volume, day sum of ticks*size) — day figures run through the bar's end.
_Bar = tuple[int, int, int, int, float, float, int, int, int, int, int, float, float]


class _Bars:
    """Per-second and per-minute bars from a cluster's trades, with the SIP consolidated update rules.

    Volume counts every trade; open/high/low/close only trades flagged eligible. A bar whose trades are all
    ineligible repeats the symbol's last eligible close in o/h/l/c; before the first eligible trade of a symbol
    there is nothing to repeat and the bar is not emitted (its volume still counts in the day's volume).
    ``op`` is the first eligible price of the simulation. A second bar closes once ``hi >= e``; minutes likewise.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.op = [-1] * n
        self.s_carry = [-1] * n
        self.s_av = [0.0] * n
        self.s_apv = [0.0] * n
        self.m_carry = [-1] * n
        self.m_av = [0.0] * n
        self.m_apv = [0.0] * n
        # (minute start, sym) -> [n, v, pv, o, h, l, c]; o == -1 until an eligible trade
        self.minutes: dict[tuple[int, int], list] = {}

    def add(self, sym: np.ndarray, t: np.ndarray, px: np.ndarray, size: np.ndarray, eligible: np.ndarray) -> None:
        """Trades in time order (non-decreasing t, later than every earlier call's)."""
        if len(t):
            self.pending.append((sym, t, px, size.astype(np.float64), eligible))

    def close(self, hi: int) -> tuple[list[_Bar], list[_Bar]]:
        """Second bars and minute bars whose end is <= hi, in (end, symbol) order."""
        boundary = hi - hi % 1000
        seconds: list[_Bar] = []
        if self.pending and self.pending[0][1][0] < boundary:
            sym, t, px, size, elig = (np.concatenate(a) for a in zip(*self.pending))
            cut = int(np.searchsorted(t, boundary, side="left"))
            self.pending = [(sym[cut:], t[cut:], px[cut:], size[cut:], elig[cut:])] if cut < len(t) else []
            seconds = self._seconds(sym[:cut], t[:cut], px[:cut], size[:cut], elig[:cut])
        minutes: list[_Bar] = []
        due = sorted(k for k in self.minutes if k[0] + 60_000 <= hi)
        for key in due:
            m, s = key
            cnt, v, pv, o, h, lo, c = self.minutes.pop(key)
            self.m_av[s] += v
            self.m_apv[s] += pv
            if o >= 0:
                self.m_carry[s] = c
            elif self.m_carry[s] >= 0:
                o = h = lo = c = self.m_carry[s]
            else:
                continue
            minutes.append((s, m, m + 60_000, cnt, v, pv, o, h, lo, c, self.op[s], self.m_av[s], self.m_apv[s]))
        return seconds, minutes

    def _seconds(self, sym: np.ndarray, t: np.ndarray, px: np.ndarray, size: np.ndarray,
                 elig: np.ndarray) -> list[_Bar]:
        sec = t // 1000
        key = sec * self.n + sym
        o_ = np.argsort(key, kind="stable")  # stable: time order survives inside a bar
        key, px, size, elig = key[o_], px[o_], size[o_], elig[o_]
        first = np.empty(len(key), bool)
        first[0] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        gkey = key[starts]
        cnt = np.diff(np.append(starts, len(key)))
        vol = np.add.reduceat(size, starts)
        pv = np.add.reduceat(px * size, starts)
        ng = len(starts)
        o = np.full(ng, -1, np.int64)
        h = o.copy()
        lo = o.copy()
        c = o.copy()
        if elig.any():
            ekey, epx = key[elig], px[elig]
            ef = np.empty(len(ekey), bool)
            ef[0] = True
            np.not_equal(ekey[1:], ekey[:-1], out=ef[1:])
            es = np.flatnonzero(ef)
            at = np.searchsorted(gkey, ekey[es])
            o[at] = epx[es]
            c[at] = epx[np.append(es[1:] - 1, len(epx) - 1)]
            h[at] = np.maximum.reduceat(epx, es)
            lo[at] = np.minimum.reduceat(epx, es)
        out: list[_Bar] = []
        minutes = self.minutes
        for g, cn, v, p, go, gh, gl, gc in zip(gkey.tolist(), cnt.tolist(), vol.tolist(), pv.tolist(), o.tolist(),
                                               h.tolist(), lo.tolist(), c.tolist()):
            s, second = g % self.n, g // self.n
            start = second * 1000
            mk = (start - start % 60_000, s)
            acc = minutes.get(mk)
            if acc is None:
                acc = minutes[mk] = [0, 0.0, 0.0, -1, -1, -1, -1]
            acc[0] += cn
            acc[1] += v
            acc[2] += p
            self.s_av[s] += v
            self.s_apv[s] += p
            if go >= 0:
                if self.op[s] < 0:
                    self.op[s] = go
                self.s_carry[s] = gc
                if acc[3] < 0:
                    acc[3], acc[4], acc[5] = go, gh, gl
                else:
                    acc[4], acc[5] = max(acc[4], gh), min(acc[5], gl)
                acc[6] = gc
            elif self.s_carry[s] >= 0:
                go = gh = gl = gc = self.s_carry[s]
            else:
                continue
            out.append((s, start, start + 1000, cn, v, p, go, gh, gl, gc, self.op[s], self.s_av[s], self.s_apv[s]))
        return out


# --------------------------------------------------------------------------------------------------------------
# Clusters

# An emitted aggregate waiting for the end of advance(): (end ms, 0 for per-second / 1 per-minute, sym, bytes).
_PendingAgg = tuple[int, int, int, bytes]


class _Cluster:
    """One cluster's stream. Subclasses implement :meth:`chunk`; this class generates whole blocks ahead of the
    clock and releases events once the clock reaches their ``t``, aggregates once it reaches their end."""

    name: str
    syms: list[str]
    events_per_second: float

    def _start(self, start_ms: int) -> None:
        rate = max(self.events_per_second, 1e-9)
        lo, hi = _BLOCK_MS_RANGE
        self.block_ms = int(min(hi, max(lo, 1000.0 * _EVENTS_PER_BLOCK / rate)))
        self.generated_to = start_ms
        self.times: list[int] = []
        self.events: list[bytes] = []
        self.released = 0  # events[:released] are out
        self.aggs: deque[_PendingAgg] = deque()

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[_PendingAgg]) -> None:
        """Append the events with t in (lo, hi] in time order (and their t to ``times``), then the aggregates
        that close by ``hi`` in (end, kind, symbol) order."""
        raise NotImplementedError

    def take(self, now: int) -> list[bytes]:
        """Events with t <= now not yet taken, in time order, then aggregates with end <= now."""
        while self.generated_to < now:
            if self.released:
                del self.times[:self.released], self.events[:self.released]
                self.released = 0
            aggs: list[_PendingAgg] = []
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


def _equity_aggs(bars: _Bars, hi: int, syms: list[str], scale: np.ndarray, aggs: list[_PendingAgg]) -> None:
    secs, mins = bars.close(hi)
    for kind, cls, rows in ((0, _EquityAgg, secs), (1, _EquityAggM, mins)):
        for s, start, end, cnt, v, pv, o, h, lo, c, op, av, apv in rows:
            sc = float(scale[s])
            aggs.append((end, kind, s, _encode(cls(
                syms[s], int(v), int(av), _num(op / sc), _num(round(pv / v / sc, 4)), _num(o / sc), _num(c / sc),
                _num(h / sc), _num(lo / sc), _num(round(apv / av / sc, 4)), int(v) // cnt, start, end))))


class _Stocks(_Cluster):
    name = "stocks"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.stock_tickers)
        n = len(self.syms)
        prices = np.empty(n)
        self.tape = np.empty(n, np.int64)
        for k, sym in enumerate(self.syms):
            price, tape = _STOCK_PROFILES.get(sym) or (float(np.exp(rng.uniform(np.log(10), np.log(500)))), 3)
            prices[k], self.tape[k] = price, tape
        prices = np.round(prices, 2)
        rate = cfg.trades_per_second
        self.book = _Book(rng, prices, np.full(n, 2), _popularity(n), np.full(n, 1.5e-4),
                          rate * cfg.quotes_per_trade, rate, 5e-5, 0.05)
        self.events_per_second = rate * (1 + cfg.quotes_per_trade)
        self.bars = _Bars(n)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.odd_fraction = cfg.odd_lot_fraction
        self.trade_x = _Choice(_STOCK_TRADE_X)
        self.quote_x = _Choice(_STOCK_QUOTE_X)
        self.cond_cum = np.cumsum([p for _, p in _STOCK_CONDITIONS])
        # Condition list per (category, odd lot); category len(_STOCK_CONDITIONS) means "regular".
        codes = [c for c, _ in _STOCK_CONDITIONS] + [None]
        self.cond_lists: list[list[int] | None] = []
        for code in codes:
            for odd in (False, True):
                lst = sorted(([code] if code is not None else []) + ([ODD_LOT] if odd else []))
                self.cond_lists.append(lst or None)
        self.no_ohlc = np.array([(c in NO_OHLC_CONDITIONS) for c in codes])
        self.lots = np.array([1, 2, 3, 4, 5, 6, 8, 10], np.int64)
        self.lots_cum = _cumulative(np.array([55, 18, 8, 5, 6, 2, 2, 4], np.float64))
        self.trade_id = int(rng.integers(10**12, 5 * 10**13))

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[_PendingAgg]) -> None:
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
            bp, ap = _prices(st.q_bid, qsc), _prices(st.q_ask, qsc)
            ind = np.where(rng.random(nq) < 0.02, 1, 0).tolist()
            inds: tuple[list[int], list[int]] = ([], [604])
            qz = self.tape[st.q_sym].tolist()
            quote = _StockQuote
            out = [_encode(quote(sy, b1, b2, b3, a1, a2, a3, 0, inds[k], t, q, z))
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
            tp = _prices(px, scale[st.t_sym])
            for sym, xx, i, z, p, s, cd, t, q in zip(self.sym_obj[st.t_sym].tolist(), x, ids, tz, tp,
                                                     size.tolist(), code, st.t_t.tolist(), st.t_seq.tolist()):
                cl = cond_lists[cd]
                out.append(_encode(_StockTrade(sym, xx, i, z, p, s, t, q) if cl is None
                                   else _StockTradeC(sym, xx, i, z, p, s, cl, t, q)))
            events.extend([out[k] for k in st.order.tolist()])
            times.extend(st.times.tolist())
            self.bars.add(st.t_sym, st.t_t, px, size, eligible)
        _equity_aggs(self.bars, hi, self.syms, self.book.scale, aggs)


def _parse_occ(symbol: str) -> tuple[str, bool, float] | None:
    """(underlying, is_call, strike) of an OCC option symbol like ``O:SPY251219C00600000``."""
    body = symbol[2:] if symbol.startswith("O:") else symbol
    if len(body) < 16 or body[-9] not in "CP" or not body[-8:].isdigit():
        return None
    return body[:-15], body[-9] == "C", int(body[-8:]) / 1000.0


class _Options(_Cluster):
    name = "options"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.options_tickers)
        n = len(self.syms)
        prices = np.empty(n)
        for k, sym in enumerate(self.syms):
            occ = _parse_occ(sym)
            if occ is None or occ[0] not in _STOCK_PROFILES:
                prices[k] = 5.0
                continue
            root, call, strike = occ
            spot = _STOCK_PROFILES[root][0]
            intrinsic = max(0.0, spot - strike if call else strike - spot)
            moneyness = math.log(spot / strike)
            prices[k] = intrinsic + 0.03 * spot * math.exp(-moneyness * moneyness / 0.02) + 0.05
        prices = np.round(prices, 2)
        rate = cfg.trades_per_second * cfg.options_ratio
        self.book = _Book(rng, prices, np.full(n, 2), _popularity(n), np.full(n, 5e-4),
                          rate * cfg.options_quotes_per_trade, rate, 0.01, 0.2)
        self.events_per_second = rate * (1 + cfg.options_quotes_per_trade)
        self.bars = _Bars(n)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.x = _Choice(_OPTIONS_X)
        self.cond = _Choice(_OPTIONS_CONDITIONS)
        self.cond_lists = {c: [c] for c in _OPTIONS_CONDITIONS}

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[_PendingAgg]) -> None:
        st = self.book.step(self.rng, lo, hi)
        if st is not None:
            rng = self.rng
            scale = self.book.scale
            nq, nt = len(st.q_t), len(st.t_t)
            qsc = scale[st.q_sym]
            out = [_encode(_OptionQuote(*a)) for a in zip(
                self.sym_obj[st.q_sym].tolist(), self.x.draw(rng, nq).tolist(), self.x.draw(rng, nq).tolist(),
                _prices(st.q_bid, qsc), _prices(st.q_ask, qsc), np.minimum(rng.geometric(0.05, nq), 500).tolist(),
                np.minimum(rng.geometric(0.05, nq), 500).tolist(), st.q_t.tolist(), st.q_seq.tolist())]
            side = rng.random(nt)
            inside = st.t_bid + (rng.random(nt) * (st.t_ask - st.t_bid + 1)).astype(np.int64)
            px = np.where(side < 0.35, st.t_bid, np.where(side < 0.7, st.t_ask, inside))
            size = np.where(rng.random(nt) < 0.02, rng.integers(50, 500, nt), np.minimum(rng.geometric(0.3, nt), 49))
            cl = self.cond_lists
            conds = [cl[c] for c in self.cond.draw(rng, nt).tolist()]
            out.extend(_encode(_OptionTrade(*a)) for a in zip(
                self.sym_obj[st.t_sym].tolist(), self.x.draw(rng, nt).tolist(), _prices(px, scale[st.t_sym]),
                size.tolist(), conds, st.t_t.tolist(), st.t_seq.tolist()))
            events.extend([out[k] for k in st.order.tolist()])
            times.extend(st.times.tolist())
            self.bars.add(st.t_sym, st.t_t, px, size, np.ones(nt, bool))
        _equity_aggs(self.bars, hi, self.syms, self.book.scale, aggs)


class _Crypto(_Cluster):
    name = "crypto"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.crypto_pairs)
        n = len(self.syms)
        prices, decimals = np.empty(n), np.empty(n, np.int64)
        for k, sym in enumerate(self.syms):
            prices[k], decimals[k] = _CRYPTO_PROFILES.get(sym) or (float(np.exp(rng.uniform(0, np.log(500)))), 4)
        prices = np.round(prices * 10.0**decimals) / 10.0**decimals
        rate = cfg.trades_per_second * cfg.crypto_ratio
        self.book = _Book(rng, prices, decimals, _popularity(n), np.full(n, 1.2e-4),
                          rate * cfg.quotes_per_trade, rate, 1e-5, 0.0)
        self.events_per_second = rate * (1 + cfg.quotes_per_trade)
        self.vw_digits = [max(4, int(d) + 2) for d in decimals]
        self.bars = _Bars(n)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.x = _Choice(_CRYPTO_X)
        self.trade_id = int(rng.integers(10**6, 10**9))

    def _lag(self, t: np.ndarray) -> np.ndarray:
        # Polygon's receive time: a few ms (at most 250) after the exchange's time.
        return t + np.minimum(self.rng.geometric(0.08, len(t)), 250)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[_PendingAgg]) -> None:
        st = self.book.step(self.rng, lo, hi)
        if st is not None:
            rng = self.rng
            scale = self.book.scale
            nq, nt = len(st.q_t), len(st.t_t)
            qsc = scale[st.q_sym]
            qmid = (st.q_bid + st.q_ask) / (2 * qsc)
            bsz = np.maximum(1, np.rint(np.exp(rng.normal(np.log(5000), 1.2, nq)) / qmid * 1e4))
            asz = np.maximum(1, np.rint(np.exp(rng.normal(np.log(5000), 1.2, nq)) / qmid * 1e4))
            out = [_encode(_CryptoQuote(*a)) for a in zip(
                self.sym_obj[st.q_sym].tolist(), _prices(st.q_bid, qsc), _prices(bsz, 1e4), _prices(st.q_ask, qsc),
                _prices(asz, 1e4), st.q_t.tolist(), self.x.draw(rng, nq).tolist(), self._lag(st.q_t).tolist())]
            buy = rng.random(nt) < 0.5  # buys lift the ask (condition 2), sells hit the bid (1)
            px = np.where(buy, st.t_ask, st.t_bid)
            price = px / scale[st.t_sym]
            units = np.maximum(1, np.rint(np.exp(rng.normal(np.log(300), 1.4, nt)) / price * 1e8))
            size = units / 1e8  # sizes in satoshi-like units of 1e-8
            sides = ([1], [2])
            ids = range(self.trade_id, self.trade_id + nt)
            self.trade_id += nt
            out.extend(_encode(_CryptoTrade(sym, p, t, s, sides[b], i, x, r)) for sym, p, t, s, b, i, x, r in zip(
                self.sym_obj[st.t_sym].tolist(), _prices(px, scale[st.t_sym]), st.t_t.tolist(), _prices(units, 1e8),
                buy.astype(np.int64).tolist(), ids, self.x.draw(rng, nt).tolist(), self._lag(st.t_t).tolist()))
            events.extend([out[k] for k in st.order.tolist()])
            times.extend(st.times.tolist())
            self.bars.add(st.t_sym, st.t_t, px, size, np.ones(nt, bool))
        _secs, mins = self.bars.close(hi)
        scale = self.book.scale
        for s, start, end, cnt, v, pv, o, h, lo_, c, _op, _av, _apv in mins:
            sc = float(scale[s])
            aggs.append((end, 1, s, _encode(_CryptoAgg(
                self.syms[s], _num(round(v, 8)), _num(round(pv / v / sc, self.vw_digits[s])), int(v / cnt),
                _num(o / sc), _num(c / sc), _num(h / sc), _num(lo_ / sc), start, end))))


class _Forex(_Cluster):
    name = "forex"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.forex_pairs)
        n = len(self.syms)
        prices, decimals = np.empty(n), np.empty(n, np.int64)
        for k, sym in enumerate(self.syms):
            prices[k], decimals[k] = _FOREX_PROFILES.get(sym) or (float(np.exp(rng.uniform(-0.5, 0.5))), 5)
        rate = cfg.trades_per_second * cfg.forex_ratio
        self.book = _Book(rng, prices, decimals, _popularity(n) ** 0.5, np.full(n, 2e-5), rate, 0.0, 2e-5, 0.0)
        self.events_per_second = rate
        self.bars = _Bars(n)
        self.sym_obj = np.array(self.syms, dtype=object)
        self.x = _Choice(_FOREX_X)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[_PendingAgg]) -> None:
        st = self.book.step(self.rng, lo, hi)
        if st is not None:
            nq = len(st.q_t)
            qsc = self.book.scale[st.q_sym]
            times.extend(st.q_t.tolist())
            events.extend(_encode(_ForexQuote(*a)) for a in zip(
                self.sym_obj[st.q_sym].tolist(), self.x.draw(self.rng, nq).tolist(), _prices(st.q_ask, qsc),
                _prices(st.q_bid, qsc), st.q_t.tolist()))
            # Forex bars are built from the bids; their volume is the number of quotes.
            self.bars.add(st.q_sym, st.q_t, st.q_bid, np.ones(nq), np.ones(nq, bool))
        _secs, mins = self.bars.close(hi)
        scale = self.book.scale
        for s, start, _end, cnt, _v, _pv, o, h, lo_, c, _op, _av, _apv in mins:
            sc = float(scale[s])
            aggs.append((_end, 1, s, _encode(_ForexAgg(
                self.syms[s], _num(o / sc), _num(c / sc), _num(h / sc), _num(lo_ / sc), cnt, start))))


class _Indices(_Cluster):
    name = "indices"

    def __init__(self, rng: np.random.Generator, cfg: MarketConfig) -> None:
        self.rng = rng
        self.syms = list(cfg.indices)
        n = len(self.syms)
        start = np.empty(n)
        self.sigma = np.empty(n)
        for k, sym in enumerate(self.syms):
            start[k], self.sigma[k] = _INDEX_PROFILES.get(sym) or (float(rng.uniform(100, 10_000)), 1.5e-4)
        self.logv = np.log(start * 100.0)  # in hundredths: indices publish two decimals
        self.offset = rng.integers(0, 1000, n)  # each index publishes at its own ms within the second
        self.bars = _Bars(n)
        self.events_per_second = float(n)

    def chunk(self, lo: int, hi: int, times: list[int], events: list[bytes], aggs: list[_PendingAgg]) -> None:
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
            events.extend(_encode(_IndexValue(v, self.syms[s], tt))
                          for v, s, tt in zip(_prices(vals, 100.0), sym.tolist(), t.tolist()))
            self.bars.add(sym, t, vals, np.ones(len(t)), np.ones(len(t), bool))
        secs, mins = self.bars.close(hi)
        for kind, cls, rows in ((0, _IndexAgg, secs), (1, _IndexAggM, mins)):
            for s, start, end, _cnt, _v, _pv, o, h, lo_, c, op, _av, _apv in rows:
                aggs.append((end, kind, s, _encode(cls(
                    self.syms[s], _num(op / 100.0), _num(o / 100.0), _num(c / 100.0), _num(h / 100.0),
                    _num(lo_ / 100.0), start, end))))


_CLUSTER_TYPES: tuple[Callable[[np.random.Generator, MarketConfig], _Cluster], ...] = (
    _Stocks, _Options, _Crypto, _Forex, _Indices)


class SimulatedMarket:
    """A deterministic market. The event stream is a pure function of ``config`` and ``start_ms``; the advance
    times only decide how it is cut into calls (aggregates follow the trades and quotes of the call they land in).

    Each cluster draws from its own random stream (spawned from ``config.seed``), so changing one cluster's
    tickers or rate leaves the others' output unchanged.
    """

    def __init__(self, config: MarketConfig, start_ms: int) -> None:
        self.config = config
        self.now_ms = int(start_ms)
        streams = np.random.SeedSequence(config.seed).spawn(len(_CLUSTER_TYPES))
        self._clusters: list[_Cluster] = []
        for make, ss in zip(_CLUSTER_TYPES, streams):
            cluster = make(np.random.Generator(np.random.PCG64(ss)), config)
            cluster._start(self.now_ms)
            self._clusters.append(cluster)
        self.cluster_names: tuple[str, ...] = tuple(c.name for c in self._clusters)

    def advance(self, now_ms: int) -> dict[str, list[bytes]]:
        """Generate every event due in (last_now, now_ms]; returns {cluster_name: [event_json_bytes, ...]} in
        timestamp order per cluster. Each item is ONE JSON object (not wrapped in a list), compact bytes.

        Every cluster has a key (possibly an empty list). Trades, quotes and values come first, interleaved in
        time order, each with ``t`` in (last_now, now_ms]; then the aggregates whose window ended in
        (last_now, now_ms], ordered by (end, per-second before per-minute, ticker). Crypto's receive time ``r``
        is a few ms after ``t`` and may lie after ``now_ms``. ``now_ms`` must not go backwards.
        """
        now_ms = int(now_ms)
        if now_ms < self.now_ms:
            raise ValueError(f"time went backwards: {now_ms} < {self.now_ms}")
        self.now_ms = now_ms
        return {c.name: c.take(now_ms) if c.syms else [] for c in self._clusters}
