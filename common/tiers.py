"""Wiring shared by the tier shells: one upstream client per cluster, created when a cluster is first wanted."""

from __future__ import annotations

import asyncio
from typing import Callable

from common.clusters import CLUSTERS, Cluster
from common.frames import Frame
from common.metrics import Metrics
from common.upstream import UpstreamAuthFailed, UpstreamClient

# Called with (cluster name, frame) for each upstream data frame.
ClusterFrameHandler = Callable[[str, Frame], None]


class UpstreamSet:
    """The upstream connections of one source (Polygon, the firehose, the aggregator), one per cluster, lazily."""

    def __init__(
        self,
        name: str,
        base_url: str,
        key: str,
        log,
        metrics: Metrics,
        grace_ms: int,
        on_frame: ClusterFrameHandler,
        static: dict[str, list[str]] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.log = log
        self.metrics = metrics
        self.grace_ms = grace_ms
        self.on_frame = on_frame
        self.static = static or {}
        self.clients: dict[str, UpstreamClient] = {}
        metrics.gauge(
            "upstream_connected",
            lambda: {(("upstream", f"{self.name}/{c}"),): float(u.state == "connected") for c, u in self.clients.items()},
            "1 while the upstream connection of a cluster is up.",
        )

    def get(self, cluster: Cluster) -> UpstreamClient:
        client = self.clients.get(cluster.name)
        if client is None:
            name = cluster.name
            client = UpstreamClient(
                f"{self.name}/{name}", f"{self.base_url}/{name}", self._key,
                lambda frame: self.on_frame(name, frame),
                self.log, self.metrics, self.grace_ms, static=self.static.get(name, ()),
            )
            self.clients[name] = client
            client.start().add_done_callback(self._ended)
        return client

    def start_static(self) -> None:
        for name in self.static:
            self.get(CLUSTERS[name])

    def _ended(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, UpstreamAuthFailed):  # auth failures were logged with a hint
            self.log.error("upstream_stopped", source=self.name, error=f"{type(exc).__name__}: {exc}")

    def status(self) -> dict:
        return {name: client.status() for name, client in self.clients.items()}

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.clients.values()), return_exceptions=True)
