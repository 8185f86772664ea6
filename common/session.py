"""One client's protocol state, sans I/O: connected → auth → subscribe/unsubscribe (DESIGN §2).

:meth:`Session.receive` takes one client message and returns a :class:`Reply`: the status objects to send
(in order, as JSON bytes), the topics that were added or removed, and whether to close. The asyncio hub applies
the reply; this module never touches a socket or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

from common import protocol
from common.clusters import Cluster
from common.topics import Topic, TopicError, parse_topic, split_params


@dataclass(frozen=True)
class TopicPolicy:
    """Which topics a hub serves: every native code (or only ``codes``), and bars only if ``bars_unavailable`` is None."""

    codes: frozenset[str] | None = None
    bars_unavailable: str | None = None  # the reason given for NMs topics when this hub has no bars

    def check(self, cluster: Cluster, text: str) -> Topic:
        topic = parse_topic(cluster, text)
        if topic.interval_ms is not None:
            if self.bars_unavailable is not None:
                raise TopicError(f"{self.bars_unavailable}: {text}")
        elif not topic.is_bare and self.codes is not None and topic.code not in self.codes:
            raise TopicError(f"topic not available on this endpoint (serves {', '.join(sorted(self.codes))}): {text}")
        return topic


class Reply(NamedTuple):
    out: list[bytes]
    added: list[Topic]
    removed: list[Topic]
    close: tuple[int, str] | None = None


class Session:
    def __init__(
        self,
        cluster: Cluster,
        authenticate: Callable[[str], bool],
        policy: TopicPolicy = TopicPolicy(),
        admit: Callable[[], bool] = lambda: True,
    ) -> None:
        self.cluster = cluster
        self.policy = policy
        self.authenticated = False
        self.topics: dict[Topic, None] = {}
        self._authenticate = authenticate
        self._admit = admit

    def receive(self, data: bytes | str) -> Reply:
        """Act on one client message, strictly in order."""
        try:
            msg = protocol.decode_client_message(data)
        except protocol.ProtocolError as exc:
            return Reply([protocol.error(str(exc))], [], [])
        if msg.action == "auth":
            return self._auth(msg.params)
        if not self.authenticated:
            return Reply([protocol.AUTH_REQUIRED], [], [])
        if not split_params(msg.params):
            return Reply([protocol.error(f"{msg.action}: no topics in params (expected a comma list like T.AAPL,Q.AAPL)")],
                         [], [])
        if msg.action == "subscribe":
            return self._subscribe(msg.params)
        return self._unsubscribe(msg.params)

    def _auth(self, key: str) -> Reply:
        if not self._authenticate(key):
            return Reply([protocol.AUTH_FAILED], [], [], (protocol.CLOSE_POLICY, "authentication failed"))
        if not self.authenticated and not self._admit():
            return Reply([protocol.MAX_CONNECTIONS], [], [], (protocol.CLOSE_POLICY, "max connections"))
        self.authenticated = True
        return Reply([protocol.AUTH_SUCCESS], [], [])

    def _subscribe(self, params: str) -> Reply:
        out, added = [], []
        for text in split_params(params):
            try:
                topic = self.policy.check(self.cluster, text)
            except TopicError as exc:
                out.append(protocol.error(str(exc)))
                continue
            if topic not in self.topics:
                self.topics[topic] = None
                added.append(topic)
            out.append(protocol.subscribed(str(topic)))
        return Reply(out, added, [])

    def _unsubscribe(self, params: str) -> Reply:
        out, removed = [], []
        for text in split_params(params):
            try:
                topic = parse_topic(self.cluster, text)
            except TopicError as exc:
                out.append(protocol.error(str(exc)))
                continue
            if self.topics.pop(topic, 0) is None:
                removed.append(topic)
            out.append(protocol.unsubscribed(str(topic)))
        return Reply(out, [], removed)
