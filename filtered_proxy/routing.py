"""Which tier serves which topic: native topics come from the firehose, ``NMs`` bars from the ms_aggregator.

:class:`TopicRouter` turns the hub's "first subscriber / last subscriber" changes into demand on the right
upstream. It never touches a socket itself: the upstream sets do.
"""

from __future__ import annotations

from common.clusters import Cluster
from common.topics import Topic, native_expansion
from common.upstream_set import UpstreamSet

NO_AGGREGATOR = "millisecond bars are not available: this proxy has no MS_AGGREGATOR_URL"


class TopicRouter:
    def __init__(self, firehose: UpstreamSet, aggregator: UpstreamSet | None) -> None:
        self.firehose = firehose
        self.aggregator = aggregator

    @property
    def bars_unavailable(self) -> str | None:
        """Why bars cannot be served, or None when they can."""
        return None if self.aggregator is not None else NO_AGGREGATOR

    @staticmethod
    def firehose_topics(cluster: Cluster, topic: Topic) -> list[str]:
        """What the firehose is asked for to serve ``topic``: native topics (bare ``*`` as every ``CODE.*``)."""
        return [] if topic.interval_ms is not None else [str(x) for x in native_expansion(cluster, topic)]

    @staticmethod
    def aggregator_topics(cluster: Cluster, topic: Topic) -> list[str]:
        """What the aggregator is asked for to serve ``topic``: the bar topic itself."""
        return [str(topic)] if topic.interval_ms is not None else []

    def on_topics(self, cluster: Cluster, first: list[Topic], last: list[Topic]) -> None:
        """Ask upstreams for topics that gained their first subscriber; release those that lost their last."""
        for topics, change in ((first, "want"), (last, "unwant")):
            native = [x for t in topics for x in self.firehose_topics(cluster, t)]
            bars = [x for t in topics for x in self.aggregator_topics(cluster, t)]
            if native:
                getattr(self.firehose.get(cluster), change)(native)
            if bars and self.aggregator is not None:
                getattr(self.aggregator.get(cluster), change)(bars)

    def sets(self) -> list[UpstreamSet]:
        return [s for s in (self.firehose, self.aggregator) if s is not None]

    def status(self) -> dict:
        return {"firehose": self.firehose.status(),
                "ms_aggregator": self.aggregator.status() if self.aggregator is not None else None}
