"""The ms_aggregator (8768): NMs millisecond bars from the firehose's trades, plus relayed aggregates.

Clients (a filtered proxy, or a person testing directly) subscribe ``NMs.TICKER`` / ``NMs.*`` on /stocks,
/options and /crypto, and the cluster's aggregate topics (``A``/``AM``, ``XA``/``XAS``), which are relayed from
the firehose. The aggregator asks the firehose only for the trades its subscriptions need, and tells the bar
books when its link to the firehose for a cluster goes down or comes back (so bars that may miss trades are
marked partial). This module only wires; it reads the clock and hands the readings in.
Run: ``tickfan-aggregator`` / ``python -m ms_aggregator``.
"""

from __future__ import annotations

import asyncio

from common.clock import wall_ms
from common.clusters import Cluster
from common.hub import Hub
from common.metrics import Metrics
from common.notices import UpstreamNotices
from common.runner import run_process
from common.topics import Topic
from common.upstream_set import UpstreamSet
from ms_aggregator.service import (
    RELAYED_CODES,
    AggregatorPolicy,
    BarService,
    upstream_topics,
)
from ms_aggregator.settings import AggregatorSettings


async def serve(settings: AggregatorSettings, log, stop: asyncio.Event) -> None:
    metrics = Metrics("ms_aggregator")
    hub: Hub
    bars: BarService
    firehose = UpstreamSet("firehose", settings.firehose_url, settings.upstream_token(), log, metrics,
                           settings.upstream_grace_ms, lambda cluster, frame: bars.on_frame(cluster, frame, wall_ms()),
                           ping_timeout_s=settings.upstream_timeout_s,
                           on_link=lambda cluster, up, reason: bars.link_changed(cluster, up, wall_ms()))

    def on_topics(cluster: Cluster, first: list[Topic], last: list[Topic]) -> None:
        if any(t.interval_ms is not None for t in first + last):
            bars.set_subscriptions(cluster)
        up = firehose.get(cluster)
        up.want([x for t in first for x in upstream_topics(cluster, t)])
        up.unwant([x for t in last for x in upstream_topics(cluster, t)])

    def extra_status() -> dict:
        return {"upstreams": {"firehose": firehose.status()}, "bars": bars.status()}

    async def close_bars_every(tick_s: float) -> None:
        complained = 0
        while True:
            now = wall_ms()
            try:
                bars.close_due(now)
            except Exception:  # a bug must not stop the bars for good: say so (once a second) and keep ticking
                if now - complained >= 1000:
                    complained = now
                    log.exception("bar_tick_failed")
            await asyncio.sleep(tick_s)

    hub = Hub("ms_aggregator", settings, AggregatorPolicy(codes=RELAYED_CODES), log, metrics, on_topics, extra_status,
              health=firehose.problems)
    bars = BarService(settings, hub, metrics, log)
    UpstreamNotices(hub, "firehose", upstream_topics, log).attach(firehose)
    await hub.start(settings.host, settings.port)
    ticker = asyncio.get_running_loop().create_task(close_bars_every(settings.bar_tick_ms / 1000))
    await stop.wait()
    log.info("shutting_down")
    firehose.stopping()
    ticker.cancel()
    bars.close_due(wall_ms())  # flush the windows that are due before saying goodbye
    await hub.close()
    await firehose.stop()


def main(argv=None) -> int:
    return run_process("ms_aggregator", AggregatorSettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
