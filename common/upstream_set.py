"""One source's upstream connections (Polygon, the firehose, the aggregator): one client per cluster, supervised.

A cluster's :class:`~common.upstream.UpstreamClient` is created when the cluster is first wanted. If its task ever
ends other than by a stop or a rejected key, it is started again with backoff and the restart is counted, so a bug
cannot leave a cluster silently unserved while ``/status`` says ``connected``.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from common.backoff import Backoff
from common.clusters import CLUSTERS, Cluster
from common.frames import Frame
from common.metrics import Metrics
from common.upstream import UpstreamAuthFailed, UpstreamClient

# Called with (cluster name, frame) for each upstream data frame.
ClusterFrameHandler = Callable[[str, Frame], None]
# Called with (cluster name, up, reason) when a cluster's feed is interrupted (False) or restored (True).
ClusterLinkHandler = Callable[[str, bool, str], None]
# Called with (cluster name, status, message, raw object) for per-topic errors and other statuses from upstream.
ClusterStatusHandler = Callable[[str, str, str, bytes], None]


class UpstreamSet:
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
        on_link: ClusterLinkHandler | None = None,
        on_status: ClusterStatusHandler | None = None,
        ping_timeout_s: float = 20.0,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.log = log
        self.metrics = metrics
        self.grace_ms = grace_ms
        self.on_frame = on_frame
        self.on_link = on_link
        self.on_status = on_status
        self.ping_timeout_s = ping_timeout_s
        self.static = static or {}
        self.clients: dict[str, UpstreamClient] = {}
        self.restarts = 0
        self._restart_backoff = Backoff(base_s=0.5, cap_s=10.0)
        self._stopping = False
        metrics.describe("upstream_task_restarts", "Upstream connection tasks restarted after ending unexpectedly.")
        metrics.gauge(
            "upstream_connected",
            lambda: {(("upstream", f"{self.name}/{c}"),): float(u.state == "connected") for c, u in self.clients.items()},
            "1 while the upstream connection of a cluster is up.",
        )

    def get(self, cluster: Cluster) -> UpstreamClient:
        client = self.clients.get(cluster.name)
        if client is None:
            name = cluster.name
            on_link, on_status = self.on_link, self.on_status
            client = UpstreamClient(
                f"{self.name}/{name}", f"{self.base_url}/{name}", self._key,
                lambda frame: self.on_frame(name, frame),
                self.log, self.metrics, self.grace_ms, static=self.static.get(name, ()),
                on_link=(lambda up, reason: on_link(name, up, reason)) if on_link is not None else None,
                on_status=(lambda st, msg, raw: on_status(name, st, msg, raw)) if on_status is not None else None,
                ping_interval_s=self.ping_timeout_s / 2, ping_timeout_s=self.ping_timeout_s / 2,
            )
            self.clients[name] = client
            self._start(client)
        return client

    def start_static(self) -> None:
        for name in self.static:
            self.get(CLUSTERS[name])

    def _start(self, client: UpstreamClient) -> None:
        client.start().add_done_callback(lambda task: self._ended(client, task))

    def _ended(self, client: UpstreamClient, task: asyncio.Task) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if isinstance(exc, UpstreamAuthFailed) or client.state == "failed":
            return  # logged with a hint; retrying a rejected key or a bad URL would only hammer the upstream
        self.restarts += 1
        self.metrics.inc("upstream_task_restarts", upstream=client.name)
        delay = self._restart_backoff.next_delay()
        self.log.error("upstream_task_ended", upstream=client.name, error=repr(exc), restart_in_s=round(delay, 3))
        asyncio.get_running_loop().call_later(delay, lambda: None if self._stopping else self._start(client))

    def problems(self) -> list[str]:
        """Why this source cannot serve some cluster and will not recover by itself (for ``/health``)."""
        return [f"{c.name} {c.state}: {c.last_error}" for c in self.clients.values() if c.state in ("auth_failed", "failed")]

    def status(self) -> dict:
        return {name: client.status() for name, client in self.clients.items()}

    def stopping(self) -> None:
        """A deliberate stop begins: no reconnects, warnings or announcements from here on."""
        self._stopping = True
        for client in self.clients.values():
            client.stopping()

    async def stop(self) -> None:
        self.stopping()
        await asyncio.gather(*(c.stop() for c in self.clients.values()), return_exceptions=True)
