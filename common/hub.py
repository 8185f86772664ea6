"""The Polygon-protocol hub every tier serves its clients with (DESIGN §1, §2): a thin shell over picows.

Protocol state lives in :class:`common.session.Session`, routing in :class:`common.topic_index.TopicIndex`,
framing in :mod:`common.frames`, each client's outgoing buffer and the slow-consumer rule in
:mod:`common.outbox`, plain HTTP GETs in :mod:`common.hub_http`. The hub moves bytes and never waits on a client:

- ``publish`` / ``publish_frame`` only route: each event (or each frame, when every receiver wants all of it) is
  appended to the outbox of every client that wants it, at most once each.
- One flush per batch of input (scheduled with ``call_soon`` by the first publish of the batch, so it runs after
  everything read from the upstream socket in this loop iteration) writes every touched outbox to its
  transport synchronously, coalesced into as few frames as fit under 1 MiB. No task or awaited send per client.
- A paused transport keeps its outbox; pending plus in-flight bytes beyond the client's bound make it a slow
  consumer: it leaves the routing index at once, is counted once, is told ``slow_consumer`` and closed with 1013.

It never parses events beyond their routing keys and never re-formats an event's bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Callable, Iterable

from picows import WSCloseCode, WSTransport, WSUpgradeRequest, ws_create_server

from common import hub_http, protocol
from common.clusters import CLUSTERS, Cluster, cluster_for_path
from common.frames import MAX_FRAME_BYTES, Event, Frame
from common.hub_client import (
    CLOSE_TIMEOUT_S,
    FRAME_HEAD,
    HEADROOM,
    MAX_WIRE_MESSAGE,
    TEXT,
    Client,
    Listener,
    library_logger,
    send_frame,
    send_joined,
)
from common.logs import LogThrottle
from common.metrics import Metrics
from common.notices import StickyNotices
from common.session import Reply, Session, TopicPolicy
from common.settings import PLACEHOLDER_INTERNAL_TOKEN, HubSettings, check_exposure
from common.topic_index import TopicIndex
from common.topics import Topic

PING_IDLE_S = 20.0  # a client silent this long is pinged ...
PING_REPLY_S = 20.0  # ... and cut if no pong comes back within this

# Called with (cluster, topics that gained their first subscriber, topics that lost their last one).
TopicsChanged = Callable[[Cluster, list[Topic], list[Topic]], None]

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
        health: Callable[[], list[str]] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.policy = policy
        self.log = log
        self.metrics = metrics or Metrics(name)
        self.on_topics = on_topics
        self.extra_status = extra_status
        self.health = health or (lambda: [])  # problems that will not heal by themselves: /health answers 503
        self.notices = StickyNotices()
        self._throttle = LogThrottle()
        self.indexes: dict[str, TopicIndex[Client]] = {c: TopicIndex() for c in CLUSTERS}
        self.topic_counts: dict[str, Counter[Topic]] = {c: Counter() for c in CLUSTERS}
        self.clients: dict[int, Client] = {}  # connected and not closing
        self.authenticated_count = 0
        self.started = time.monotonic()
        self._keys = settings.client_keys()
        if settings.internal_token:
            self._keys = self._keys | {settings.internal_token}
        self._internal_key = settings.internal_token or PLACEHOLDER_INTERNAL_TOKEN
        self._open: set[Client] = set()  # every connection until it is gone, closing ones included
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._touched: set[Client] = set()
        self._flush_handle: asyncio.Handle | None = None
        m = self.metrics
        m.describe("events_in", "Events offered to this hub for fan-out, by cluster.")
        self._events_in = {c: m.counter("events_in", cluster=c) for c in CLUSTERS}
        for counter, help in (
            ("events_out", "Events written to client sockets."),
            ("frames_out", "Frames written to client sockets."),
            ("dropped_events", "Events dropped because a client was cut off as a slow consumer."),
            ("slow_consumer_disconnects", "Clients closed with 1013 for not reading fast enough."),
            ("auth_failures", "Failed authentications."),
            ("client_errors", "Client messages answered with an error status."),
        ):
            m.describe(counter, help)
        self._events_out, self._frames_out = m.counter("events_out"), m.counter("frames_out")
        self._dropped, self._slow = m.counter("dropped_events"), m.counter("slow_consumer_disconnects")
        self._client_errors = m.counter("client_errors")
        m.gauge("clients", lambda: len(self.clients), "Connected clients.")

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        check_exposure(host, self.settings.client_keys(), self.settings.internal_token)
        self._loop = asyncio.get_running_loop()
        self._server = await ws_create_server(
            self._route_request, host, port,
            max_frame_size=MAX_WIRE_MESSAGE,
            enable_auto_ping=True, auto_ping_idle_timeout=PING_IDLE_S, auto_ping_reply_timeout=PING_REPLY_S,
            use_aiofastnet=False,  # the event loop's own transports (uvloop): their pause/resume drive the outbox
            logger_name=library_logger(self.log),
        )
        bound = self._server.sockets[0].getsockname()[1]
        self.log.info("hub_listening", hub=self.name, host=host, port=bound)
        return bound

    async def close(self, code: int = protocol.CLOSE_SERVICE_RESTART, reason: str = "service restart") -> None:
        """Close every client with ``code`` (1012 on shutdown) after what is pending for it, and stop listening."""
        if self._server is not None:
            self._server.close()
        for client in list(self.clients.values()):
            self._close(client, code, reason)
        waits = [asyncio.ensure_future(c.transport.wait_disconnected()) for c in self._open]
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_TIMEOUT_S)
        for client in list(self._open):
            client.transport.disconnect(False)

    # -- fan-out (hot path) ------------------------------------------------------------------------------------

    def publish(self, cluster: str, events: Iterable[Event]) -> None:
        """Queue each event for every client that wants it, at most once each; never waits on a client."""
        index = self.indexes[cluster]
        if not index:
            return
        lookup = index.lookup
        touch = self._touched.update
        n = 0
        for code, ticker, raw in events:
            n += 1
            clients = lookup(code, ticker)
            if clients:
                size = len(raw) + 1
                for client in clients:
                    client.items.append(raw)
                    client.nbytes += size
                touch(clients)
        self._events_in[cluster].n += n
        if self._touched and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def publish_frame(self, cluster: str, frame: Frame) -> None:
        """Route one upstream frame once, whatever the number of clients. Clients that want every event of it
        get the frame's own bytes as one piece (no split, no re-pack); the others get their events' bytes.
        Raises :class:`common.frames.FrameError` for bytes that are not a frame of events."""
        index = self.indexes[cluster]
        if not index:
            return
        routes = frame.routes
        n = len(routes)
        self._events_in[cluster].n += n
        if not n:
            return
        lookup = index.lookup
        wanted = [lookup(code, ticker) for code, ticker in routes]
        first = wanted[0]
        body = frame.body if wanted.count(first) == n else None
        if body is not None:
            if not first:
                return
            size = len(body) + 1
            for client in first:
                client.items.append(body)
                client.nbytes += size
                client.extra_events += n - 1
            self._touched.update(first)
        else:
            for clients, raw in zip(wanted, frame.raws):
                if clients:
                    size = len(raw) + 1
                    for client in clients:
                        client.items.append(raw)
                        client.nbytes += size
            self._touched.update(*wanted)
        if self._touched and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write every touched outbox whose transport accepts data; enforce the bound on all of them.
        The loop body is the per-client cost of fan-out: kept to attribute reads, one join and one send."""
        self._flush_handle = None
        touched, self._touched = self._touched, set()
        events = frames = 0
        for client in touched:
            items = client.items
            if not items or client.closing:
                continue
            if client.paused or client.nbytes + client.in_flight() > client.limit:
                if client.nbytes + client.in_flight() > client.limit:
                    self._slow_consumer(client)
                continue  # a paused transport keeps its outbox until resume_writing
            if client.nbytes >= MAX_FRAME_BYTES:
                frames += self._write_frames(client)
                continue
            events += len(items) + client.extra_events
            client.items = []
            client.nbytes = client.extra_events = 0
            buf = bytearray(FRAME_HEAD)  # header room, then "["
            buf += b",".join(items)
            buf += b"]"
            client.send(TEXT, buf, HEADROOM)
            frames += 1
        self._events_out.n += events
        self._frames_out.n += frames

    def _write_frames(self, client: Client) -> int:
        """More than 1 MiB pending: several frames, each under the limit."""
        frames, events = client.take()
        for frame in frames:
            send_frame(client.transport, frame)
        self._events_out.n += events
        return len(frames)

    def backlog_bytes(self) -> int:
        """The most bytes any client has waiting (pending plus handed to its socket): how far the slowest lags."""
        return max((c.nbytes + c.in_flight() for c in self.clients.values()), default=0)

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

    def post_notice(self, cluster: str, key: str, obj: bytes, wants: Callable[[Topic], bool]) -> int:
        """Tell ``obj`` to the clients of ``cluster`` holding a topic ``wants`` accepts, and to every client that
        subscribes to such a topic until :meth:`withdraw_notice`; returns how many were told now."""
        members = ((c.id, c.session.topics) for c in self.clients.values() if c.session.cluster.name == cluster)
        told = self.notices.post(cluster, key, obj, wants, members)
        for cid in told:
            self._enqueue(self.clients[cid], [obj])
        return len(told)

    def withdraw_notice(self, cluster: str, key: str, obj: bytes) -> int:
        """End a notice: ``obj`` goes to every client still here that was told it; returns how many."""
        told = [self.clients[cid] for cid in self.notices.withdraw(cluster, key) if cid in self.clients]
        for client in told:
            self._enqueue(client, [obj])
        return len(told)

    def _enqueue(self, client: Client, objects: list[bytes]) -> None:
        for obj in objects:
            client.add(obj)
        self._touch(client)

    def _touch(self, client: Client) -> None:
        self._touched.add(client)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _slow_consumer(self, client: Client) -> None:
        """Cut a client whose pending plus in-flight bytes would pass its bound: out of the index at once,
        counted once, told why behind what is already in flight, closed with 1013."""
        if client.closing:
            return
        dropped = client.drop()
        self._dropped.n += dropped
        self._slow.n += 1
        self.log.warning("slow_consumer", hub=self.name, client=client.id, remote=client.remote, dropped=dropped,
                         limit=client.limit)
        self._close(client, protocol.CLOSE_TRY_AGAIN_LATER, "slow consumer", protocol.slow_consumer(client.limit))

    def _close(self, client: Client, code: int, reason: str, last: bytes | None = None) -> None:
        """Write what is pending (plus ``last``), then the close frame; cut the peer if it does not answer in time.
        Idempotent. The client leaves the index first, so nothing more is routed to it."""
        if client.closing:
            return
        self._forget(client)
        client.closing = True
        if last is not None:
            client.add(last)
        frames, _ = client.take()
        transport = client.transport
        if transport.is_disconnected:
            return
        for frame in frames:
            send_frame(transport, frame)
        transport.send_close(WSCloseCode(code), reason.encode())
        self._loop.call_later(CLOSE_TIMEOUT_S, transport.disconnect, False)

    # -- clients -----------------------------------------------------------------------------------------------

    def _route_request(self, request: WSUpgradeRequest):
        """picows' listener factory: a websocket listener, or the answer to a plain HTTP GET."""
        path = hub_http.request_path(request)
        if not hub_http.is_upgrade(request):
            return hub_http.answer(path, self.status, self.metrics, self.health)
        return Listener(self, cluster_for_path(path), path)

    def _connected(self, transport: WSTransport, cluster: Cluster) -> Client:
        limit = self.settings.client_buffer_bytes
        client = Client(transport, limit)

        def authenticate(key: str) -> bool:
            if self._keys and key not in self._keys:
                return False
            if key == self._internal_key:  # a tier below: a larger bound of its own
                client.limit = max(self.settings.internal_buffer_bytes, limit)
            return True

        client.session = Session(cluster, authenticate, self.policy, self._admit)
        self.clients[client.id] = client
        self._open.add(client)
        send_joined(transport, [protocol.CONNECTED])
        client.timer = self._loop.call_later(self.settings.auth_timeout_s, self._auth_timed_out, client)
        self.log.debug("client_connected", hub=self.name, client=client.id, remote=client.remote, cluster=cluster.name)
        return client

    def _admit(self) -> bool:
        return self.authenticated_count < self.settings.max_clients

    def _message(self, client: Client, message: bytes) -> None:
        if client.closing:
            return
        if len(message) > self.settings.max_message_bytes:
            self._apply(client, Reply([protocol.error(
                f"message too large: {len(message)} bytes, limit {self.settings.max_message_bytes}")], [], []))
            return
        was_authenticated = client.session.authenticated
        reply = client.session.receive(message)
        if client.session.authenticated and not was_authenticated:
            client.timer.cancel()
            self.authenticated_count += 1
            self.log.info("client_authenticated", hub=self.name, client=client.id, remote=client.remote)
        self._apply(client, reply)
        if reply.close is not None:
            if reply.out and reply.out[0] is protocol.AUTH_FAILED:
                self.metrics.inc("auth_failures")
                self.log.warning("auth_failed", hub=self.name, client=client.id, remote=client.remote)
            self._close(client, *reply.close)

    def _apply(self, client: Client, reply: Reply) -> None:
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
            try:
                self.on_topics(cluster, first, last)
            except Exception:  # noqa: BLE001 - a tier's bug must not take the client's connection with it
                self.log.exception("on_topics_failed", hub=self.name, first=len(first), last=len(last))
        errors = [o for o in reply.out if o.startswith(b'{"ev":"status","status":"error"')]
        if errors:
            self._client_errors.n += len(errors)
            held = self._throttle.allow("client_error", time.monotonic())
            if held is not None:  # at most one line a second, whatever a client sends
                self.log.info("client_error", hub=self.name, client=client.id, remote=client.remote,
                              sample=bytes(errors[0][:200]).decode("utf-8", "replace"), similar_since_last=held)
        out = reply.out
        if reply.added and self.notices:
            out = out + self.notices.on_subscribed(client.id, cluster.name, reply.added)
        if out:
            self._enqueue(client, out)

    def _auth_timed_out(self, client: Client) -> None:
        if client.session.authenticated or client.closing:
            return
        self.log.info("auth_timeout", hub=self.name, client=client.id, remote=client.remote)
        self._close(client, protocol.CLOSE_POLICY, "authentication timeout", protocol.AUTH_TIMEOUT)

    def _disconnected(self, client: Client) -> None:
        client.timer.cancel()
        self._open.discard(client)
        self._forget(client)
        client.closing = True
        client.drop()

    def _forget(self, client: Client) -> None:
        """Out of the client table and the routing index (the demand it held is released)."""
        if self.clients.pop(client.id, None) is None:
            return
        if client.session.authenticated:
            self.authenticated_count -= 1
        self.notices.forget(client.id)
        removed = list(client.session.topics)
        client.session.topics.clear()
        if removed:
            self._apply(client, Reply([], [], removed))
        self.log.debug("client_gone", hub=self.name, client=client.id)

    # -- status ------------------------------------------------------------------------------------------------

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
