"""What a tier tells its clients about its upstreams (DESIGN §2, "Telling clients what happened").

:class:`StickyNotices` is the hub's record of notices that hold until withdrawn (an outage): every client holding a
topic a notice concerns is told once when it is posted, a client that subscribes to such a topic while it holds is
told right after its ack, and the clients told are told again when it is withdrawn (the restore). Pure bookkeeping:
it says whom to tell; the hub queues the bytes.

:class:`UpstreamNotices` turns one upstream source's announcements into notices: an outage of a cluster's feed
(``upstream_down`` … ``upstream_restored``) to the clients whose topics need that source, and a per-topic error
from above, as it came, to exactly the clients whose topics need the topic it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

from common import protocol
from common.clusters import CLUSTERS, Cluster
from common.topics import Topic

# Which upstream topics (as the source is asked for them) a client topic needs from one source; empty: none.
Needs = Callable[[Cluster, Topic], Iterable[str]]

# Statuses from above that are about some topics or the whole feed, and pass on to the clients they concern.
# Everything else (acks, the handshake, a slow_consumer cut of this tier itself) is this tier's own business.
_PASSED_ON = frozenset({"error", "replay_finished", protocol.UPSTREAM_DOWN, protocol.UPSTREAM_RESTORED})


@dataclass
class _Notice:
    obj: bytes
    wants: Callable[[Topic], bool]
    told: set = field(default_factory=set)


class StickyNotices:
    def __init__(self) -> None:
        self._held: dict[tuple[str, str], _Notice] = {}

    def post(self, cluster: str, key: str, obj: bytes, wants: Callable[[Topic], bool],
             clients: Iterable[tuple[Hashable, Iterable[Topic]]]) -> list[Hashable]:
        """Hold a notice; returns the clients (of ``cluster``: id and topics) to tell now. Replaces one of the same key."""
        notice = self._held[(cluster, key)] = _Notice(obj, wants)
        for client, topics in clients:
            if any(wants(t) for t in topics):
                notice.told.add(client)
        return list(notice.told)

    def withdraw(self, cluster: str, key: str) -> list[Hashable]:
        """Drop a notice; returns the clients that were told it (to tell them it is over)."""
        notice = self._held.pop((cluster, key), None)
        return list(notice.told) if notice is not None else []

    def on_subscribed(self, client: Hashable, cluster: str, added: Iterable[Topic]) -> list[bytes]:
        """What a client that just subscribed to ``added`` must hear after its acks."""
        out = []
        added = list(added)
        for (c, _), notice in self._held.items():
            if c == cluster and client not in notice.told and any(notice.wants(t) for t in added):
                notice.told.add(client)
                out.append(notice.obj)
        return out

    def forget(self, client: Hashable) -> None:
        for notice in self._held.values():
            notice.told.discard(client)

    def held(self, cluster: str) -> list[bytes]:
        return [n.obj for (c, _), n in self._held.items() if c == cluster]

    def __bool__(self) -> bool:
        return bool(self._held)


class UpstreamNotices:
    """Bridges one source's :class:`~common.upstream_set.UpstreamSet` callbacks to a hub's clients."""

    def __init__(self, hub, source: str, needs: Needs, log) -> None:
        self.hub = hub
        self.source = source
        self.needs = needs
        self.log = log
        self.upstreams = None  # set by attach()

    def attach(self, upstreams) -> None:
        """Take the set's link and status callbacks (chaining any already set, e.g. the bar service's)."""
        self.upstreams = upstreams
        before_link = upstreams.on_link

        def on_link(cluster: str, up: bool, reason: str) -> None:
            if before_link is not None:
                before_link(cluster, up, reason)
            self.link(cluster, up, reason)

        upstreams.on_link = on_link
        upstreams.on_status = self.status

    def link(self, cluster: str, up: bool, reason: str) -> None:
        info = CLUSTERS[cluster]
        if up:
            client = self.upstreams.clients.get(cluster) if self.upstreams is not None else None
            down_s = client.last_outage_ms / 1000 if client is not None else 0.0
            self.hub.withdraw_notice(cluster, self.source, protocol.upstream_restored(cluster, down_s))
        else:
            self.hub.post_notice(cluster, self.source, protocol.upstream_down(cluster, reason),
                                 lambda t: any(True for _ in self.needs(info, t)))

    def status(self, cluster: str, status: str, message: str, raw: bytes) -> None:
        if status not in _PASSED_ON:
            return
        info = CLUSTERS[cluster]
        if status in (protocol.UPSTREAM_DOWN, protocol.UPSTREAM_RESTORED):  # one code's outage (PY), from above
            code = protocol.outage_scope(message)
            key = f"{self.source}/{code}"
            if status == protocol.UPSTREAM_DOWN:
                self.hub.post_notice(cluster, key, raw,
                                     lambda t: any(x.startswith(f"{code}.") for x in self.needs(info, t)))
            else:
                self.hub.withdraw_notice(cluster, key, raw)
            return
        if status != "error":
            self.hub.tell(cluster, raw, lambda t: any(True for _ in self.needs(info, t)))
            return
        client = self.upstreams.clients.get(cluster) if self.upstreams is not None else None
        topic = named_topic(message, client.demand.wanted if client is not None else ())
        if topic is None:
            self.log.warning("upstream_error_without_topic", source=self.source, cluster=cluster, message=message)
            return
        told = self.hub.tell(cluster, raw, lambda t: topic in self.needs(info, t))
        self.log.info("upstream_topic_error", source=self.source, cluster=cluster, topic=topic, told=told)


def named_topic(message: str, candidates: Iterable[str]) -> str | None:
    """The first of ``candidates`` (upstream topics) that ``message`` names as a word, or None."""
    wanted = candidates if isinstance(candidates, (set, frozenset, dict)) else set(candidates)
    for word in message.replace(",", " ").split():
        word = word.strip("\"'()[]:;.")
        if word in wanted:
            return word
    return None
