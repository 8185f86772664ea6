"""The hub in process, on a real socket: what it tells which clients."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import structlog
import websockets

from common import protocol
from common.frames import Event, Frame
from common.hub import Hub
from common.session import TopicPolicy
from common.settings import HubSettings
from common.topics import Topic
from tests.helpers import async_wait_for, connect, trade

LOG = structlog.get_logger()


async def test_tell_reaches_exactly_the_clients_whose_topics_it_accepts():
    hub = Hub("test", HubSettings(), TopicPolicy(), LOG)
    port = await hub.start("127.0.0.1", 0)
    try:
        aapl = await connect(port)
        await aapl.send({"action": "subscribe", "params": "T.AAPL"})
        bare = await connect(port)
        await bare.send({"action": "subscribe", "params": "*"})
        other = await connect(port)
        await other.send({"action": "subscribe", "params": "Q.MSFT"})
        crypto = await connect(port, "/crypto")
        await crypto.send({"action": "subscribe", "params": "XT.*"})
        for c in (aapl, bare, other, crypto):
            await c.recv_frame()  # the ack
        note = protocol.status("upstream_down", "stocks feed interrupted")
        told = hub.tell("stocks", note, lambda t: t == Topic("T", "AAPL") or t.is_bare)
        assert told == 2
        for c in (aapl, bare):
            assert await c.recv_frame() == [{"ev": "status", "status": "upstream_down",
                                             "message": "stocks feed interrupted"}]
        hub.publish("stocks", [("Q", "MSFT", b'{"ev":"Q","sym":"MSFT"}')])
        assert await other.recv_frame() == [{"ev": "Q", "sym": "MSFT"}]  # told nothing before the data
        assert hub.tell("stocks", note, lambda t: t.code == "LULD") == 0
    finally:
        await hub.close()


async def _hub(**settings) -> tuple[Hub, int]:
    hub = Hub("test", HubSettings(**settings), TopicPolicy(), LOG)
    return hub, await hub.start("127.0.0.1", 0)


async def test_a_receiver_of_every_event_gets_the_frame_bytes_others_their_events_once():
    hub, port = await _hub()
    try:
        everything = await connect(port)
        await everything.send({"action": "subscribe", "params": "T.*,T.AAPL"})  # both match AAPL: once
        aapl = await connect(port)
        await aapl.send({"action": "subscribe", "params": "T.AAPL"})
        for c in (everything, aapl):
            await c.until(lambda ev: ev[-1].get("message") == "subscribed to: T.AAPL")
        mixed = f"[{trade('AAPL', '1.50', 1)},{trade('MSFT', '2.10', 2)}]".encode()
        only_aapl = f"[{trade('AAPL', '1.60', 3)}]".encode()
        hub.publish_frame("stocks", Frame(mixed))
        assert await asyncio.wait_for(everything.ws.recv(), 5) == mixed.decode()
        assert await asyncio.wait_for(aapl.ws.recv(), 5) == f"[{trade('AAPL', '1.50', 1)}]"
        hub.publish_frame("stocks", Frame(only_aapl))
        for c in (everything, aapl):
            assert await asyncio.wait_for(c.ws.recv(), 5) == only_aapl.decode()  # the same bytes to both
        hub.publish_frame("stocks", Frame(b"[ " + only_aapl[1:-1] + b" ]"))
        assert await asyncio.wait_for(aapl.ws.recv(), 5) == only_aapl.decode()  # re-packed compactly
    finally:
        await hub.close()


async def test_internal_tiers_get_the_internal_bound():
    hub, port = await _hub(api_keys="team", internal_token="tier", client_buffer_bytes=1 << 20,
                           internal_buffer_bytes=64 << 20)
    try:
        await connect(port, key="team")
        await connect(port, key="tier")
        await async_wait_for(lambda: hub.authenticated_count == 2, what="both authenticated")
        assert sorted(c.limit for c in hub.clients.values()) == [1 << 20, 64 << 20]
    finally:
        await hub.close()


async def test_fragmented_messages_are_reassembled():
    hub, port = await _hub()
    try:
        c = await connect(port)
        await c.ws.send(['{"action":"subscr', 'ibe","params":"T.A', 'APL"}'])  # three websocket frames
        assert (await c.recv_frame())[0]["message"] == "subscribed to: T.AAPL"
    finally:
        await hub.close()


async def test_slow_consumer_bounded_cut_once_out_of_the_index_at_once_and_nothing_after_the_drop():
    limit = 256 << 10
    hub, port = await _hub(client_buffer_bytes=limit)
    try:
        healthy = await connect(port)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once when not read
        sock.connect(("127.0.0.1", port))
        slow = await connect(port, sock=sock, max_queue=1)  # stops reading its socket when one frame is queued
        for c in (healthy, slow):
            await c.send({"action": "subscribe", "params": "T.*"})
            await c.recv_frame()
        (slow_client,) = [c for c in hub.clients.values() if c.id == max(hub.clients)]
        received = 0

        async def read_healthy():
            nonlocal received
            while True:
                received += (await healthy.ws.recv()).count('"ev":"T"')

        reader = asyncio.create_task(read_healthy())
        sent, cut_at = 0, None
        while cut_at is None:
            hub.publish("stocks", [Event("T", "X", _padded(sent + i)) for i in range(50)])
            sent += 50
            await async_wait_for(lambda: received == sent, what="healthy client keeping up")
            if slow_client.closing:
                cut_at = sent
            else:  # the bound holds at every flush: pending plus in-flight
                assert slow_client.nbytes + slow_client.in_flight() <= limit
            assert sent < 100_000, "never cut"
        assert slow_client not in hub.indexes["stocks"].lookup("T", "X")
        for _ in range(3):  # more data after the cut: routed to nobody slow, counted once
            hub.publish("stocks", [Event("T", "X", _padded(sent + i)) for i in range(50)])
            sent += 50
        await async_wait_for(lambda: received == sent, what="healthy client gap-free")
        assert hub.metrics.value("slow_consumer_disconnects") == 1 and hub.metrics.value("dropped_events") > 0
        reader.cancel()
        seqs, last = [], None
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                frame = json.loads(await asyncio.wait_for(slow.ws.recv(), 10))
                seqs += [e["q"] for e in frame if e["ev"] == "T"]
                last = frame[-1]
        assert closed.value.rcvd.code == 1013 and last["status"] == "slow_consumer"
        assert seqs == list(range(len(seqs))) and len(seqs) < cut_at  # a prefix, then nothing after the drop
    finally:
        await hub.close()


def _padded(q: int) -> bytes:
    return b'{"ev":"T","sym":"X","q":%d,"pad":"%s"}' % (q, b"x" * 1000)
