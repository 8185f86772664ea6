"""What the simulated market trades: reference data (prices, exchanges, conditions) and :class:`MarketConfig`."""

from __future__ import annotations

from dataclasses import dataclass

# ticker: (starting price, tape) with tape 1 = NYSE-listed, 2 = NYSE Arca / American, 3 = Nasdaq-listed.
STOCK_PROFILES: dict[str, tuple[float, int]] = {
    "SPY": (590.0, 2), "NVDA": (140.0, 3), "TSLA": (250.0, 3), "AAPL": (230.0, 3), "QQQ": (510.0, 3),
    "AMZN": (200.0, 3), "MSFT": (420.0, 3), "META": (580.0, 3), "AMD": (135.0, 3), "GOOGL": (175.0, 3),
    "PLTR": (60.0, 3), "IWM": (225.0, 2), "AVGO": (170.0, 3), "NFLX": (880.0, 3), "INTC": (23.0, 3),
    "BAC": (45.0, 1), "GOOG": (176.0, 3), "JPM": (240.0, 1), "F": (11.0, 1), "COST": (920.0, 3),
    "XOM": (115.0, 1), "BRK.B": (460.0, 1), "V": (310.0, 1), "MA": (520.0, 1), "UNH": (560.0, 1),
    "LLY": (780.0, 1), "WMT": (90.0, 1), "JNJ": (155.0, 1), "PG": (170.0, 1), "HD": (410.0, 1),
    "KO": (63.0, 1), "PEP": (155.0, 3), "CSCO": (58.0, 3), "ORCL": (175.0, 1), "CRM": (330.0, 1),
    "ADBE": (480.0, 3), "DIS": (115.0, 1), "NKE": (76.0, 1), "PFE": (26.0, 1), "T": (23.0, 1),
}
DEFAULT_STOCKS: tuple[str, ...] = tuple(STOCK_PROFILES)

DEFAULT_OPTIONS: tuple[str, ...] = (
    "O:SPY251219C00600000", "O:SPY251219P00580000", "O:QQQ251219C00520000", "O:NVDA251219C00150000",
    "O:TSLA251219P00250000", "O:AAPL251219C00230000", "O:MSFT251219C00450000", "O:AMZN251219P00190000",
)

# pair: (starting price, price decimals)
CRYPTO_PROFILES: dict[str, tuple[float, int]] = {
    "BTC-USD": (97000.0, 2), "ETH-USD": (3400.0, 2), "SOL-USD": (240.0, 2), "XRP-USD": (1.4, 4),
    "DOGE-USD": (0.38, 5), "ADA-USD": (1.0, 4), "AVAX-USD": (45.0, 2), "LINK-USD": (22.0, 3),
    "LTC-USD": (100.0, 2),
}
DEFAULT_CRYPTO: tuple[str, ...] = tuple(CRYPTO_PROFILES)

FOREX_PROFILES: dict[str, tuple[float, int]] = {
    "EUR/USD": (1.085, 5), "USD/JPY": (151.2, 3), "GBP/USD": (1.27, 5), "AUD/USD": (0.66, 5),
    "USD/CAD": (1.36, 5), "USD/CHF": (0.88, 5), "NZD/USD": (0.6, 5), "EUR/GBP": (0.855, 5),
}
DEFAULT_FOREX: tuple[str, ...] = tuple(FOREX_PROFILES)

# index: (starting value, volatility per sqrt(second))
INDEX_PROFILES: dict[str, tuple[float, float]] = {
    "I:SPX": (5900.0, 1.2e-4), "I:NDX": (21000.0, 1.5e-4), "I:DJI": (43000.0, 1.0e-4),
    "I:RUT": (2300.0, 1.6e-4), "I:VIX": (16.0, 1.0e-3), "I:COMP": (19000.0, 1.5e-4),
}
DEFAULT_INDICES: tuple[str, ...] = tuple(INDEX_PROFILES)

