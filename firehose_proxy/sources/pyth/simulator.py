"""A Pyth Hermes simulator: the two endpoints tickfan uses, over real HTTP/1.1 (h11), with Hermes' behaviour.

``GET /v2/price_feeds`` serves the feed list; ``GET /v2/updates/price/stream?ids[]=…&parsed=true`` streams one SSE
``data:`` event per slot with the requested feeds, ``:`` keep-alive comments, ``event: error`` events (Hermes sends
them when its broadcast lags; here every ``error_every`` updates too), and closes the stream after
``stream_limit_s`` with Hermes' ``Connection timeout reached (24h)`` error, as the real service does after 24 h.
Unknown ids get Hermes' ``404 Price ids not found: …``; with an ``api_key``, requests without that Bearer get 401.
``multiline`` splits each payload over two ``data:`` lines (valid SSE, joined by the client with a newline).

The firehose starts one on a loopback port when no Polygon key is set; ``tickfan-hermes-sim`` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import h11

from common.clock import wall_ms
from common.runner import run_process
from common.settings import setting
from firehose_proxy.sources.market.config import MarketConfig
from firehose_proxy.sources.pyth.feeds import normalize_id
from firehose_proxy.sources.pyth.hermes_market import (
    SLOT_MS,
    HermesMarket,
    default_feeds,
)

QUEUE_SLOTS = 50  # updates a stream may fall behind before it is told it lagged (Hermes' broadcast lag)


@dataclass(frozen=True)
class HermesSimSettings:
    """The Pyth Hermes simulator served alone: SSE price streams for tests and demos."""

    host: str = setting("127.0.0.1", "PYTH_SIM_HOST", "Address the standalone Hermes simulator listens on.")
    port: int = setting(8770, "PYTH_SIM_PORT", "Port the standalone Hermes simulator listens on.")
    seed: int = setting(7, "SIM_SEED", "Seed of the simulated prices.")
    keepalive_s: float = setting(15.0, "PYTH_SIM_KEEPALIVE_S", "Seconds between ':' keep-alive comments on a stream.")
    stream_limit_s: float = setting(
        86400.0, "PYTH_SIM_STREAM_LIMIT_S", "Seconds after which a stream is closed, as Hermes does after 24 h.")
    error_every: int = setting(0, "PYTH_SIM_ERROR_EVERY", "Send an 'event: error' after every N updates (0: never).")
    multiline: bool = setting(False, "PYTH_SIM_MULTILINE", "Split each payload over two 'data:' lines.")
    log_level: str = setting("info", "LOG_LEVEL", "debug, info, warning or error.")


class _Stream:
    __slots__ = ("ids", "queue", "lagged")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SLOTS)
        self.lagged = 0


class HermesSimulator:
    def __init__(self, market: HermesMarket, log, keepalive_s: float = 15.0, stream_limit_s: float = 86400.0,
                 error_every: int = 0, multiline: bool = False, api_key: str = "") -> None:
        self.market = market
        self.log = log
        self.keepalive_s = keepalive_s
        self.stream_limit_s = stream_limit_s
        self.error_every = error_every
        self.multiline = multiline
        self._api_key = api_key
        self.streams: set[_Stream] = set()
        self.requests: list[str] = []  # request targets, in order (tests read them)
        self.opened = 0
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task | None = None
        self._conns: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._connection, host, port)
        self._ticker = asyncio.get_running_loop().create_task(self._run())
        bound = self._server.sockets[0].getsockname()[1]
        self.log.info("hermes_sim_listening", host=host, port=bound, feeds=len(self.market.feeds))
        return bound

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            now = wall_ms()
            if self.market.advance(now):
                for stream in list(self.streams):
                    try:
                        stream.queue.put_nowait(self.market.update(stream.ids, now // 1000))
                    except asyncio.QueueFull:
                        stream.lagged += 1
            await asyncio.sleep((SLOT_MS - now % SLOT_MS) / 1000)

    # -- HTTP ----------------------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            request = await self._read_request(conn, reader)
            if request is not None:
                await self._respond(conn, request, reader, writer)
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # closing: end quietly (asyncio logs a cancelled connection task as an error)
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        request = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and request is None:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _respond(self, conn: h11.Connection, request: h11.Request, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        target = request.target.decode()
        self.requests.append(target)
        parts = urlsplit(target)
        query = parse_qsl(parts.query)
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}

        async def simple(status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            writer.write(conn.send(h11.Response(status_code=status, headers=[
                ("content-type", content_type), ("content-length", str(len(body))), ("connection", "close")])))
            writer.write(conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()

        if parts.path in ("/health", "/live", "/ready"):
            return await simple(200, b"ok\n")
        if self._api_key and headers.get("authorization") != f"Bearer {self._api_key}":
            return await simple(401, b"Unauthorized")
        if parts.path == "/v2/price_feeds":
            q = dict(query)
            return await simple(200, self.market.catalog_json(q.get("asset_type", ""), q.get("query", "")),
                                "application/json")
        if parts.path != "/v2/updates/price/stream":
            return await simple(404, b"Not Found")
        ids = [normalize_id(v) for k, v in query if k in ("ids[]", "ids")]
        if not ids:
            return await simple(400, b"Failed to deserialize query string: missing field `ids`")
        missing = self.market.missing(ids)
        if missing:
            return await simple(404, f"Price ids not found: {', '.join(missing)}".encode())
        await self._stream(conn, ids, reader, writer)

    async def _stream(self, conn: h11.Connection, ids: list[str], reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        writer.write(conn.send(h11.Response(status_code=200, headers=[
            ("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("connection", "close")])))
        await writer.drain()
        stream = _Stream(ids)
        self.streams.add(stream)
        self.opened += 1
        gone = asyncio.get_running_loop().create_task(reader.read())  # EOF: the client went away
        started = last_alive = time.monotonic()
        sent = 0
        try:
            while not gone.done():
                now = time.monotonic()
                if now - started >= self.stream_limit_s:
                    writer.write(conn.send(h11.Data(data=b"event: error\ndata: Connection timeout reached (24h)\n\n")))
                    writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    return
                if now - last_alive >= self.keepalive_s:
                    writer.write(conn.send(h11.Data(data=b":\n\n")))
                    last_alive = now
                wait = min(self.keepalive_s - (now - last_alive), self.stream_limit_s - (now - started))
                try:
                    payload = await asyncio.wait_for(stream.queue.get(), max(0.0, wait))
                except TimeoutError:
                    continue
                if stream.lagged:
                    writer.write(conn.send(h11.Data(
                        data=f"event: error\ndata: Error receiving update: Lagged({stream.lagged})\n\n".encode())))
                    stream.lagged = 0
                writer.write(conn.send(h11.Data(data=self._event(payload))))
                sent += 1
                if self.error_every and sent % self.error_every == 0:
                    writer.write(conn.send(h11.Data(data=b"event: error\ndata: Error receiving update: simulated\n\n")))
                await writer.drain()
        finally:
            self.streams.discard(stream)
            gone.cancel()

    def _event(self, payload: bytes) -> bytes:
        if self.multiline:
            cut = payload.find(b',"parsed":')
            if cut > 0:
                return b"data: " + payload[:cut + 1] + b"\ndata: " + payload[cut + 1:] + b"\n\n"
        return b"data: " + payload + b"\n\n"


def hermes_simulator(seed: int, log, market_config: MarketConfig | None = None, **kw) -> HermesSimulator:
    """A simulator over the default feeds (those of ``market_config``'s tickers) starting now."""
    feeds = default_feeds(market_config or MarketConfig())
    return HermesSimulator(HermesMarket(feeds, seed, wall_ms()), log, **kw)


async def serve(settings: HermesSimSettings, log, stop: asyncio.Event) -> None:
    sim = hermes_simulator(settings.seed, log, keepalive_s=settings.keepalive_s,
                           stream_limit_s=settings.stream_limit_s, error_every=settings.error_every,
                           multiline=settings.multiline)
    await sim.start(settings.host, settings.port)
    log.warning("hermes_simulator", message="serving SIMULATED Pyth prices", seed=settings.seed)
    await stop.wait()
    await sim.close()


def main(argv=None) -> int:
    return run_process("hermes_simulator", HermesSimSettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
