"""A Polygon-protocol crypto feed with venues of different constant delays, for scripts/bench_latency --venues.

Pair i trades on venues 0..(i mod V). Every trade is stamped with the wall clock when it happens and sent
``delay[venue]`` ms later, so each venue's prints reach the firehose behind the others by its delay. It answers
the protocol (connected, auth_success, one ack per topic) and streams every trade to every connection on /crypto.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import random
import time

import websockets
from websockets.asyncio.server import serve


def slowest_delay(pair: int, delays: list[int]) -> int:
    return delays[pair % len(delays)]


class VenueFeed:
    def __init__(self, delays: list[int], pairs: int, rate: float, seed: int = 3) -> None:
        self.delays, self.pairs, self.rate = delays, pairs, rate
        self.rng = random.Random(seed)
        self.clients: set = set()
        self.port = 0
        self._server = None
        self._task: asyncio.Task | None = None

    async def start(self) -> VenueFeed:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None)
        self.port = self._server.sockets[0].getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._stream())
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handle(self, ws) -> None:
        await ws.send('[{"ev":"status","status":"connected","message":"Connected Successfully"}]')
        try:
            async for text in ws:
                msg = json.loads(text)
                if msg.get("action") == "auth":
                    await ws.send('[{"ev":"status","status":"auth_success","message":"authenticated"}]')
                    if ws.request.path == "/crypto":
                        self.clients.add(ws)
                    continue
                topics = [t for t in msg.get("params", "").split(",") if t]
                word = "subscribed" if msg.get("action") == "subscribe" else "unsubscribed"
                await ws.send(json.dumps([{"ev": "status", "status": "success", "message": f"{word} to: {t}"}
                                          for t in topics]))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.clients.discard(ws)

    async def _stream(self) -> None:
        pending: list[tuple[float, int, dict]] = []  # (send at, seq, trade)
        seq = 0
        last = time.time()
        carry = 0.0
        while True:
            await asyncio.sleep(0.001)
            now = time.time()
            carry += (now - last) * self.rate
            last = now
            t_ms = int(now * 1000)
            for _ in range(int(carry)):
                pair = self.rng.randrange(self.pairs)
                venue = self.rng.randrange(pair % len(self.delays) + 1)
                seq += 1
                trade = {"ev": "XT", "pair": f"P{pair:04d}-USD", "p": round(100 + self.rng.random(), 2), "t": t_ms,
                         "s": 0.5, "c": [1], "i": str(seq), "x": venue + 1, "r": t_ms}
                heapq.heappush(pending, (now + self.delays[venue] / 1000, seq, trade))
            carry -= int(carry)
            due = []
            while pending and pending[0][0] <= now:
                due.append(heapq.heappop(pending)[2])
            if due and self.clients:
                frame = json.dumps(due, separators=(",", ":"))
                for ws in list(self.clients):
                    try:
                        await ws.send(frame)
                    except websockets.ConnectionClosed:
                        self.clients.discard(ws)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._server.close()
        await self._server.wait_closed()
