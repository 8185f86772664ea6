"""The simulated Pyth market behind the Hermes simulator: feeds and per-slot price updates in Hermes' own payload
shapes (``/v2/price_feeds`` metadata, ``/v2/updates/price/stream`` updates). Pure: time is an argument.

Prices are seeded random walks that start at the simulated Polygon market's prices (the same tickers: stocks,
crypto pairs, forex pairs) plus two metals and two treasury yields, so ``PY.AAPL`` sits near ``T.AAPL``'s level.
Every slot (400 ms, as on Pythnet) every feed publishes; ``publish_time`` is the slot's Unix second, so feeds
inside one second repeat it, as on Hermes. There are no session hours: equities publish all day.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterable

import msgspec
import numpy as np

from firehose_proxy.sources.market.config import (
    CRYPTO_PROFILES,
    FOREX_PROFILES,
    STOCK_PROFILES,
    MarketConfig,
)

SLOT_MS = 400
EMA_SLOTS = 9000  # Pyth's EMA spans about an hour of slots
MAX_CATCH_UP = 100  # slots stepped at most per advance() after a stall; older ones are skipped


@dataclass(frozen=True)
class SimFeed:
    symbol: str  # Pyth symbol, e.g. Crypto.BTC/USD
    asset_type: str  # Hermes' attribute: Crypto, Equity, FX, Metal, Rates
    price: float
    expo: int
    sigma: float  # volatility per sqrt(second)

    @property
    def id(self) -> str:
        return feed_id(self.symbol)


def feed_id(symbol: str) -> str:
    """A stable 32-byte hex id per symbol (the real ids are hashes too)."""
    return hashlib.sha256(b"tickfan-hermes-sim:" + symbol.encode()).hexdigest()


EXTRA_FEEDS = (
    SimFeed("Metal.XAU/USD", "Metal", 2650.0, -3, 1e-4),
    SimFeed("Metal.XAG/USD", "Metal", 31.0, -5, 1.5e-4),
    SimFeed("Rates.US10Y", "Rates", 4.25, -6, 5e-5),
    SimFeed("Rates.US2Y", "Rates", 4.1, -6, 5e-5),
)


def default_feeds(config: MarketConfig) -> list[SimFeed]:
    """A feed for every ticker of the simulated market's stocks, crypto and forex, plus metals and yields."""
    feeds = [SimFeed(f"Equity.US.{t}/USD", "Equity", STOCK_PROFILES.get(t, (100.0, 3))[0], -5, 1.5e-4)
             for t in config.stock_tickers]
    feeds += [SimFeed(f"Crypto.{p.replace('-', '/')}", "Crypto", CRYPTO_PROFILES.get(p, (10.0, 4))[0], -8, 1.2e-4)
              for p in config.crypto_pairs]
    feeds += [SimFeed(f"FX.{p}", "FX", FOREX_PROFILES.get(p, (1.0, 5))[0], -5, 2e-5) for p in config.forex_pairs]
    return feeds + list(EXTRA_FEEDS)


class _Price(msgspec.Struct):
    price: str
    conf: str
    expo: int
    publish_time: int


class _Metadata(msgspec.Struct):
    slot: int
    proof_available_time: int
    prev_publish_time: int


class _Parsed(msgspec.Struct):
    id: str
    price: _Price
    ema_price: _Price
    metadata: _Metadata


class _Binary(msgspec.Struct):
    encoding: str
    data: list[str]


class _Update(msgspec.Struct):
    binary: _Binary
    parsed: list[_Parsed]


class _FeedMetadata(msgspec.Struct):
    id: str
    attributes: dict[str, str]


_encode = msgspec.json.Encoder().encode


class HermesMarket:
    """Every feed's price, confidence and EMA, stepped once per slot."""

    def __init__(self, feeds: Iterable[SimFeed], seed: int, start_ms: int) -> None:
        self.feeds = list(feeds)
        self.ids = [f.id for f in self.feeds]
        self.index = {fid: k for k, fid in enumerate(self.ids)}
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.expo = np.array([f.expo for f in self.feeds], np.int64)
        self.unit = 10.0 ** self.expo.astype(np.float64)
        self.logp = np.log(np.array([f.price for f in self.feeds], np.float64))
        self.step_sigma = np.array([f.sigma for f in self.feeds]) * math.sqrt(SLOT_MS / 1000)
        self.ema = np.exp(self.logp)
        self.slot_ms = int(start_ms) // SLOT_MS  # slots are numbered from the epoch: stable across restarts
        self.slot = self.slot_ms - 1
        self.publish_time = int(start_ms) // 1000
        self.prev_publish_time = self.publish_time
        self._step(int(start_ms))

    def catalog_json(self, asset_type: str = "", query: str = "") -> bytes:
        """The ``/v2/price_feeds`` body, filtered like Hermes by ``asset_type`` and a ``query`` substring."""
        out = []
        for f in self.feeds:
            if asset_type and f.asset_type.lower() != asset_type.lower():
                continue
            if query and query.lower() not in f.symbol.lower():
                continue
            rest = f.symbol.split(".", 1)[1]
            pair = rest.split(".", 1)[1] if f.asset_type == "Equity" else rest
            base, _, quote = pair.partition("/")
            attrs = {"asset_type": f.asset_type, "base": base, "description": f"{base} / {quote or 'YIELD'}",
                     "display_symbol": pair, "generic_symbol": pair.replace("/", ""), "quote_currency": quote or "USD",
                     "symbol": f.symbol}
            if f.asset_type == "Equity":
                attrs["country"] = "US"
            out.append(_FeedMetadata(f.id, dict(sorted(attrs.items()))))
        return _encode(out)

    def missing(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if i not in self.index]

    def advance(self, now_ms: int) -> bool:
        """Step every slot boundary passed by ``now_ms``; True if a new slot began."""
        due = int(now_ms) // SLOT_MS - self.slot_ms
        if due <= 0:
            return False
        self.slot_ms += due
        for _ in range(min(due, MAX_CATCH_UP)):
            self._step(int(now_ms))
        self.slot = self.slot_ms
        return True

    def _step(self, now_ms: int) -> None:
        self.logp += self.rng.standard_normal(len(self.feeds)) * self.step_sigma
        price = np.exp(self.logp)
        self.ema += (price - self.ema) * (2.0 / (EMA_SLOTS + 1))
        self.mantissa = np.rint(price / self.unit).astype(np.int64)
        self.ema_mantissa = np.rint(self.ema / self.unit).astype(np.int64)
        self.conf = np.maximum(1, np.rint(price * self.rng.uniform(2e-5, 2e-4, len(self.feeds)) / self.unit)
                               ).astype(np.int64)
        self.slot += 1
        self.prev_publish_time, self.publish_time = self.publish_time, now_ms // 1000

    def update(self, ids: list[str], received_s: int) -> bytes:
        """One SSE payload: the current slot's update of each feed in ``ids`` (all known), as Hermes writes it."""
        parsed = []
        for fid in ids:
            k = self.index[fid]
            expo = int(self.expo[k])
            parsed.append(_Parsed(
                fid,
                _Price(str(int(self.mantissa[k])), str(int(self.conf[k])), expo, self.publish_time),
                _Price(str(int(self.ema_mantissa[k])), str(int(self.conf[k])), expo, self.publish_time),
                _Metadata(self.slot, received_s, self.prev_publish_time)))
        # The signed accumulator update Hermes sends beside the parsed prices: opaque here, hex like the real one.
        blob = "504e4155" + f"{self.slot:016x}" + "".join(fid[:16] for fid in ids)
        return _encode(_Update(_Binary("hex", [blob]), parsed))
