"""Pyth Hermes price feeds (``GET /v2/price_feeds``) mapped onto tickfan's clusters and ticker conventions. Pure.

A feed's ``attributes.symbol`` is ``<AssetClass>.<rest>``. Where it is published, and as which ticker:

==========================  ============  =====================================================
Pyth symbol                 cluster       ``PY`` ticker
==========================  ============  =====================================================
``Crypto.BTC/USD``          ``crypto``    ``BTC-USD`` (Polygon's pair convention; ``/`` → ``-``)
``Equity.US.AAPL/USD``      ``stocks``    ``AAPL``; session variants keep their suffix (``AAPL.PRE``)
``FX.EUR/USD``              ``forex``     ``EUR/USD``
``Metal.XAU/USD``           ``forex``     ``XAU/USD`` (metals trade as currency pairs, as on Polygon)
``Rates.US10Y``             ``indices``   ``US10Y`` (yields are index values)
``Commodities.USOILSPOT``   ``indices``   ``USOILSPOT``
==========================  ============  =====================================================

Other asset classes (non-US equities, ...) are not mapped: Polygon's ``/stocks`` is US only. This module never
fetches anything: the shell hands it the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import msgspec

from common.topics import MAX_TICKER_LEN, WILDCARD

# asset-class prefix -> cluster
CLASS_CLUSTERS = {"Crypto": "crypto", "Equity": "stocks", "FX": "forex", "Metal": "forex", "Rates": "indices",
                  "Commodities": "indices"}


def normalize_id(feed_id: str) -> str:
    """Feed ids are 32 bytes of hex, case-insensitive, with or without ``0x``: lower case, no prefix."""
    feed_id = feed_id.strip().lower()
    return feed_id[2:] if feed_id.startswith("0x") else feed_id


def map_symbol(symbol: str) -> tuple[str, str] | None:
    """``(cluster, ticker)`` for a Pyth symbol, or None when tickfan does not publish it (module docstring)."""
    asset_class, dot, rest = symbol.partition(".")
    cluster = CLASS_CLUSTERS.get(asset_class)
    if cluster is None or not dot or not rest:
        return None
    if asset_class == "Crypto":
        ticker = rest.replace("/", "-")
    elif asset_class == "Equity":
        country, dot, pair = rest.partition(".")
        if country != "US" or not dot:
            return None
        base, slash, quote = pair.partition("/")
        suffix = quote.partition(".")[2]  # "USD.PRE" -> "PRE"
        ticker = base + ("." + suffix if suffix else "") if slash else pair
    else:
        ticker = rest
    if not ticker or len(ticker) > MAX_TICKER_LEN or any(c.isspace() or c == "," for c in ticker):
        return None
    return cluster, ticker


@dataclass(frozen=True, slots=True)
class Feed:
    id: str
    symbol: str
    cluster: str
    ticker: str


class _Meta(msgspec.Struct):
    id: str
    attributes: dict[str, str] = {}


_catalog_decoder = msgspec.json.Decoder(list[_Meta])


class FeedCatalog:
    """The feeds tickfan publishes, by id and by (cluster, ticker). ``unmapped`` counts the feeds it skipped."""

    def __init__(self, feeds: Iterable[Feed] = (), unmapped: int = 0) -> None:
        self.by_id: dict[str, Feed] = {}
        self.by_ticker: dict[tuple[str, str], Feed] = {}
        self.by_cluster: dict[str, list[Feed]] = {}
        self.unmapped = unmapped
        self.duplicates = 0
        for feed in sorted(feeds, key=lambda f: f.symbol):
            key = (feed.cluster, feed.ticker)
            if key in self.by_ticker:  # two symbols on one ticker: the first by symbol wins, deterministically
                self.duplicates += 1
                continue
            self.by_id[feed.id] = feed
            self.by_ticker[key] = feed
            self.by_cluster.setdefault(feed.cluster, []).append(feed)

    @classmethod
    def from_json(cls, data: bytes | str) -> "FeedCatalog":
        """From a ``/v2/price_feeds`` body; raises ``msgspec.DecodeError``/``ValidationError`` on anything else."""
        feeds, unmapped = [], 0
        for meta in _catalog_decoder.decode(data):
            symbol = meta.attributes.get("symbol", "")
            mapped = map_symbol(symbol)
            if mapped is None:
                unmapped += 1
                continue
            feeds.append(Feed(normalize_id(meta.id), symbol, *mapped))
        return cls(feeds, unmapped)

    def __len__(self) -> int:
        return len(self.by_id)

    def ids_for(self, cluster: str, ticker: str) -> list[str]:
        """The feed ids a ``PY.<ticker>`` topic on ``cluster`` stands for: one, every feed of the cluster for
        ``*``, or none for a ticker Hermes does not publish."""
        if ticker == WILDCARD:
            return [f.id for f in self.by_cluster.get(cluster, ())]
        feed = self.by_ticker.get((cluster, ticker))
        return [feed.id] if feed is not None else []
