"""The hub in process, on a real socket: what it tells which clients."""

from __future__ import annotations

import structlog

from common import protocol
from common.hub import Hub
from common.session import TopicPolicy
from common.settings import HubSettings
from common.topics import Topic
from tests.helpers import connect

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
