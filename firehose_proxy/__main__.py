"""The firehose: the only upstream connections (Polygon, any Polygon-protocol server, or the simulated market).

It serves the tiers below through the shared hub and keeps each upstream cluster subscribed to the union of
their demand (or a static list). Run: ``tickfan-firehose`` / ``python -m firehose_proxy``.
"""

from __future__ import annotations

import asyncio

from common.clusters import Cluster
from common.hub import Hub
from common.metrics import Metrics
from common.runner import run_process
from common.session import TopicPolicy
from common.topics import Topic, native_expansion
from common.upstream import UpstreamSet
from firehose_proxy.settings import FirehoseSettings
from firehose_proxy.sources import open_source
from firehose_proxy.static import BARS_ELSEWHERE, static_topics


async def serve(settings: FirehoseSettings, log, stop: asyncio.Event) -> None:
    metrics = Metrics("firehose")
    static = static_topics(settings.subscribe)
    source = await open_source(settings, log)
    hub: Hub
    upstreams = UpstreamSet(
        source.name, source.base_url, source.key, log, metrics, settings.upstream_grace_ms,
        on_frame=lambda cluster, frame: hub.publish_frame(cluster, frame), static=static,
    )

    def on_topics(cluster: Cluster, first: list[Topic], last: list[Topic]) -> None:
        up = upstreams.get(cluster)
        up.want([str(t) for topic in first for t in native_expansion(cluster, topic)])
        up.unwant([str(t) for topic in last for t in native_expansion(cluster, topic)])

    hub = Hub("firehose", settings, TopicPolicy(bars_unavailable=BARS_ELSEWHERE), log, metrics, on_topics,
              extra_status=lambda: {"source": source.name, "upstreams": upstreams.status()})
    await hub.start(settings.host, settings.port)
    upstreams.start_static()
    await stop.wait()
    log.info("shutting_down")
    await hub.close()
    await upstreams.stop()
    if source.close is not None:
        await source.close()


def main(argv=None) -> int:
    return run_process("firehose", FirehoseSettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
