"""The ceiling: a minimal picows relay, the least a filtering fan-out can do in Python.

One upstream connection (to the flood, ``T.*``); clients subscribe ``T.<ticker>`` lists. Each upstream frame is
split once (msgspec: routing keys and raw objects), each event appended to the list of every client of its
ticker, and every touched client gets one frame per socket read. No protocol checks, bounds, metrics or logs:
what tickfan's chain is compared against. Run: ``python -m fanout_bench.relay --upstream ws://...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import msgspec
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect, ws_create_server

from fanout_bench.control import reply, run, stdin_lines
from fanout_bench.flood import status

TEXT = WSMsgType.TEXT


class Key(msgspec.Struct):
    ev: str
    sym: str = ""


keys_of = msgspec.json.Decoder(list[Key]).decode
raws_of = msgspec.json.Decoder(list[msgspec.Raw]).decode


class Relay:
    def __init__(self) -> None:
        self.by_ticker: dict[str, list] = {}
        self.dirty: list = []

    def client(self, request):
        relay = self

        class Client(WSListener):
            def __init__(self):
                self.items: list = []
                self.transport = None

            def on_ws_connected(self, transport):
                self.transport = transport
                transport.send(TEXT, "[" + status("connected", "Connected Successfully") + "]")

            def on_ws_frame(self, transport, frame):
                if frame.msg_type == WSMsgType.CLOSE:
                    transport.send_close(WSCloseCode.OK)
                    transport.disconnect()
                    return
                msg = json.loads(frame.get_payload_as_bytes())
                if msg["action"] == "auth":
                    transport.send(TEXT, "[" + status("auth_success", "authenticated") + "]")
                    return
                topics = [p.strip() for p in msg.get("params", "").split(",") if p.strip()]
                for topic in topics:
                    relay.by_ticker.setdefault(topic.partition(".")[2], []).append(self)
                transport.send(TEXT, "[" + ",".join(status("success", f"subscribed to: {t}") for t in topics) + "]")

            def pause_writing(self):  # the reader is behind: frames queue in the transport (shows as latency)
                pass

            def resume_writing(self):
                pass

            def on_ws_disconnected(self, transport):
                for clients in relay.by_ticker.values():
                    if self in clients:
                        clients.remove(self)

        return Client()

    def upstream(self):
        relay = self

        class Upstream(WSListener):
            def on_ws_frame(self, transport, frame):
                data = frame.get_payload_as_bytes()
                if not data.startswith(b'[{"ev":"status"'):
                    by_ticker, dirty = relay.by_ticker, relay.dirty
                    for key, raw in zip(keys_of(data), raws_of(data)):
                        for client in by_ticker.get(key.sym, ()):
                            if not client.items:
                                dirty.append(client)
                            client.items.append(raw)
                if frame.last_in_buffer:  # coalesce once per socket read
                    for client in relay.dirty:  # header room in front: picows' plain send corrupts >8 KiB frames
                        buf = bytearray(b"\0" * 14 + b"[")  # that a paused uvloop transport still holds
                        buf += b",".join(client.items)
                        buf += b"]"
                        client.transport.send_reuse_external_bytearray(TEXT, buf, 14)
                        client.items = []
                    relay.dirty = []

        return Upstream()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    relay = Relay()
    server = await ws_create_server(relay.client, "127.0.0.1", args.port, use_aiofastnet=False)
    transport, _ = await ws_connect(relay.upstream, args.upstream + "/stocks", use_aiofastnet=False)
    transport.send(TEXT, json.dumps({"action": "auth", "params": "bench"}))
    transport.send(TEXT, json.dumps({"action": "subscribe", "params": "T.*"}))
    reply("ready", server.sockets[0].getsockname()[1])
    async for _ in stdin_lines():
        pass


if __name__ == "__main__":
    run(main)
