"""The flood upstream: a minimal Polygon-protocol server that plays pre-built frames at a set rate.

It answers ``connected`` / ``auth_success`` / one ack per subscribed topic, and on the command
``run RATE SECONDS SEQ0 T0`` sends frame ``SEQ0 + i`` at monotonic time ``T0 + i / (RATE / 50)`` to every
authenticated connection (catching up in bursts when it falls behind, never skipping), then replies
``sent N``. ``topics`` replies with how many topics are subscribed. Run: ``python -m fanout_bench.flood``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

from fanout_bench.control import reply, run, stdin_lines
from fanout_bench.market import EVENTS_PER_FRAME, Market

TEXT = WSMsgType.TEXT


def status(status: str, message: str) -> str:
    return json.dumps({"ev": "status", "status": status, "message": message}, separators=(",", ":"))


class Flood:
    def __init__(self) -> None:
        self.market = Market()
        self.receivers: set = set()
        self.topics: set[str] = set()

    def listener(self, request):
        flood = self

        class Conn(WSListener):
            def on_ws_connected(self, transport):
                transport.send(TEXT, "[" + status("connected", "Connected Successfully") + "]")

            def on_ws_frame(self, transport, frame):
                if frame.msg_type == WSMsgType.CLOSE:
                    transport.send_close(WSCloseCode.OK)
                    transport.disconnect()
                    return
                if frame.msg_type != TEXT:
                    return
                msg = json.loads(frame.get_payload_as_bytes())
                params = [p.strip() for p in msg.get("params", "").split(",") if p.strip()]
                if msg["action"] == "auth":
                    flood.receivers.add(transport)
                    transport.send(TEXT, "[" + status("auth_success", "authenticated") + "]")
                elif msg["action"] == "subscribe":
                    flood.topics.update(params)
                    transport.send(TEXT, "[" + ",".join(status("success", f"subscribed to: {p}") for p in params) + "]")
                elif msg["action"] == "unsubscribe":
                    flood.topics.difference_update(params)
                    transport.send(TEXT, "[" + ",".join(status("success", f"unsubscribed to: {p}") for p in params) + "]")

            def pause_writing(self):  # the reader is behind: frames queue in the transport (shows as latency)
                pass

            def resume_writing(self):
                pass

            def on_ws_disconnected(self, transport):
                flood.receivers.discard(transport)

        return Conn()

    async def play(self, rate: float, seconds: float, seq0: int, t0: float) -> int:
        fps = rate / EVENTS_PER_FRAME
        total = max(1, int(seconds * fps))
        frame = self.market.frame
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - t0) * fps) + 1)
            while sent < due:
                data = frame(seq0 + sent)
                for transport in self.receivers:
                    transport.send(TEXT, data)
                sent += 1
            delay = t0 + sent / fps - time.monotonic()
            await asyncio.sleep(delay if delay > 0 else 0)
        return total


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    flood = Flood()
    server = await ws_create_server(flood.listener, "127.0.0.1", args.port, use_aiofastnet=False)
    reply("ready", server.sockets[0].getsockname()[1])
    async for words in stdin_lines():
        if words[0] == "topics":
            reply("topics", len(flood.topics), len(flood.receivers))
        elif words[0] == "run":
            rate, seconds, seq0, t0 = float(words[1]), float(words[2]), int(words[3]), float(words[4])
            reply("sent", await flood.play(rate, seconds, seq0, t0))


if __name__ == "__main__":
    run(main)
