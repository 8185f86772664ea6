"""Which firehose source serves which topic: ``PY`` from Pyth Hermes, every other native code from the
Polygon-protocol upstream (Polygon, ``UPSTREAM_URL`` or the simulated market). When replaying, neither: the
recording plays whatever was recorded, and the first demand starts it.

:class:`SourceRouter` turns the hub's "first subscriber / last subscriber" changes into demand on the right source;
it never touches a socket itself.
"""

from __future__ import annotations

from typing import Callable

from common import protocol
from common.clusters import CLUSTERS, PYTH_CODE, Cluster
from common.topics import Topic, native_expansion, parse_topic
from common.upstream_set import UpstreamSet
from firehose_proxy.sources.pyth.stream import PythSource

PYTH_IS_OFF = "Pyth prices are off on this firehose (PYTH_HERMES_URL=off)"

Tell = Callable[[str, bytes, Callable[[Topic], bool]], int]


def split_static(static: dict[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Static topics (``FIREHOSE_SUBSCRIBE``, already expanded) for the Polygon upstream and, as tickers, for Pyth."""
    polygon: dict[str, list[str]] = {}
    pyth: dict[str, list[str]] = {}
    for cluster, topics in static.items():
        for text in topics:
            topic = parse_topic(CLUSTERS[cluster], text)
            if topic.code == PYTH_CODE:
                pyth.setdefault(cluster, []).append(topic.ticker)
            else:
                polygon.setdefault(cluster, []).append(text)
    return polygon, pyth


def polygon_topics(cluster: Cluster, topic: Topic) -> list[str]:
    """What the Polygon-protocol upstream is asked for to serve ``topic`` (everything but ``PY``)."""
    return [str(t) for t in native_expansion(cluster, topic) if t.code != PYTH_CODE]


class SourceRouter:
    def __init__(self, upstreams: UpstreamSet | None, pyth: PythSource | None, tell: Tell,
                 on_demand: Callable[[], None] | None = None, pyth_off: bool = False) -> None:
        self.upstreams = upstreams
        self.pyth = pyth
        self.tell = tell
        self.on_demand = on_demand
        self.pyth_off = pyth_off

    def on_topics(self, cluster: Cluster, first: list[Topic], last: list[Topic]) -> None:
        if first and self.on_demand is not None:
            self.on_demand()
        for topics, change in ((first, "want"), (last, "unwant")):
            expanded = [t for topic in topics for t in native_expansion(cluster, topic)]
            native = [x for topic in topics for x in polygon_topics(cluster, topic)]
            prices = [t.ticker for t in expanded if t.code == PYTH_CODE]
            if native and self.upstreams is not None:
                getattr(self.upstreams.get(cluster), change)(native)
            if prices and self.pyth is not None:
                getattr(self.pyth, change)(cluster.name, prices)
            elif prices and self.pyth_off and change == "want":
                for topic in (t for t in topics if t.code == PYTH_CODE):
                    self.tell(cluster.name, protocol.error(f"{PYTH_IS_OFF}: {topic}"), lambda t, x=topic: t == x)