# SIP exchange ids (Polygon's /v3/reference/exchanges) with rough shares of the flow. 4 is the FINRA TRF, where
# off-exchange (dark) trades print: it reports trades but never quotes.
STOCK_TRADE_X = {4: 38, 12: 12, 11: 7, 10: 6, 8: 6, 19: 6, 21: 5, 15: 4, 20: 3, 7: 2, 18: 2, 2: 2, 3: 2,
                  17: 1, 9: 1, 1: 1}
STOCK_QUOTE_X = {12: 20, 11: 12, 10: 10, 8: 10, 19: 10, 21: 10, 15: 6, 20: 4, 7: 4, 18: 4, 2: 3, 3: 3,
                  17: 2, 9: 1, 1: 1}
OPTIONS_X = {302: 18, 313: 12, 308: 10, 323: 10, 316: 9, 312: 8, 325: 8, 315: 7, 301: 5, 307: 5, 300: 4,
              322: 2, 319: 2}
CRYPTO_X = {1: 45, 23: 25, 2: 15, 6: 15}  # Coinbase, Kraken, Bitfinex, Bitstamp
FOREX_X = {48: 90, 44: 10}

# Stock trade conditions (Polygon ids): 14 intermarket sweep, 41 trade-through exempt, 12 form T (extended hours),
# 2 average price, 37 odd lot. Shares of trades for the first four; odd lots are drawn separately.
STOCK_CONDITIONS: tuple[tuple[int | None, float], ...] = ((14, 0.10), (41, 0.03), (12, 0.004), (2, 0.003))
ODD_LOT = 37
# SIP consolidated rules: these conditions update volume but neither open/close nor high/low.
NO_OHLC_CONDITIONS: frozenset[int] = frozenset({2, 12, 37})

# OPRA condition ids: 209 automatic execution, 219 intermarket sweep, 227 single-leg auction, 229 single-leg cross.
# All update every field of the consolidated bar.
OPTIONS_CONDITIONS = {209: 80, 219: 8, 227: 8, 229: 4}

# Each cluster generates its stream in fixed blocks of simulated time, ahead of the clock, and advance() releases
# what is due. The block length aims at this many events per block: big enough to amortise numpy's per-call
# overhead, small enough that generating one block never stalls a caller for long.
# The listing exchange of each tape (Polygon exchange ids): NOI imbalances come from the primary listing market.
LISTING_X = {1: 10, 2: 11, 3: 12}  # NYSE, NYSE Arca, Nasdaq
# LULD price bands: Tier 1 percentages by reference price (above $3, $0.75-$3); below $0.75 the lesser of $0.15 or 75%.
LULD_PCT_HIGH, LULD_PCT_MID = 0.05, 0.20
LULD_INDICATOR = 21  # the indicator of Polygon's LULD example
CLOSING_AUCTION = ("C", 1600)  # NOI auction type and time (hhmm Eastern)

EVENTS_PER_BLOCK = 1500
BLOCK_MS_RANGE = (10, 250)


@dataclass
class MarketConfig:
    """What to simulate and how busy. Rates are totals over a cluster's tickers (module docstring).

    ``options_ratio``, ``crypto_ratio`` and ``forex_ratio`` scale ``trades_per_second`` into the other clusters'
    rates; ``odd_lot_fraction`` is the share of stock trades under 100 shares (they carry condition 37). Tickers
    without a built-in profile get a seeded random starting price. The ``*_period_ms`` fields set how often each
    symbol publishes its scheduled events (LULD bands, NOI imbalances, FMV/LV values, XL2 book snapshots).
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
    minute_ms: int = 60_000  # the window of minute aggregates; shorter only to compress time in demos and tests
    # Scheduled events, one per symbol per period, each symbol at its own offset (module docstring of market).
    luld_period_ms: int = 30_000
    imbalance_period_ms: int = 5_000
    value_period_ms: int = 1_000  # FMV everywhere, LV on stocks
    book_period_ms: int = 250  # crypto XL2
    book_depth: int = 10
