"""A filtered proxy: what clients connect to (8765). Run more instances on other ports to scale out.

Native topics are taken from the firehose and ``NMs`` bars from the ms_aggregator, both on the client's one
connection; each upstream is asked for the union of this proxy's clients' topics (:mod:`filtered_proxy.routing`).
Run: ``tickfan-proxy`` / ``python -m filtered_proxy``.
"""

from __future__ import annotations

import asyncio

from common.frames import Frame
from common.hub import Hub
from common.metrics import Metrics
from common.notices import UpstreamNotices
from common.runner import run_process
from common.session import TopicPolicy
from common.upstream_set import UpstreamSet
from filtered_proxy.routing import TopicRouter
from filtered_proxy.settings import ProxySettings


async def serve(settings: ProxySettings, log, stop: asyncio.Event) -> None:
    metrics = Metrics("filtered_proxy")
    hub: Hub

    def publish(cluster: str, frame: Frame) -> None:
        hub.publish_frame(cluster, frame)

    def upstream(name: str, url: str) -> UpstreamSet:
        return UpstreamSet(name, url, settings.upstream_token(), log, metrics, settings.upstream_grace_ms, publish,
                           ping_timeout_s=settings.upstream_timeout_s)

    router = TopicRouter(
        upstream("firehose", settings.firehose_url),
        upstream("ms_aggregator", settings.aggregator_url) if settings.aggregator_url else None,
    )
    hub = Hub("filtered_proxy", settings, TopicPolicy(bars_unavailable=router.bars_unavailable), log, metrics,
              router.on_topics, extra_status=lambda: {"upstreams": router.status()},
              health=lambda: [p for s in router.sets() for p in s.problems()])
    UpstreamNotices(hub, "firehose", router.firehose_topics, log).attach(router.firehose)
    if router.aggregator is not None:
        UpstreamNotices(hub, "ms_aggregator", router.aggregator_topics, log).attach(router.aggregator)
    await hub.start(settings.host, settings.port)
    await stop.wait()
    log.info("shutting_down")
    for upstreams in router.sets():
        upstreams.stopping()
    await hub.close()
    await asyncio.gather(*(s.stop() for s in router.sets()))


def main(argv=None) -> int:
    return run_process("filtered_proxy", ProxySettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
