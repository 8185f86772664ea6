"""The firehose: the only upstream connections (Polygon, any Polygon-protocol server, or the simulated market, and
Pyth Hermes), or a recording played instead of them.

It serves the tiers below through the shared hub and keeps each source subscribed to the union of their demand
(or a static list), recording every upstream frame when ``RECORD_DIR`` is set. Run: ``tickfan-firehose`` /
``python -m firehose_proxy``.
"""

from __future__ import annotations

import asyncio

from common.clock import wall_ns
from common.clusters import CLUSTERS
from common.frames import Frame
from common.hub import Hub
from common.metrics import Metrics
from common.notices import UpstreamNotices
from common.runner import run_process
from common.session import TopicPolicy
from common.upstream_set import UpstreamSet
from firehose_proxy.routing import SourceRouter, polygon_topics, split_static
from firehose_proxy.settings import FirehoseSettings
from firehose_proxy.sources import PYTH_OFF, open_pyth, open_source
from firehose_proxy.sources.pyth.stream import PythSource
from firehose_proxy.sources.recording.recorder import Recorder
from firehose_proxy.sources.recording.replay import Replayer
from firehose_proxy.static import BARS_ELSEWHERE, static_topics


async def serve(settings: FirehoseSettings, log, stop: asyncio.Event) -> None:
    metrics = Metrics("firehose")
    recorder = (Recorder(settings.record_dir, int(settings.record_rotate_mb * (1 << 20)), log, metrics)
                if settings.record_dir else None)
    source = endpoint = upstreams = pyth = replayer = router = None

    def extra_status() -> dict:
        return {
            "source": "replay" if replayer is not None else source.name if source is not None else None,
            "upstreams": upstreams.status() if upstreams is not None else {},
            "pyth": {"source": endpoint.name, **pyth.status()} if pyth is not None else None,
            "replay": replayer.status() if replayer is not None else None,
            "recording": recorder.status() if recorder is not None else None,
        }

    def health() -> list[str]:
        problems = upstreams.problems() if upstreams is not None else []
        if pyth is not None and pyth.state == "auth_failed":
            problems.append(f"pyth: {pyth.last_error}")
        return problems

    early: list = []  # demand that arrived while the sources were still opening

    def on_topics(cluster, first, last) -> None:
        if router is None:
            early.append((cluster, first, last))
        else:
            router.on_topics(cluster, first, last)

    # Listen first: a port in use is one clear line before any source starts.
    hub = Hub("firehose", settings, TopicPolicy(bars_unavailable=BARS_ELSEWHERE), log, metrics, on_topics,
              extra_status, health)
    await hub.start(settings.host, settings.port)

    def deliver(cluster: str, frame: Frame) -> None:
        """Every upstream frame enters the hub here (and the recording, first)."""
        if recorder is not None:
            recorder.write(cluster, frame.data, wall_ns())
        hub.publish_frame(cluster, frame)

    if settings.replay:
        replayer = Replayer(settings.replay, settings.replay_speed, deliver, log, metrics, backlog=hub.backlog_bytes,
                            announce=lambda obj: [hub.tell(c, obj, lambda t: True) for c in CLUSTERS])
        router = SourceRouter(None, None, hub.tell, on_demand=replayer.begin)
        log.warning("replaying", path=settings.replay, speed=settings.replay_speed,
                    message="playing a RECORDING instead of live sources")
    else:
        polygon_static, pyth_static = split_static(static_topics(settings.subscribe))
        source = await open_source(settings, log)
        upstreams = UpstreamSet(source.name, source.base_url, source.key, log, metrics, settings.upstream_grace_ms,
                                on_frame=deliver, static=polygon_static, ping_timeout_s=settings.upstream_timeout_s)
        UpstreamNotices(hub, source.name, polygon_topics, log).attach(upstreams)
        endpoint = await open_pyth(settings, log)
        if endpoint is not None:
            pyth = PythSource(endpoint.base_url, endpoint.key, log, metrics, settings.upstream_grace_ms, deliver,
                              hub.tell, settings.pyth_feeds_refresh_s, pyth_static, notices=hub)
        router = SourceRouter(upstreams, pyth, hub.tell, pyth_off=settings.pyth_hermes_url.strip().lower() == PYTH_OFF)
        upstreams.start_static()
        if pyth is not None:
            pyth.start()
    for change in early:
        router.on_topics(*change)
    early.clear()
    await stop.wait()
    log.info("shutting_down")
    if upstreams is not None:
        upstreams.stopping()
    await hub.close()
    for stopping in (upstreams, pyth, replayer):
        if stopping is not None:
            await stopping.stop()
    for closing in (source and source.close, endpoint and endpoint.close):
        if closing:
            await closing()
    if recorder is not None:
        await asyncio.to_thread(recorder.close)


def main(argv=None) -> int:
    return run_process("firehose", FirehoseSettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
