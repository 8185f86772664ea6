"""The client swarm: many cheap picows clients in one process, each subscribed to its 10% of the tickers.

A client counts the events it receives (``"ev"`` occurrences, no JSON parse) and, per frame, records the latency
of the frame's oldest event: receipt time minus the event's scheduled send time (from its ``"q"`` stamp).
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array

from picows import WSListener, WSMsgType, ws_connect

from fanout_bench.market import TEMPLATES, Market, stamp_of

TEXT = WSMsgType.TEXT
STATUS = b'[{"ev":"status"'


class Clock:
    """The schedule of the step being measured, shared by all clients."""

    def __init__(self) -> None:
        self.seq0, self.t0, self.fps = 0, 0.0, 1.0
        self.latencies = array("d")


class SwarmClient(WSListener):
    def __init__(self, clock: Clock, expected: list[int]) -> None:
        self.clock = clock
        self.expected = expected  # per template
        self.acks = 0
        self.events = 0
        self.closed_code = None
        self.transport = None

    def on_ws_connected(self, transport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type != TEXT:
            if frame.msg_type == WSMsgType.CLOSE:
                self.closed_code = frame.get_close_code()
                transport.disconnect()
            return
        payload = frame.get_payload_as_bytes()
        if payload.startswith(STATUS):
            self.acks += payload.count(b"subscribed to")
            return
        self.events += payload.count(b'"ev"')
        clock = self.clock
        clock.latencies.append(time.monotonic() - clock.t0 - (stamp_of(payload) - clock.seq0) / clock.fps)

    def expected_between(self, seq0: int, frames: int) -> int:
        """Events this client should receive from frames ``seq0 .. seq0 + frames - 1``."""
        cycles, rest = divmod(frames, TEMPLATES)
        total = cycles * sum(self.expected)
        start = seq0 % TEMPLATES
        for i in range(rest):
            total += self.expected[(start + i) % TEMPLATES]
        return total


class Swarm:
    def __init__(self, market: Market) -> None:
        self.market = market
        self.clock = Clock()
        self.clients: list[SwarmClient] = []

    async def connect(self, url: str, count: int, key: str = "bench") -> None:
        subscriptions = Market.subscriptions(count)
        limit = asyncio.Semaphore(50)

        async def one(tickers: list[str]) -> SwarmClient:
            async with limit:
                expected = self.market.expected(tickers)
                transport, client = await ws_connect(lambda: SwarmClient(self.clock, expected), url,
                                                     use_aiofastnet=False)
                transport.send(TEXT, json.dumps({"action": "auth", "params": key}))
                transport.send(TEXT, json.dumps({"action": "subscribe", "params": ",".join(f"T.{t}" for t in tickers)}))
                return client

        self.clients = list(await asyncio.gather(*(one(t) for t in subscriptions)))
        per = len(subscriptions[0])
        await until(lambda: all(c.acks >= per for c in self.clients), 30, "subscription acks")

    async def close(self) -> None:
        for c in self.clients:
            if c.transport is not None and not c.transport.is_disconnected:
                c.transport.disconnect()
        self.clients = []

    def counts(self) -> list[int]:
        return [c.events for c in self.clients]


async def until(predicate, timeout: float, what: str) -> bool:
    """Wait for a condition (polling); False on timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
