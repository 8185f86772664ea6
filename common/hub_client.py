"""One websocket client of a hub: its state (:class:`Client`) and picows' per-connection callbacks (:class:`Listener`).

The listener turns websocket frames into whole client messages (reassembling fragments, answering close frames)
and hands them to the hub; it tells the hub's outbox when the transport pauses and resumes. It never routes
events, and nothing raised while handling a message escapes to picows (which would close the connection 1011).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from common import protocol
from common.clusters import CLUSTERS, Cluster
from common.logs import LogThrottle
from common.outbox import Outbox
from common.session import Session

if TYPE_CHECKING:
    from common.hub import Hub

MAX_WIRE_MESSAGE = 1 << 20  # client messages beyond this are refused (close 1009), by picows for single frames
CLOSE_TIMEOUT_S = 2.0  # how long a closing peer has to answer the close frame before it is cut

TEXT = WSMsgType.TEXT
HEADROOM = 14  # picows writes a frame's websocket header into this many bytes in front of the message
FRAME_HEAD = bytes(HEADROOM) + b"["  # what a joined frame's buffer starts with


def send_frame(transport: WSTransport, frame: bytes) -> None:
    """Send one text frame.

    Through ``send_reuse_external_bytearray``: picows writes the header into our buffer and copies the bytes if the
    socket cannot take them now. Its plain ``send`` hands uvloop a view of picows' own reusable header buffer for
    messages over 8 KiB, which a later send overwrites while a paused transport still holds it (corrupt frames).
    """
    buf = bytearray(HEADROOM)
    buf += frame
    transport.send_reuse_external_bytearray(TEXT, buf, HEADROOM)


def send_joined(transport: WSTransport, pieces: list) -> None:
    """Send ``pieces`` (event objects or frame bodies) as one frame ``[a,b,...]``, with one copy of the bytes."""
    buf = bytearray(FRAME_HEAD)
    buf += b",".join(pieces)
    buf += b"]"
    transport.send_reuse_external_bytearray(TEXT, buf, HEADROOM)


_ids = itertools.count(1)


def library_logger(log) -> logging.Logger:
    """A stdlib logger for picows that hands its warnings and errors (protocol errors, 1009 closes) to ``log`` as
    one structlog event each; its per-connection info lines are dropped."""
    logger = logging.Logger("picows.tickfan", logging.WARNING)
    logger.propagate = False
    logger.addHandler(_ToStructlog(log))
    return logger


class _ToStructlog(logging.Handler):
    """One info line a second at most: a client sending oversized or broken frames cannot flood the log."""

    def __init__(self, log) -> None:
        super().__init__(logging.WARNING)
        self.log = log
        self.throttle = LogThrottle()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            held = self.throttle.allow("websocket_protocol", time.monotonic())
            if held is not None:
                self.log.info("websocket_protocol", level=record.levelname.lower(), message=record.getMessage()[:300],
                              similar_since_last=held)
        except Exception:  # noqa: BLE001 - logging must never break a connection
            pass


class Client(Outbox):
    """One connected client: its outbox (the hot path's part), session and transport."""

    __slots__ = ("id", "transport", "send", "in_flight", "session", "remote", "timer", "fragments")

    def __init__(self, transport: WSTransport, limit: int) -> None:
        super().__init__(limit)
        self.id = next(_ids)
        self.transport = transport
        self.send = transport.send_reuse_external_bytearray  # (TEXT, buffer with HEADROOM in front, HEADROOM)
        self.in_flight = transport.underlying_transport.get_write_buffer_size  # bytes handed over, not yet sent
        self.session: Session  # set right after: authentication needs this client
        peer = transport.underlying_transport.get_extra_info("peername")
        self.remote = peer[0] if peer else "?"
        self.timer: asyncio.TimerHandle | None = None
        self.fragments: bytearray | None = None  # a fragmented message being reassembled


class Listener(WSListener):
    """picows' callbacks for one connection."""

    def __init__(self, hub: Hub, cluster: Cluster | None, path: str) -> None:
        self.hub = hub
        self.cluster = cluster
        self.path = path
        self.client: Client | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self.cluster is None:
            paths = ", ".join(c.path for c in CLUSTERS.values())
            send_joined(transport, [protocol.error(f"unknown path {self.path!r}: use one of {paths}")])
            transport.send_close(WSCloseCode.POLICY_VIOLATION, b"unknown path")
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.disconnect, False)
            return
        self.client = self.hub._connected(transport, self.cluster)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        client = self.client
        if client is None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()
            return
        try:
            self._frame(client, transport, frame)
        except Exception as exc:  # noqa: BLE001 - a bug must not cost the connection; it is logged and counted
            hub = self.hub
            hub._client_errors.n += 1
            hub.log.error("client_message_failed", hub=hub.name, client=client.id, error=f"{type(exc).__name__}: {exc}")

    def _frame(self, client: Client, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                code = frame.get_close_code()
                transport.send_close(code if code != WSCloseCode.NO_INFO else WSCloseCode.OK)
            transport.disconnect()
            return
        if kind == WSMsgType.TEXT or kind == WSMsgType.BINARY:
            if frame.fin:
                self.hub._message(client, frame.get_payload_as_bytes())
            else:
                client.fragments = bytearray(frame.get_payload_as_memoryview())
        elif kind == WSMsgType.CONTINUATION and client.fragments is not None:
            client.fragments += frame.get_payload_as_memoryview()
            if len(client.fragments) > MAX_WIRE_MESSAGE:
                client.fragments = None
                self.hub._close(client, protocol.CLOSE_TOO_BIG, "message too big")
            elif frame.fin:
                message, client.fragments = bytes(client.fragments), None
                self.hub._message(client, message)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.client is not None:
            self.hub._disconnected(self.client)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.paused = True

    def resume_writing(self) -> None:
        client = self.client
        if client is not None:
            client.paused = False
            if client.items and not client.closing:
                self.hub._touch(client)
