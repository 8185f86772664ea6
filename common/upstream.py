"""The one resilient upstream client every tier uses: a Polygon-protocol client per cluster (DESIGN §1, §3).

:class:`UpstreamClient` is one connection to one cluster; :class:`UpstreamSet` holds a source's clients (Polygon,
the firehose, the aggregator), one per cluster, created when a cluster is first wanted.

It authenticates, keeps the upstream subscribed to exactly the current demand (reference-counted, with a grace
period before unsubscribing), reconnects with exponential backoff and jitter after any drop or
``max_connections``, re-sends every topic after a reconnect, and hands each data frame to ``on_frame``.
``auth_failed`` stops it for good with a clear error: retrying a bad key only gets an account locked.
The key is sent in the auth message and never logged.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Iterable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI

from common import protocol
from common.backoff import Backoff
from common.clock import monotonic_ms
from common.clusters import CLUSTERS, Cluster
from common.demand import TopicDemand
from common.frames import STATUS, Frame, FrameError, decode_status, split_frame
from common.metrics import Metrics

SUBSCRIBE_CHUNK = 500  # topics per subscribe message, to keep control messages small
STABLE_AFTER_S = 10.0  # a connection that lived this long resets the backoff

# Called with each upstream data frame (status objects already handled and removed). May raise FrameError.
FrameHandler = Callable[[Frame], None]
# Called with (cluster name, frame) for each upstream data frame of an UpstreamSet.
ClusterFrameHandler = Callable[[str, Frame], None]
# Called with (True, "") when the link is up (authenticated), (False, reason) when an up link is lost.
LinkHandler = Callable[[bool, str], None]
# The same for an UpstreamSet, with the cluster name first.
ClusterLinkHandler = Callable[[str, bool, str], None]

# Status objects always carry this; data frames without it need no split here (compact or not, the value is quoted).
_STATUS_MARK = b'"status"'


class UpstreamAuthFailed(RuntimeError):
    pass


class UpstreamClient:
    def __init__(
        self,
        name: str,
        url: str,
        key: str,
        on_frame: FrameHandler,
        log,
        metrics: Metrics,
        grace_ms: int,
        static: Iterable[str] = (),
        backoff: Backoff | None = None,
        open_timeout_s: float = 10.0,
        on_link: LinkHandler | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._key = key
        self.on_frame = on_frame
        self.on_link = on_link
        self.log = log.bind(upstream=name, url=url)
        self.metrics = metrics
        self.demand = TopicDemand(grace_ms, static)
        self.backoff = backoff or Backoff()
        self.open_timeout_s = open_timeout_s
        self.state = "idle"
        self.link_up = False
        self.last_error = ""
        self.connects = 0
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._stopping = False
        for counter, help in (
            ("upstream_reconnects", "Upstream connections re-established after a drop."),
            ("upstream_frames", "Frames received from upstreams."),
            ("upstream_bad_frames", "Upstream frames that were not JSON arrays of events (skipped)."),
        ):
            metrics.describe(counter, help)
        self._frames = metrics.counter("upstream_frames", upstream=name)

    # -- demand ------------------------------------------------------------------------------------------------

    def want(self, topics: Iterable[str]) -> None:
        """One more downstream wants each topic; new ones are subscribed upstream at once."""
        new = self.demand.add(topics)
        if new:
            self._send("subscribe", new)

    def unwant(self, topics: Iterable[str]) -> None:
        """One downstream fewer wants each topic; a topic nobody wants is unsubscribed after the grace period."""
        self.demand.remove(topics, monotonic_ms())
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        due = self.demand.next_due_ms()
        if due is None or self._expiry is not None:
            return
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, (due - monotonic_ms()) / 1000), self._expire)

    def _expire(self) -> None:
        self._expiry = None
        gone = self.demand.due(monotonic_ms())
        if gone:
            self._send("unsubscribe", gone)
        self._schedule_expiry()

    def _send(self, action: str, topics: list[str]) -> None:
        ws = self._ws
        if ws is None or self.state != "connected":
            return  # sent on (re)connect from the demand
        for i in range(0, len(topics), SUBSCRIBE_CHUNK):
            message = protocol.encode_client_message(action, ",".join(topics[i : i + SUBSCRIBE_CHUNK]))
            # websockets serialises sends in call order; tasks run in creation order.
            asyncio.get_running_loop().create_task(self._send_quietly(ws, message))
        self.log.debug("upstream_" + action, topics=len(topics))

    @staticmethod
    async def _send_quietly(ws: ClientConnection, message: bytes) -> None:
        try:
            await ws.send(message, text=True)
        except ConnectionClosed:
            pass  # the reconnect re-sends the whole demand

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"upstream-{self.name}")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        if self._expiry is not None:
            self._expiry.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, UpstreamAuthFailed):
                pass
        self.state = "stopped"

    async def run(self) -> None:
        """Connect and stay connected until stopped; raises :class:`UpstreamAuthFailed` on a rejected key."""
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._session()
                self.last_error = "connection closed by the upstream"
            except UpstreamAuthFailed as exc:
                self.state = "auth_failed"
                self.last_error = str(exc)
                self.log.error("upstream_auth_failed", error=str(exc), hint="check the key; not retrying")
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, FrameError, _Retry) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.log.warning("upstream_disconnected", error=self.last_error)
            except InvalidURI as exc:
                self.state = "failed"
                self.last_error = str(exc)
                self.log.error("upstream_bad_url", error=str(exc))
                raise
            finally:
                self._ws = None
            if self._stopping:
                break
            self._set_link(False, self.last_error)
            self.state = "backoff"
            if time.monotonic() - started >= STABLE_AFTER_S:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self.log.info("upstream_reconnecting", in_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        self.state = "connecting"
        async with connect(
            self.url, open_timeout=self.open_timeout_s, max_size=None, compression=None, close_timeout=1
        ) as ws:
            async with asyncio.timeout(self.open_timeout_s):
                await self._expect(ws, "connected")
                await ws.send(protocol.encode_client_message("auth", self._key), text=True)
                status, message = await self._first_status(ws)
            if status == "auth_failed":
                raise UpstreamAuthFailed(f"{self.url} rejected the key: {message}")
            if status != "auth_success":
                raise _Retry(f"upstream answered auth with {status}: {message}")
            self.connects += 1
            if self.connects > 1:
                self.metrics.inc("upstream_reconnects", upstream=self.name)
            self._ws = ws
            self.state = "connected"
            self.log.info("upstream_connected", topics=len(self.demand.wanted))
            self._set_link(True, "")
            self._send("subscribe", sorted(self.demand.wanted))
            recv = ws.recv
            while True:
                try:
                    message = await recv(decode=False)  # the frame's bytes as they came: no str round trip
                except ConnectionClosedOK:
                    return
                self._on_message(message)

    def _set_link(self, up: bool, reason: str) -> None:
        if up == self.link_up:
            return
        self.link_up = up
        if self.on_link is not None:
            self.on_link(up, reason)

    def _on_message(self, data: bytes) -> None:
        self._frames.n += 1
        try:
            if _STATUS_MARK in data:
                events = split_frame(data)
                for event in events:
                    if event.code == STATUS:
                        self._on_status(*decode_status(event.raw))
                data_events = [e for e in events if e.code != STATUS]
                if not data_events:
                    return
                frame = Frame(data, data_events) if len(data_events) == len(events) else _rebuilt(data_events)
            else:
                frame = Frame(data)
            self.on_frame(frame)
        except FrameError as exc:
            self.metrics.inc("upstream_bad_frames", upstream=self.name)
            self.log.warning("upstream_bad_frame", error=str(exc), size=len(data))

    def _on_status(self, status: str, message: str) -> None:
        if status in ("success", "connected", "auth_success"):
            self.log.debug("upstream_status", status=status, message=message)
        else:
            self.log.warning("upstream_status", status=status, message=message)

    @staticmethod
    async def _first_status(ws: ClientConnection) -> tuple[str, str]:
        events = split_frame(await ws.recv(decode=False))
        for event in events:
            if event.code == STATUS:
                return decode_status(event.raw)
        raise _Retry("upstream sent data before answering auth")

    async def _expect(self, ws: ClientConnection, wanted: str) -> None:
        status, message = await self._first_status(ws)
        if status != wanted:
            raise _Retry(f"upstream greeted with {status}: {message}")

    def status(self) -> dict:
        return {
            "url": self.url,
            "state": self.state,
            "connects": self.connects,
            "reconnects": max(0, self.connects - 1),
            "topics": len(self.demand.wanted),
            "last_error": self.last_error,
        }


def _rebuilt(events: list) -> Frame:
    """A frame of just these events (a status was taken out of a mixed frame)."""
    return Frame(b"[" + b",".join(e.raw for e in events) + b"]", events)


class _Retry(Exception):
    """An upstream answer that is worth a reconnect with backoff (max_connections, a garbled greeting)."""


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
        on_link: ClusterLinkHandler | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.log = log
        self.metrics = metrics
        self.grace_ms = grace_ms
        self.on_frame = on_frame
        self.on_link = on_link
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
                on_link=(lambda up, reason: self.on_link(name, up, reason)) if self.on_link is not None else None,
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
