"""The firehose: the only upstream connections (Polygon, any Polygon-protocol server, or the simulated market).

It serves the tiers below through the shared hub and keeps each upstream cluster subscribed to the union of
their demand (or a static list). Run: ``tickfan-firehose`` / ``python -m firehose_proxy``.
"""

from __future__ import annotations

import asyncio

from common.clusters import CLUSTERS, Cluster
from common.hub import Hub
from common.metrics import Metrics
from common.runner import run_process
from common.session import TopicPolicy
from common.settings import HubSettings, SettingsError
from common.tiers import UpstreamSet
from common.topics import Topic, TopicError, native_expansion, parse_topic, split_params
from firehose_proxy.settings import FirehoseSettings
from firehose_proxy.simulator import SimulatedUpstream, market_config

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


async def serve(settings: FirehoseSettings, log, stop: asyncio.Event) -> None:
    metrics = Metrics("firehose")
    static = static_topics(settings.subscribe)
    sim = None
    if settings.upstream_url:
        base, key, source = settings.upstream_url.rstrip("/"), settings.polygon_api_key or "tickfan", "upstream_url"
    elif settings.polygon_api_key:
        base, key, source = f"wss://{settings.polygon_host}", settings.polygon_api_key, "polygon"
    else:
        sim = SimulatedUpstream(
            market_config(settings.sim_rate, settings.sim_seed, settings.sim_tickers), HubSettings(), log
        )
        port = await sim.start("127.0.0.1", 0)
        base, key, source = f"ws://127.0.0.1:{port}", "simulated", "simulated"
        log.warning("simulated_market", message="no POLYGON_API_KEY or UPSTREAM_URL: serving SIMULATED market data",
                    rate=settings.sim_rate, seed=settings.sim_seed)

    hub: Hub
    upstreams = UpstreamSet(
        source, base, key, log, metrics, int(settings.upstream_grace_s * 1000),
        on_frame=lambda cluster, frame: hub.publish(cluster, frame.events), static=static,
    )

    def on_topics(cluster: Cluster, first: list[Topic], last: list[Topic]) -> None:
        up = upstreams.get(cluster)
        up.want([str(t) for topic in first for t in native_expansion(cluster, topic)])
        up.unwant([str(t) for topic in last for t in native_expansion(cluster, topic)])

    hub = Hub("firehose", settings, TopicPolicy(bars_unavailable=BARS_ELSEWHERE), log, metrics, on_topics,
              extra_status=lambda: {"source": source, "upstreams": upstreams.status()})
    await hub.start(settings.host, settings.port)
    upstreams.start_static()
    await stop.wait()
    log.info("shutting_down")
    await hub.close()
    await upstreams.stop()
    if sim is not None:
        await sim.close()


def main(argv=None) -> int:
    return run_process("firehose", FirehoseSettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
