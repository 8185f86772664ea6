"""A small, independent Polygon-protocol server for tests: records what it is asked, plays the frames it is given.

It deliberately shares no code with tickfan, so a bug in tickfan's hub cannot hide in both sides.
"""

from __future__ import annotations

import json

import websockets
from websockets.asyncio.server import serve


class ScriptedUpstream:
    def __init__(self, keys: set[str] | None = None, max_connections: bool = False) -> None:
        self.keys = keys
        self.max_connections = max_connections
        self.refused: dict[str, str] = {}  # topic -> the error message sent instead of a success ack
        self._silenced: list = []
        self.connections: list = []  # open, authenticated connections
        self.connects = 0
        self.auth_attempts = 0
        self.subscriptions: dict[str, set[str]] = {}  # path -> topics currently subscribed (union of connections)
        self.messages: list[tuple[str, dict]] = []
        self.port = 0
        self._server = None

    async def start(self, port: int = 0) -> "ScriptedUpstream":
        self._server = await serve(self._handle, "127.0.0.1", port, compression=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handle(self, ws) -> None:
        path = ws.request.path
        self.connects += 1
        await ws.send('[{"ev":"status","status":"connected","message":"Connected Successfully"}]')
        try:
            async for text in ws:
                msg = json.loads(text)
                self.messages.append((path, msg))
                if msg["action"] == "auth":
                    self.auth_attempts += 1
                    if self.keys is not None and msg["params"] not in self.keys:
                        await ws.send('[{"ev":"status","status":"auth_failed","message":"authentication failed"}]')
                        await ws.close(1008)
                        return
                    if self.max_connections:
                        await ws.send('[{"ev":"status","status":"max_connections","message":"Maximum number of websocket connections exceeded."}]')
                        await ws.close(1008)
                        return
                    await ws.send('[{"ev":"status","status":"auth_success","message":"authenticated"}]')
                    self.connections.append((path, ws))
                    self.subscriptions.setdefault(path, set())
                    continue
                topics = [t.strip() for t in msg["params"].split(",") if t.strip()]
                subs = self.subscriptions.setdefault(path, set())
                word = "subscribed" if msg["action"] == "subscribe" else "unsubscribed"
                acks = []
                for t in topics:
                    if msg["action"] == "subscribe" and t in self.refused:
                        acks.append({"ev": "status", "status": "error", "message": self.refused[t]})
                        continue
                    (subs.add if msg["action"] == "subscribe" else subs.discard)(t)
                    acks.append({"ev": "status", "status": "success", "message": f"{word} to: {t}"})
                await ws.send(json.dumps(acks))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.connections = [(p, w) for p, w in self.connections if w is not ws]
            if not any(p == path for p, _ in self.connections):
                self.subscriptions.pop(path, None)

    async def send(self, path: str, frame: bytes | str) -> int:
        """Send one raw frame to every authenticated connection on ``path``; returns how many got it."""
        n = 0
        for p, ws in list(self.connections):
            if p == path:
                await ws.send(frame if isinstance(frame, str) else frame.decode())
                n += 1
        return n

    def go_silent(self) -> None:
        """Stop reading every connection: no data, and pings go unanswered, like a hung peer."""
        for _, ws in list(self.connections):
            ws.transport.pause_reading()
            self._silenced.append(ws)
        self.connections = []

    async def drop_all(self) -> None:
        """Cut every connection without a close handshake, like a network drop."""
        for _, ws in list(self.connections):
            ws.transport.abort()

    async def close(self) -> None:
        """Stop listening and close every connection with 1001 (going away), like a server restarting."""
        for ws in self._silenced:
            ws.transport.abort()  # a hung peer would otherwise hold the close for its whole timeout
        self._server.close()
        await self._server.wait_closed()
