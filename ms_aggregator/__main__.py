"""The ms_aggregator (8768): NMs millisecond bars from the firehose's trades, plus relayed aggregates.

Clients (a filtered proxy, or a person testing directly) subscribe ``NMs.TICKER`` / ``NMs.*`` on /stocks,
/options and /crypto, and the cluster's aggregate topics (``A``/``AM``, ``XA``/``XAS``), which are relayed from
the firehose. The aggregator asks the firehose only for the trades its subscriptions need.
Run: ``tickfan-aggregator`` / ``python -m ms_aggregator``.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from common.bars import BarBook, ClockSkew
from common.clusters import CLUSTERS, Cluster
from common.conditions import ConditionRules
from common.frames import Frame, FrameError, event_from_object
from common.hub import Hub
from common.metrics import Metrics
from common.runner import run_process
from common.session import TopicPolicy
from common.tiers import UpstreamSet
from common.topics import Topic, native_expansion
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
        metrics.gauge("late_trades", lambda: {(("cluster", c),): b.late_trades for c, b in self.books.items()},
                      "Trades that arrived after their window closed (dropped, not merged).")
        metrics.gauge("trades_in", lambda: {(("cluster", c),): b.trades_in for c, b in self.books.items()},
                      "Trades added to bar books.")
        metrics.gauge("bars_out", lambda: {(("cluster", c),): b.bars_out for c, b in self.books.items()},
                      "Millisecond bars emitted.")
        metrics.gauge("open_bars", lambda: {(("cluster", c),): b.open_bars for c, b in self.books.items()},
                      "Bars currently open.")
        metrics.gauge("clock_offset_ms", lambda: {(("cluster", c),): s.offset for c, s in self.skews.items()},
                      "Estimated local clock minus trade clock, transport latency included.")

    def on_frame(self, cluster: str, frame: Frame) -> None:
        book = self.books[cluster]
        decoder = book.decoder
        skipped = decoder.skipped
        try:
            batch = decoder.decode_frame(frame.data)  # trade-only frames never need splitting
        except msgspec.DecodeError as exc:
            raise FrameError(str(exc)) from None
        if len(batch):
            self.skews[cluster].observe(_wall_ms(), batch.max_t)
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

    def close_due(self) -> None:
        now = _wall_ms()
        for cluster, book in self.books.items():
            if not book.open_bars:
                continue
            bars = book.close_due(self.skews[cluster].market_now(now))
            if bars:
                self.hub.publish(cluster, [event_from_object(raw) for raw in bars])

    async def run(self, tick_s: float) -> None:
        while True:
            self.close_due()
            await asyncio.sleep(tick_s)


def upstream_topics(cluster: Cluster, topic: Topic) -> list[str]:
    """What to ask the firehose for to serve ``topic``: trades for bars, the topic itself for aggregates."""
    if topic.interval_ms is not None:
        return [f"{cluster.trade_code}.{topic.ticker}"]
    return [str(t) for t in native_expansion(cluster, topic) if t.code in RELAYED_CODES]


async def serve(settings: AggregatorSettings, log, stop: asyncio.Event) -> None:
    metrics = Metrics("ms_aggregator")
    token = settings.internal_token or "tickfan-internal"
    hub: Hub
    bars: BarService
    firehose = UpstreamSet("firehose", settings.firehose_url, token, log, metrics,
                           int(settings.upstream_grace_s * 1000), lambda cluster, frame: bars.on_frame(cluster, frame))

    def on_topics(cluster: Cluster, first: list[Topic], last: list[Topic]) -> None:
        if any(t.interval_ms is not None for t in first + last):
            bars.set_subscriptions(cluster)
        up = firehose.get(cluster)
        up.want([x for t in first for x in upstream_topics(cluster, t)])
        up.unwant([x for t in last for x in upstream_topics(cluster, t)])

    def extra_status() -> dict:
        return {
            "upstreams": {"firehose": firehose.status()},
            "bars": {
                c: {"late_trades": b.late_trades, "trades_in": b.trades_in, "bars_out": b.bars_out,
                    "open_bars": b.open_bars, "clock_offset_ms": bars.skews[c].offset, "grace_ms": b.grace_ms}
                for c, b in bars.books.items()
            },
        }

    hub = Hub("ms_aggregator", settings, TopicPolicy(codes=RELAYED_CODES), log, metrics, on_topics, extra_status)
    bars = BarService(settings, hub, metrics)
    await hub.start(settings.host, settings.port)
    ticker = asyncio.get_running_loop().create_task(bars.run(settings.bar_tick_ms / 1000))
    await stop.wait()
    log.info("shutting_down")
    ticker.cancel()
    bars.close_due()  # flush the windows that are due before saying goodbye
    await hub.close()
    await firehose.stop()


def _wall_ms() -> int:
    return int(time.time() * 1000)


def main(argv=None) -> int:
    return run_process("ms_aggregator", AggregatorSettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
