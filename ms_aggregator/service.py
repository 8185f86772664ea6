"""The aggregator's service: upstream frames in, bar books fed, due bars out to the hub (no sockets, no clock reads).

:class:`BarService` owns the bar book (and so the per-source clocks) of every cluster with trades. The shell
hands it each firehose frame with the local time of arrival, ticks :meth:`BarService.close_due` with the local
time, and tells it when the link to the firehose for a cluster goes down or comes back
(:meth:`BarService.link_changed`). It publishes closed bars and relayed aggregates through the hub it was given.
A frame it cannot handle is counted and skipped, never raised: nothing from the data may end the upstream task.
"""

from __future__ import annotations

from collections import Counter

from common.clusters import CLUSTERS, Cluster
from common.frames import Frame, event_from_object
from common.hub import Hub
from common.metrics import Metrics
from common.session import TopicPolicy
from common.topics import Topic, TopicError, native_expansion
from ms_aggregator.book import BarBook
from ms_aggregator.conditions import load_rules
from ms_aggregator.settings import AggregatorSettings

# Aggregates the aggregator relays so that a bars-only client can use 8768 alone.
RELAYED_CODES = frozenset({"A", "AM", "XA", "XAS"})
_LOG_EVERY_MS = 1000


class AggregatorPolicy(TopicPolicy):
    """The topics the aggregator serves: bars on clusters with trades, and the relayed aggregates of the cluster.
    Anything else (bare ``*`` where nothing is relayed, other codes) is refused at subscribe time."""

    def check(self, cluster: Cluster, text: str) -> Topic:
        topic = super().check(cluster, text)
        if topic.is_bare and not RELAYED_CODES & set(cluster.native_codes):
            raise TopicError(f"topic not available on this endpoint (no aggregates of {cluster.path} are relayed"
                             f" here; subscribe on the proxy): {text}")
        return topic


