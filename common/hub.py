"""The Polygon-protocol hub every tier serves its clients with (DESIGN §1, §2): a thin asyncio shell.

Protocol state lives in :class:`common.session.Session`, routing in :class:`common.topic_index.TopicIndex`,
framing in :mod:`common.frames`. The hub moves bytes: it reads client messages, applies session replies,
and fans events out through one bounded, coalescing outgoing buffer per client. Fan-out never waits on a
client: a client whose buffer overflows is told ``slow_consumer`` and closed with 1013. The same port answers
plain ``GET /health``, ``/status`` (JSON) and ``/metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from http import HTTPStatus
from typing import Callable, Iterable

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from common import protocol
from common.clusters import CLUSTERS, Cluster, cluster_for_path
from common.frames import Event, pack_frames
from common.metrics import Metrics
from common.session import Reply, Session, TopicPolicy
from common.settings import HubSettings, SettingsError, is_loopback
from common.topic_index import TopicIndex
from common.topics import Topic

MAX_WIRE_MESSAGE = 1 << 20  # client messages beyond this are refused by websockets itself (close 1009)
CLOSE_TIMEOUT_S = 2.0

# Called with (cluster, topics that gained their first subscriber, topics that lost their last one).
TopicsChanged = Callable[[Cluster, list[Topic], list[Topic]], None]

_ids = itertools.count(1)


class Client:
    """One connected client: its session and its outgoing buffer."""

    __slots__ = ("id", "ws", "session", "pending", "pending_bytes", "wake", "writer", "closing", "remote")

    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.session = session
        self.pending: list = []  # event objects (bytes-like) not yet handed to the socket
        self.pending_bytes = 0
        self.wake = asyncio.Event()
        self.writer: asyncio.Task | None = None
        self.closing = False
        self.remote = ws.remote_address[0] if ws.remote_address else "?"


def check_exposure(host: str, keys: frozenset[str], internal_token: str) -> None:
    """Refuse to serve beyond loopback without client keys, and keys without an internal token (DESIGN §4)."""
    if not keys and not is_loopback(host):
        raise SettingsError(
            f"refusing to listen on {host} with no client keys: set TICKFAN_API_KEYS or TICKFAN_KEYS_FILE, "
            "or bind to 127.0.0.1"
        )
    if keys and not internal_token:
        raise SettingsError("client keys are set but TICKFAN_INTERNAL_TOKEN is not: the tiers could not reach each other")


class Hub:
    def __init__(
        self,
        name: str,
        settings: HubSettings,
        policy: TopicPolicy,
        log,
        metrics: Metrics | None = None,
        on_topics: TopicsChanged | None = None,
        extra_status: Callable[[], dict] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.policy = policy
        self.log = log
        self.metrics = metrics or Metrics(name)
        self.on_topics = on_topics
        self.extra_status = extra_status
        self.indexes: dict[str, TopicIndex[Client]] = {c: TopicIndex() for c in CLUSTERS}
        self.topic_counts: dict[str, Counter[Topic]] = {c: Counter() for c in CLUSTERS}
        self.clients: dict[int, Client] = {}
        self.authenticated_count = 0
        self.started = time.monotonic()
        self._keys = settings.client_keys()
        if settings.internal_token:
            self._keys = self._keys | {settings.internal_token}
        self._server: Server | None = None
        self._touched: set[Client] = set()
        for counter, help in (
            ("events_in", "Events offered to this hub for fan-out, by cluster."),
            ("events_out", "Events written to client sockets."),
            ("frames_out", "Frames written to client sockets."),
            ("dropped_events", "Events dropped because a client was cut off as a slow consumer."),
            ("slow_consumer_disconnects", "Clients closed with 1013 for not reading fast enough."),
            ("auth_failures", "Failed authentications."),
            ("client_errors", "Client messages answered with an error status."),
        ):
            self.metrics.describe(counter, help)
        self.metrics.gauge("clients", lambda: len(self.clients), "Connected clients.")

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        check_exposure(host, self.settings.client_keys(), self.settings.internal_token)
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._http,
            max_size=MAX_WIRE_MESSAGE,
            compression=None,  # per-message deflate would cost more CPU than the whole fan-out
            ping_interval=20,
            ping_timeout=20,
            close_timeout=CLOSE_TIMEOUT_S,
        )
        bound = self._server.sockets[0].getsockname()[1]
        self.log.info("hub_listening", hub=self.name, host=host, port=bound)
        return bound

    async def close(self, code: int = protocol.CLOSE_SERVICE_RESTART, reason: str = "service restart") -> None:
        """Close every client with ``code`` (1012 on shutdown) and stop listening."""
        if self._server is not None:
            self._server.close(close_connections=False)
        await asyncio.gather(*(self._finish(c, code, reason) for c in list(self.clients.values())), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- fan-out (hot path) ------------------------------------------------------------------------------------

    def publish(self, cluster: str, events: Iterable[Event]) -> None:
        """Queue each event for every client that wants it, at most once each; never waits on a client."""
        index = self.indexes[cluster]
        if not index:
            return
        lookup = index.lookup
        touched = self._touched
        n = 0
        for code, ticker, raw in events:
            n += 1
            for client in lookup(code, ticker):
                client.pending.append(raw)
                client.pending_bytes += len(raw) + 1
                touched.add(client)
        self.metrics.inc("events_in", n, cluster=cluster)
        if touched:
            limit = self.settings.client_buffer_bytes
            for client in touched:
                if client.pending_bytes > limit:
                    self._slow_consumer(client)
                else:
                    client.wake.set()
            touched.clear()

    def tell(self, cluster: str, obj: bytes, wants: Callable[[Topic], bool]) -> int:
        """Queue ``obj`` (one status object) to every client of ``cluster`` holding a topic that ``wants`` accepts,
        behind the data already queued for it. Returns how many clients were told. Not a hot path."""
        told = 0
        for client in list(self.clients.values()):
            if client.closing or client.session.cluster.name != cluster:
                continue
            if any(wants(topic) for topic in client.session.topics):
                self._enqueue(client, [obj])
                told += 1
        return told

    def _enqueue(self, client: Client, objects: list[bytes]) -> None:
        client.pending.extend(objects)
        client.pending_bytes += sum(len(o) + 1 for o in objects)
        client.wake.set()

    async def _write_loop(self, client: Client) -> None:
        ws = client.ws
        try:
            while True:
                await client.wake.wait()
                client.wake.clear()
                while client.pending:
                    batch, client.pending, client.pending_bytes = client.pending, [], 0
                    frames = pack_frames(batch)
                    for frame in frames:
                        await ws.send(frame, text=True)
                    self.metrics.inc("events_out", len(batch))
                    self.metrics.inc("frames_out", len(frames))
        except ConnectionClosed:
            pass

    def _slow_consumer(self, client: Client) -> None:
        if client.closing:
            return
        dropped = len(client.pending)
        client.pending, client.pending_bytes = [], 0
        self.metrics.inc("dropped_events", dropped)
        self.metrics.inc("slow_consumer_disconnects")
        self.log.warning("slow_consumer", hub=self.name, client=client.id, remote=client.remote, dropped=dropped)
        asyncio.get_running_loop().create_task(
            self._finish(
                client,
                protocol.CLOSE_TRY_AGAIN_LATER,
                "slow consumer",
                protocol.slow_consumer(self.settings.client_buffer_bytes),
            )
        )

    async def _finish(self, client: Client, code: int, reason: str, last: bytes | None = None) -> None:
        """Send what is pending (plus ``last``), then close with ``code``. Idempotent."""
        if client.closing:
            return
        client.closing = True
        if client.writer is not None and client.writer is not asyncio.current_task():
            client.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client.writer
        pending = client.pending + ([last] if last is not None else [])
        client.pending, client.pending_bytes = [], 0
        self._forget(client)  # out of the index now: nothing more queues up while the close completes
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                for frame in pack_frames(pending):
                    await client.ws.send(frame, text=True)
        except (ConnectionClosed, TimeoutError, OSError):
            pass
        with contextlib.suppress(Exception):
            await client.ws.close(code, reason)

    # -- clients -----------------------------------------------------------------------------------------------

    def _authenticate(self, key: str) -> bool:
        return not self._keys or key in self._keys

    def _admit(self) -> bool:
        return self.authenticated_count < self.settings.max_clients

    async def _handle(self, ws: ServerConnection) -> None:
        cluster = cluster_for_path(ws.request.path if ws.request else "/")
        if cluster is None:
            paths = ", ".join(c.path for c in CLUSTERS.values())
            (frame,) = pack_frames([protocol.error(f"unknown path {ws.request.path!r}: use one of {paths}")])
            await ws.send(frame, text=True)
            await ws.close(protocol.CLOSE_POLICY, "unknown path")
            return
        client = Client(ws, Session(cluster, self._authenticate, self.policy, self._admit))
        self.clients[client.id] = client
        client.writer = asyncio.get_running_loop().create_task(self._write_loop(client))
        self._enqueue(client, [protocol.CONNECTED])
        timer = asyncio.get_running_loop().call_later(self.settings.auth_timeout_s, self._auth_timed_out, client)
        self.log.debug("client_connected", hub=self.name, client=client.id, remote=client.remote, cluster=cluster.name)
        try:
            async for message in ws:
                if client.closing:
                    break
                if len(message) > self.settings.max_message_bytes:
                    self.metrics.inc("client_errors")
                    self._enqueue(client, [protocol.error(
                        f"message too large: {len(message)} bytes, limit {self.settings.max_message_bytes}")])
                    continue
                was_authenticated = client.session.authenticated
                reply = client.session.receive(message)
                if client.session.authenticated and not was_authenticated:
                    timer.cancel()
                    self.authenticated_count += 1
                    self.log.info("client_authenticated", hub=self.name, client=client.id, remote=client.remote)
                self._apply(client, reply)
                if reply.close is not None:
                    if reply.out and reply.out[0] is protocol.AUTH_FAILED:
                        self.metrics.inc("auth_failures")
                        self.log.warning("auth_failed", hub=self.name, client=client.id, remote=client.remote)
                    await self._finish(client, *reply.close)
                    break
        except ConnectionClosed:
            pass
        finally:
            timer.cancel()
            self._forget(client)

    def _apply(self, client: Client, reply) -> None:
        cluster = client.session.cluster
        index, counts = self.indexes[cluster.name], self.topic_counts[cluster.name]
        first, last = [], []
        for topic in reply.added:
            index.add(client, topic)
            counts[topic] += 1
            if counts[topic] == 1:
                first.append(topic)
        for topic in reply.removed:
            index.remove(client, topic)
            counts[topic] -= 1
            if counts[topic] <= 0:
                del counts[topic]
                last.append(topic)
        if (first or last) and self.on_topics is not None:
            self.on_topics(cluster, first, last)
        errors = sum(1 for o in reply.out if o.startswith(b'{"ev":"status","status":"error"'))
        if errors:
            self.metrics.inc("client_errors", errors)
        if reply.out:
            self._enqueue(client, reply.out)

    def _auth_timed_out(self, client: Client) -> None:
        if client.session.authenticated or client.closing:
            return
        self.log.info("auth_timeout", hub=self.name, client=client.id, remote=client.remote)
        asyncio.get_running_loop().create_task(
            self._finish(client, protocol.CLOSE_POLICY, "authentication timeout", protocol.AUTH_TIMEOUT)
        )

    def _forget(self, client: Client) -> None:
        if self.clients.pop(client.id, None) is None:
            return
        if client.session.authenticated:
            self.authenticated_count -= 1
        if client.writer is not None:
            client.writer.cancel()
        removed = list(client.session.topics)
        client.session.topics.clear()
        if removed:
            self._apply(client, Reply([], [], removed))
        self.log.debug("client_gone", hub=self.name, client=client.id)

    # -- HTTP on the same port ---------------------------------------------------------------------------------

    def status(self) -> dict:
        clusters = {}
        for name, counts in self.topic_counts.items():
            if counts:
                topics = sorted(str(t) for t in counts)
                clusters[name] = {
                    "topics": topics[:1000], "topic_count": len(topics), "subscriptions": sum(counts.values())
                }
        body = {
            "process": self.name,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "clients": len(self.clients),
            "authenticated_clients": self.authenticated_count,
            "clusters": clusters,
            "counters": self.metrics.snapshot(),
        }
        if self.extra_status is not None:
            body.update(self.extra_status())
        return body

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = request.path.split("?", 1)[0]
        if path == "/health":
            return _response(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        if path == "/status":
            return _response(HTTPStatus.OK, msgspec.json.encode(self.status()) + b"\n", "application/json")
        if path == "/metrics":
            return _response(HTTPStatus.OK, self.metrics.prometheus().encode(), "text/plain; version=0.0.4; charset=utf-8")
        return _response(HTTPStatus.NOT_FOUND, b"not found: try /health, /status, /metrics or a websocket on /stocks\n",
                         "text/plain; charset=utf-8")


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)
