"""Static upstream subscriptions (``FIREHOSE_SUBSCRIBE``): topics the firehose keeps subscribed whatever the demand."""

from __future__ import annotations

from common.clusters import CLUSTERS
from common.settings import SettingsError
from common.topics import TopicError, native_expansion, parse_topic, split_params

BARS_ELSEWHERE = "millisecond bars are served by the ms_aggregator (8768) and filtered_proxy (8765), not the firehose"


def static_topics(spec: str) -> dict[str, list[str]]:
    """``FIREHOSE_SUBSCRIBE``: comma list, stocks unless prefixed ``cluster/`` (``crypto/XT.*``)."""
    out: dict[str, list[str]] = {}
    for item in split_params(spec):
        name, _, text = item.partition("/") if "/" in item.split(".", 1)[0] else ("stocks", "", item)
        cluster = CLUSTERS.get(name)
        if cluster is None:
            raise SettingsError(f"FIREHOSE_SUBSCRIBE: unknown cluster {name!r} in {item!r}")
        try:
            topic = parse_topic(cluster, text)
        except TopicError as exc:
            raise SettingsError(f"FIREHOSE_SUBSCRIBE: {exc}") from None
        if topic.interval_ms is not None:
            raise SettingsError(f"FIREHOSE_SUBSCRIBE: {BARS_ELSEWHERE}: {item}")
        out.setdefault(cluster.name, []).extend(str(t) for t in native_expansion(cluster, topic))
    return out