class BarService:
    """The bar books of every cluster with trades, fed from upstream frames, closed on a timer."""

    def __init__(self, settings: AggregatorSettings, hub: Hub, metrics: Metrics, log=None) -> None:
        self.hub = hub
        self.log = log
        self.books: dict[str, BarBook] = {}
        self.bad_frames: Counter[str] = Counter()
        self._last_complaint: dict[str, int] = {}
        for cluster in CLUSTERS.values():
            if cluster.has_bars:
                rules, warning = load_rules(settings.conditions_file or None, cluster.name)  # asset class == cluster
                if warning and log is not None:
                    log.warning("conditions_file_incomplete", cluster=cluster.name, detail=warning)
                self.books[cluster.name] = BarBook(
                    cluster.name, rules, settings.bar_grace_ms, late=settings.late_trades,
                    amend_window_ms=settings.amend_window_ms, amend_max_bars=settings.amend_max_bars,
                    hold_ms=int(settings.source_hold_s * 1000), idle_ms=int(settings.series_idle_s * 1000))
        books = self.books

        def per_cluster(read):
            return lambda: {(("cluster", c),): read(b) for c, b in books.items()}

        metrics.counter_from("late_trades", lambda: {
            (("cluster", c), ("outcome", outcome)): n for c, b in books.items()
            for outcome, n in (("dropped", b.late_trades - b.late_amended), ("amended", b.late_amended))},
            "Trades that arrived after their window closed, by what the late policy did with them.")
        metrics.counter_from("trades_in", per_cluster(lambda b: b.trades_in), "Trades added to bar books.")
        metrics.counter_from("bars_out", per_cluster(lambda b: b.bars_out), "Millisecond bars emitted (first editions).")
        metrics.counter_from("amended_bars", per_cluster(lambda b: b.amends.bars_out if b.amends else 0),
                             "Corrected bars re-emitted with rev (LATE_TRADES=amend).")
        metrics.counter_from("amend_given_up_bars", per_cluster(lambda b: b.amends.given_up if b.amends else 0),
                             "Kept bars given up before AMEND_WINDOW_MS because AMEND_MAX_BARS was reached.")
        metrics.counter_from("bar_bad_frames", lambda: {(("cluster", c),): n for c, n in self.bad_frames.items()},
                             "Firehose frames the aggregator could not handle (counted and skipped).")
        metrics.counter_from("malformed_trades", per_cluster(lambda b: b.decoder.malformed),
                             "Trade events missing a field or with one of the wrong type (counted and skipped).")
        metrics.counter_from("evicted_symbols", per_cluster(lambda b: b.evicted),
                             "Tickers given back after SERIES_IDLE_S without trades.")
        for name, help in (("open_bars", "Bars currently open."), ("live_series", "Series the books track."),
                           ("symbols", "Tickers the books track."), ("book_bytes", "Estimated memory of a book.")):
            metrics.gauge(name, per_cluster(lambda b, name=name: b.memory()[name]), help)
        metrics.gauge("clock_offset_ms", lambda: {
            (("cluster", c), ("source", str(key))): skew.offset
            for c, b in books.items() for key, skew in zip(b.clocks.keys, b.clocks.skews)},
            "Estimated local clock minus a source's trade clock, its transport latency included.")

    def on_frame(self, cluster: str, frame: Frame, local_ms: int) -> None:
        """Feed one firehose frame that arrived at local wall time ``local_ms``. Never raises."""
        try:
            book = self.books.get(cluster)
            if book is None:  # a cluster without trades: only relayed aggregates were asked for
                self.hub.publish(cluster, [e for e in frame.events if e.code in RELAYED_CODES])
                return
            decoder = book.decoder
            skipped = decoder.skipped
            batch = decoder.decode_frame(frame.data)  # trade-only frames never need splitting
            if len(batch):
                book.add(batch, local_ms)
            if decoder.skipped != skipped:  # aggregates (or other events) rode along: relay them
                self.hub.publish(cluster, [e for e in frame.events if e.code in RELAYED_CODES])
        except Exception as exc:  # noqa: BLE001 - a frame that cannot be handled is counted and skipped
            self._bad_frame(cluster, frame, local_ms, exc)

    def _bad_frame(self, cluster: str, frame: Frame, local_ms: int, exc: Exception) -> None:
        self.bad_frames[cluster] += 1
        if self.log is not None and local_ms - self._last_complaint.get(cluster, -_LOG_EVERY_MS) >= _LOG_EVERY_MS:
            self._last_complaint[cluster] = local_ms
            self.log.warning("bad_frame_skipped", cluster=cluster, error=f"{type(exc).__name__}: {exc}"[:300],
                             sample=bytes(frame.data[:200]).decode(errors="replace"),
                             skipped_total=self.bad_frames[cluster])

    def link_changed(self, cluster: str, up: bool, local_ms: int) -> None:
        """The firehose link (or the firehose's own upstream) for ``cluster`` went down or came back."""
        book = self.books.get(cluster)
        if book is None:
            return
        self._publish(cluster, book.close_due(local_ms))  # what was due goes out as it stands
        if up:
            book.link_up()
        else:
            book.link_down()

    def set_subscriptions(self, cluster: Cluster) -> None:
        book = self.books.get(cluster.name)
        if book is not None:
            book.set_subscriptions(
                (t.interval_ms, t.ticker) for t in self.hub.topic_counts[cluster.name] if t.interval_ms is not None
            )

    def close_due(self, local_ms: int) -> None:
        """Tick every book at local wall time ``local_ms`` and publish what closed."""
        for cluster, book in self.books.items():
            if len(book.clocks) or len(book.slots):
                self._publish(cluster, book.close_due(local_ms))

    def _publish(self, cluster: str, bars: list[bytes]) -> None:
        if bars:
            self.hub.publish(cluster, [event_from_object(raw) for raw in bars])

    def status(self) -> dict:
        out = {}
        for c, b in self.books.items():
            out[c] = {"late_trades": b.late_trades, "late_dropped": b.late_trades - b.late_amended,
                      "late_amended": b.late_amended, "late_policy": b.late, "trades_in": b.trades_in,
                      "bars_out": b.bars_out, "amended_bars": b.amends.bars_out if b.amends else 0,
                      "amend_given_up_bars": b.amends.given_up if b.amends else 0,
                      "grace_ms": b.grace_ms, "market_ms": b.market_ms, "bad_frames": self.bad_frames[c],
                      "malformed_trades": b.decoder.malformed,
                      "evicted_symbols": b.evicted, **b.memory(), "sources": b.clocks.status()}
        return out


def upstream_topics(cluster: Cluster, topic: Topic) -> list[str]:
    """What to ask the firehose for to serve ``topic``: trades for bars, the topic itself for aggregates."""
    if topic.interval_ms is not None:
        return [f"{cluster.trade_code}.{topic.ticker}"]
    return [str(t) for t in native_expansion(cluster, topic) if t.code in RELAYED_CODES]
