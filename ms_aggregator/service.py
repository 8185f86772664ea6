"""The aggregator's service: upstream frames in, bar books fed, due bars out to the hub (no sockets, no clock reads).

:class:`BarService` owns the bar book and market clock of every cluster with trades. The shell hands it each
firehose frame with the local time of arrival, and ticks :meth:`BarService.close_due` with the local time;
it publishes closed bars and relayed aggregates through the hub it was given.
"""

from __future__ import annotations

import msgspec

from common.clusters import CLUSTERS, Cluster
from common.frames import Frame, FrameError, event_from_object
from common.hub import Hub
from common.metrics import Metrics
from common.topics import Topic, native_expansion
from ms_aggregator.book import BarBook
from ms_aggregator.clock import ClockSkew
from ms_aggregator.conditions import ConditionRules
from ms_aggregator.settings import AggregatorSettings

# Aggregates the aggregator relays so that a bars-only client can use 8768 alone.
RELAYED_CODES = frozenset({"A", "AM", "XA", "XAS"})


class BarService:
    """The bar books of every cluster with trades, fed from upstream frames, closed on a timer."""

    def __init__(self, settings: AggregatorSettings, hub: Hub, metrics: Metrics) -> None:
        self.hub = hub
        self.books: dict[str, BarBook] = {}
        self.skews: dict[str, ClockSkew] = {}
        for cluster in CLUSTERS.values():
            if cluster.has_bars:
                rules = ConditionRules.load(settings.conditions_file or None, cluster.name)  # asset class == cluster name
                self.books[cluster.name] = BarBook(cluster.name, rules, settings.bar_grace_ms)
                self.skews[cluster.name] = ClockSkew()
        metrics.counter_from("late_trades", lambda: {(("cluster", c),): b.late_trades for c, b in self.books.items()},
                      "Trades that arrived after their window closed (dropped, not merged).")
        metrics.counter_from("trades_in", lambda: {(("cluster", c),): b.trades_in for c, b in self.books.items()},
                      "Trades added to bar books.")
        metrics.counter_from("bars_out", lambda: {(("cluster", c),): b.bars_out for c, b in self.books.items()},
                      "Millisecond bars emitted.")
        metrics.gauge("open_bars", lambda: {(("cluster", c),): b.open_bars for c, b in self.books.items()},
                      "Bars currently open.")
        metrics.gauge("clock_offset_ms", lambda: {(("cluster", c),): s.offset for c, s in self.skews.items()},
                      "Estimated local clock minus trade clock, transport latency included.")

    def on_frame(self, cluster: str, frame: Frame, local_ms: int) -> None:
        """Feed one firehose frame that arrived at local wall time ``local_ms``."""
        book = self.books[cluster]
        decoder = book.decoder
        skipped = decoder.skipped
        try:
            batch = decoder.decode_frame(frame.data)  # trade-only frames never need splitting
        except msgspec.DecodeError as exc:
            raise FrameError(str(exc)) from None
        if len(batch):
            self.skews[cluster].observe(local_ms, batch.max_t)
            book.add(batch)
        if decoder.skipped != skipped:  # aggregates (or other events) rode along: relay them
            trade_code = CLUSTERS[cluster].trade_code
            self.hub.publish(cluster, [e for e in frame.events if e.code != trade_code])

    def set_subscriptions(self, cluster: Cluster) -> None:
        book = self.books.get(cluster.name)
        if book is not None:
            book.set_subscriptions(
                (t.interval_ms, t.ticker) for t in self.hub.topic_counts[cluster.name] if t.interval_ms is not None
            )

    def close_due(self, local_ms: int) -> None:
        """Publish every bar whose window has closed by local wall time ``local_ms`` (mapped to market time)."""
        for cluster, book in self.books.items():
            if not book.open_bars:
                continue
            bars = book.close_due(self.skews[cluster].market_now(local_ms))
            if bars:
                self.hub.publish(cluster, [event_from_object(raw) for raw in bars])

    def status(self) -> dict:
        return {
            c: {"late_trades": b.late_trades, "trades_in": b.trades_in, "bars_out": b.bars_out,
                "open_bars": b.open_bars, "clock_offset_ms": self.skews[c].offset, "grace_ms": b.grace_ms}
            for c, b in self.books.items()
        }


def upstream_topics(cluster: Cluster, topic: Topic) -> list[str]:
    """What to ask the firehose for to serve ``topic``: trades for bars, the topic itself for aggregates."""
    if topic.interval_ms is not None:
        return [f"{cluster.trade_code}.{topic.ticker}"]
    return [str(t) for t in native_expansion(cluster, topic) if t.code in RELAYED_CODES]
