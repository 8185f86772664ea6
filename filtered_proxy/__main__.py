"""A filtered proxy: what clients connect to (8765). Run more instances on other ports to scale out.

Native topics are taken from the firehose and ``NMs`` bars from the ms_aggregator, both on the client's one
connection; each upstream is asked for the union of this proxy's clients' topics.
Run: ``tickfan-proxy`` / ``python -m filtered_proxy``.
"""

from __future__ import annotations

import asyncio

from common.clusters import Cluster
from common.frames import Frame
from common.hub import Hub
from common.metrics import Metrics
from common.runner import run_process
from common.session import TopicPolicy
from common.tiers import UpstreamSet
from common.topics import Topic, native_expansion
from filtered_proxy.settings import ProxySettings

NO_AGGREGATOR = "millisecond bars are not available: this proxy has no MS_AGGREGATOR_URL"


async def serve(settings: ProxySettings, log, stop: asyncio.Event) -> None:
    metrics = Metrics("filtered_proxy")
    grace_ms = int(settings.upstream_grace_s * 1000)
    token = settings.internal_token or "tickfan-internal"
    hub: Hub

    def publish(cluster: str, frame: Frame) -> None:
        hub.publish(cluster, frame.events)

    firehose = UpstreamSet("firehose", settings.firehose_url, token, log, metrics, grace_ms, publish)
    aggregator = (
        UpstreamSet("ms_aggregator", settings.aggregator_url, token, log, metrics, grace_ms, publish)
        if settings.aggregator_url else None
    )

    def on_topics(cluster: Cluster, first: list[Topic], last: list[Topic]) -> None:
        for topics, change in ((first, "want"), (last, "unwant")):
            bars = [str(t) for t in topics if t.interval_ms is not None]
            native = [str(x) for t in topics if t.interval_ms is None for x in native_expansion(cluster, t)]
            if native:
                getattr(firehose.get(cluster), change)(native)
            if bars and aggregator is not None:
                getattr(aggregator.get(cluster), change)(bars)

    def extra_status() -> dict:
        return {"upstreams": {"firehose": firehose.status(), "ms_aggregator": aggregator.status() if aggregator else None}}

    policy = TopicPolicy(bars_unavailable=None if aggregator is not None else NO_AGGREGATOR)
    hub = Hub("filtered_proxy", settings, policy, log, metrics, on_topics, extra_status)
    await hub.start(settings.host, settings.port)
    await stop.wait()
    log.info("shutting_down")
    await hub.close()
    await firehose.stop()
    if aggregator is not None:
        await aggregator.stop()


def main(argv=None) -> int:
    return run_process("filtered_proxy", ProxySettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
