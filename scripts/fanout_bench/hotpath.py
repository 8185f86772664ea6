"""The hub's own cost per event, in process, without sockets: the real Hub.publish_frame and flush, fake transports.

Two shapes: the proxy's (N clients, each 10% of the tickers, events split and routed one by one) and the
firehose's (one client that wants every event: whole frames forwarded). Kernel writes are not in these
figures; they are what the end-to-end steps add. Quieter than process CPU on a shared box, so hot-path changes
are judged here first.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from common.frames import Frame
from common.hub import Hub
from common.hub_client import Client
from common.session import Session, TopicPolicy
from common.settings import HubSettings
from common.clusters import CLUSTERS
from common.topics import Topic
from fanout_bench.market import TEMPLATES, Market


class _Under:
    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name):
        return ("127.0.0.1", 0)


class FakeTransport:
    underlying_transport = _Under()

    def __init__(self) -> None:
        self.bytes = 0

    def send_reuse_external_bytearray(self, kind, buf, offset) -> None:
        self.bytes += len(buf) - offset


async def measure(clients: int, whole: bool, frames: int = 4000) -> dict:
    hub = Hub("hotpath", HubSettings(client_buffer_bytes=1 << 40), TopicPolicy(), structlog.get_logger())
    hub._loop = asyncio.get_running_loop()
    market = Market()
    subs = [["*"]] if whole else Market.subscriptions(clients)
    for tickers in subs:
        client = Client(FakeTransport(), 1 << 40)
        client.session = Session(CLUSTERS["stocks"], lambda k: True)
        for t in tickers:
            hub.indexes["stocks"].add(client, Topic("T", t) if t != "*" else Topic("T", "*"))
    data = [market.frame(i) for i in range(TEMPLATES)]
    batch = 4  # frames read from the upstream socket in one loop pass
    started = time.process_time()
    for i in range(0, frames, batch):
        for j in range(batch):
            hub.publish_frame("stocks", Frame(data[(i + j) % TEMPLATES]))
        hub._flush_handle.cancel()
        hub._flush()
    cpu = time.process_time() - started
    events = frames * 50
    return {"clients": len(subs), "whole_frames": whole, "us_per_event": round(cpu * 1e6 / events, 3),
            "deliveries_per_event": round(hub._events_out.n / events, 2)}


async def run() -> list[dict]:
    out = []
    for clients, whole in ((1, True), (50, False), (200, False), (1000, False)):
        best = min([await measure(clients, whole) for _ in range(3)], key=lambda r: r["us_per_event"])
        out.append(best)
    return out
