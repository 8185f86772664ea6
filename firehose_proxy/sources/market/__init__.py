"""A seedable simulated market that speaks Polygon's websocket event shapes (DESIGN §3, "No key").

Pure and deterministic: no I/O, no clock reads, no global random state. Time is passed in; the same
:class:`MarketConfig` and the same sequence of :meth:`SimulatedMarket.advance` times give identical bytes.

What it simulates, per cluster:

- **stocks** ``T``/``Q``/``A``/``AM``: a geometric random walk of each ticker's mid, an NBBO around it in whole
  cents (quotes move the NBBO), trades at or inside the NBBO current at their time, SIP exchange ids, tapes,
  condition codes, per-ticker sequence numbers shared by trades and quotes, and per-second / per-minute aggregates
  built from the market's own trades with the SIP consolidated update rules.
  Scheduled per ticker: ``LULD`` bands around the midpoint (30 s), ``NOI`` closing-auction imbalances (5 s),
  ``FMV`` within the spread and ``LV`` the last sale (1 s).
- **options** ``T``/``Q``/``A``/``AM``: the same engine on OCC contracts, low volume; ``FMV`` every second.
- **crypto** ``XT``/``XQ``/``XAS``/``XA``: the same engine with fractional sizes; buys lift the ask, sells hit the
  bid; ``XL2`` book snapshots on the NBBO (250 ms) and ``FMV`` (1 s).
- **forex** ``C``/``CAS``/``CA``: quotes only; the bars are built from the bids, their ``v`` counts quotes; ``FMV``.
- **indices** ``V`` about once a second per index, ``A``/``AM`` built from those values.

Every native code of every cluster is produced but ``PY`` (Pyth prices come from the Hermes simulator).

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

from typing import Callable

import numpy as np

from firehose_proxy.sources.market.config import MarketConfig
from firehose_proxy.sources.market.crypto import Crypto
from firehose_proxy.sources.market.engine import ClusterStream
from firehose_proxy.sources.market.forex import Forex
from firehose_proxy.sources.market.indices import Indices
from firehose_proxy.sources.market.options import Options
from firehose_proxy.sources.market.stocks import Stocks

__all__ = ["MarketConfig", "SimulatedMarket"]

_CLUSTER_TYPES: tuple[Callable[[np.random.Generator, MarketConfig], ClusterStream], ...] = (
    Stocks, Options, Crypto, Forex, Indices)


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
        self._clusters: list[ClusterStream] = []
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
