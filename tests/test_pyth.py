"""Pyth Hermes: symbol → cluster mapping, feed list, price updates → PY events (pure); and the SSE source against
real HTTP servers on 127.0.0.1 (the Hermes simulator, and a scripted server that sends exactly the bytes we want)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.frames import split_frame
from common.metrics import Metrics
from common.topics import Topic
from firehose_proxy.sources.market import MarketConfig
from firehose_proxy.sources.pyth import stream as stream_mod
from firehose_proxy.sources.pyth.feeds import FeedCatalog, map_symbol
from firehose_proxy.sources.pyth.hermes_market import (
    HermesMarket,
    default_feeds,
    feed_id,
)
from firehose_proxy.sources.pyth.simulator import HermesSimulator
from firehose_proxy.sources.pyth.stream import PythSource
from firehose_proxy.sources.pyth.updates import UpdateDecoder, UpdateError, scaled
from tests.helpers import Log, async_wait_for

NOW_MS = 1_700_000_000_000


# ---------------------------------------------------------------------------------------------------- pure


@pytest.mark.parametrize("symbol,mapped", [
    ("Crypto.BTC/USD", ("crypto", "BTC-USD")), ("Equity.US.AAPL/USD", ("stocks", "AAPL")),
    ("Equity.US.AAPL/USD.PRE", ("stocks", "AAPL.PRE")), ("Equity.US.BRK.B/USD", ("stocks", "BRK.B")),
    ("FX.EUR/USD", ("forex", "EUR/USD")), ("Metal.XAU/USD", ("forex", "XAU/USD")),
    ("Rates.US10Y", ("indices", "US10Y")), ("Commodities.USOILSPOT", ("indices", "USOILSPOT")),
    ("Equity.GB.VOD/GBP", None), ("ECO.US.CPI", None), ("Crypto.", None), ("nonsense", None),
])
def test_symbols_map_to_clusters_and_tickers(symbol, mapped):
    assert map_symbol(symbol) == mapped


def test_feed_list_is_indexed_by_id_and_ticker():
    body = json.dumps([
        {"id": "0xAB" + "0" * 62, "attributes": {"symbol": "Crypto.BTC/USD", "asset_type": "Crypto"}},
        {"id": "cd" + "0" * 62, "attributes": {"symbol": "Crypto.ETH/USD"}},
        {"id": "ef" + "0" * 62, "attributes": {"symbol": "Equity.GB.VOD/GBP"}},
        {"id": "01" + "0" * 62, "attributes": {}},
    ])
    catalog = FeedCatalog.from_json(body)
    assert len(catalog) == 2 and catalog.unmapped == 2
    assert catalog.ids_for("crypto", "BTC-USD") == ["ab" + "0" * 62]  # lower case, no 0x
    assert sorted(catalog.ids_for("crypto", "*")) == ["ab" + "0" * 62, "cd" + "0" * 62]
    assert catalog.ids_for("crypto", "DOGE-USD") == [] and catalog.ids_for("stocks", "*") == []


@given(mantissa=st.integers(-(2**63), 2**63 - 1), expo=st.integers(-18, 6))
def test_scaled_is_the_exact_decimal(mantissa, expo):
    text = scaled(mantissa, expo)
    assert Decimal(text.decode()) == Decimal(mantissa).scaleb(expo)
    assert json.loads(text) is not None and b"e" not in text.lower()
    if b"." in text:
        assert not text.endswith(b"0") and not text.endswith(b".")


def payload(updates: list[tuple[str, int, int, int]], expo: int = -8) -> str:
    """A Hermes payload: (id, price, slot, publish_time) per feed."""
    parsed = [{"id": fid, "price": {"price": str(p), "conf": "1500", "expo": expo, "publish_time": pt},
               "ema_price": {"price": str(p - 100), "conf": "1600", "expo": expo, "publish_time": pt},
               "metadata": {"slot": slot, "proof_available_time": pt, "prev_publish_time": pt - 1}}
              for fid, p, slot, pt in updates]
    return json.dumps({"binary": {"encoding": "hex", "data": ["504e4155"]}, "parsed": parsed}, separators=(",", ":"))


def test_updates_become_py_events_once_per_slot():
    btc, aapl = "ab" * 32, "cd" * 32
    catalog = FeedCatalog.from_json(json.dumps([
        {"id": btc, "attributes": {"symbol": "Crypto.BTC/USD"}}, {"id": aapl, "attributes": {"symbol": "Equity.US.AAPL/USD"}}]))
    decoder = UpdateDecoder(catalog)
    out = decoder.decode(payload([(btc, 9700012345678, 10, 1_700_000_000), (aapl, 23012000000, 10, 1_700_000_000),
                                  ("ee" * 32, 1, 10, 1)]))
    assert [(p.cluster, p.event.code, p.event.ticker) for p in out] == [("crypto", "PY", "BTC-USD"), ("stocks", "PY", "AAPL")]
    assert out[0].event.raw == (b'{"ev":"PY","sym":"BTC-USD","p":97000.12345678,"conf":0.000015,"ema":97000.12345578,'
                                b'"t":1700000000000,"id":"' + btc.encode() + b'"}')
    assert json.loads(out[1].event.raw)["p"] == 230.12 and decoder.unknown == 1
    assert decoder.decode(payload([(btc, 1, 10, 1_700_000_000)])) == []  # the same slot again: a duplicate
    assert len(decoder.decode(payload([(btc, 1, 11, 1_700_000_001)]))) == 1
    with pytest.raises(UpdateError):
        decoder.decode("Error receiving update: Lagged(3)")


def test_simulated_hermes_payloads_decode_with_the_real_decoder():
    market = HermesMarket(default_feeds(MarketConfig()), seed=1, start_ms=NOW_MS)
    catalog = FeedCatalog.from_json(market.catalog_json())
    assert {c: len(catalog.ids_for(c, "*")) for c in ("stocks", "crypto", "forex", "indices")} == {
        "stocks": 40, "crypto": 9, "forex": 10, "indices": 2}
    assert market.catalog_json(asset_type="metal").count(b'"id"') == 2
    ids = catalog.ids_for("forex", "*")
    market.advance(NOW_MS + 400)
    events = UpdateDecoder(catalog).decode(market.update(ids, NOW_MS // 1000))
    assert {p.event.ticker for p in events} >= {"EUR/USD", "XAU/USD"} and {p.cluster for p in events} == {"forex"}
    eur = next(json.loads(p.event.raw) for p in events if p.event.ticker == "EUR/USD")
    assert abs(eur["p"] - 1.085) < 0.01 and abs(eur["ema"] - 1.085) < 0.01 and eur["conf"] > 0


# ---------------------------------------------------------------------------------------------------- over sockets


class Collected:
    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []
        self.told: list[tuple[str, bytes, object]] = []

    def publish(self, cluster, frame):
        self.frames.append((cluster, frame.data))

    def tell(self, cluster, obj, wants):
        self.told.append((cluster, obj, wants))
        return 1

    def post_notice(self, cluster, key, obj, wants):
        return self.tell(cluster, obj, wants)

    def withdraw_notice(self, cluster, key, obj):
        return self.tell(cluster, obj, lambda t: True)

    def events(self) -> list[dict]:
        return [json.loads(bytes(e.raw)) for _, data in self.frames for e in split_frame(data)]

    def statuses(self, status: str) -> list[str]:
        return [json.loads(o)["message"] for _, o, _ in self.told if json.loads(o)["status"] == status]


@pytest.fixture
async def hermes():
    started = []

    async def start(**kw) -> tuple[HermesSimulator, str]:
        sim = HermesSimulator(HermesMarket(default_feeds(MarketConfig()), 3, NOW_MS), Log(), **kw)
        port = await sim.start("127.0.0.1", 0)
        started.append(sim)
        return sim, f"http://127.0.0.1:{port}"

    yield start
    for sim in started:
        await sim.close()


def source(url: str, got: Collected, log=None, grace_ms: int = 0, **kw) -> PythSource:
    return PythSource(url, kw.pop("key", ""), log or Log(), Metrics("test"), grace_ms, got.publish, got.tell,
                      notices=got, **kw)


def stream_ids(sim: HermesSimulator) -> list[set[str]]:
    return [{v for k, v in parse_qsl(urlsplit(t).query) if k == "ids[]"} for t in sim.requests if "stream" in t]


async def test_demand_drives_one_debounced_restream_with_the_union_of_ids(hermes):
    sim, url = await hermes()
    got = Collected()
    pyth = source(url, got)
    try:
        pyth.want("crypto", ["BTC-USD"])
        await async_wait_for(lambda: any(e["sym"] == "BTC-USD" for e in got.events()), what="BTC prices")
        pyth.want("stocks", ["AAPL"])
        pyth.want("forex", ["EUR/USD", "XAU/USD"])  # within the debounce: one more stream, not two
        btc, aapl, eur, xau = (feed_id(s) for s in ("Crypto.BTC/USD", "Equity.US.AAPL/USD", "FX.EUR/USD", "Metal.XAU/USD"))
        await async_wait_for(lambda: len(stream_ids(sim)) == 2 and len(sim.streams) == 1, what="restream")
        assert stream_ids(sim) == [{btc}, {btc, aapl, eur, xau}]
        await async_wait_for(lambda: {("stocks", "AAPL"), ("forex", "XAU/USD")} <= {
            (c, e.ticker) for c, d in got.frames for e in split_frame(d)}, what="prices on their clusters")
        slots = [(e["id"], e["t"], e["p"]) for e in got.events()]
        assert len(slots) == len(set(slots)), "the switch published no update twice"
        pyth.unwant("crypto", ["BTC-USD"])
        await async_wait_for(lambda: len(stream_ids(sim)) == 3 and len(sim.streams) == 1, what="shrunk")
        assert stream_ids(sim)[-1] == {aapl, eur, xau}
        pyth.want("crypto", ["NOPE-USD"])
        await async_wait_for(lambda: got.statuses("error"), what="unknown feed told")
        assert got.statuses("error") == ["unknown Pyth feed on /crypto (not in Hermes /v2/price_feeds): PY.NOPE-USD"]
        assert got.told[-1][2](Topic("PY", "NOPE-USD")) and not got.told[-1][2](Topic("PY", "BTC-USD"))
        assert len(stream_ids(sim)) == 3, "an unknown feed changes no stream"
        pyth.want("indices", ["*"])
        await async_wait_for(lambda: {"US10Y", "US2Y"} <= {e["sym"] for e in got.events()}, what="PY.* on indices")
    finally:
        await pyth.stop()


async def test_closed_streams_reconnect_and_subscribers_are_told(hermes):
    sim, url = await hermes(stream_limit_s=0.6, error_every=2, keepalive_s=0.1, multiline=True)
    got = Collected()
    pyth = source(url, got)
    try:
        pyth.want("crypto", ["ETH-USD"])
        await async_wait_for(lambda: sim.opened >= 3 and len(got.statuses("upstream_restored")) >= 2, timeout=15,
                             what="streams closed by the server reopened")
        before = len(got.events())
        await async_wait_for(lambda: len(got.events()) > before + 2, what="prices after reconnecting")
        assert got.statuses("upstream_down")[0].startswith(
            "crypto PY feed interrupted: Pyth Hermes price stream lost (stream closed by Hermes)")
        assert got.statuses("upstream_restored")[0].startswith("crypto PY feed restored after ")
        assert {e["sym"] for e in got.events()} == {"ETH-USD"}
        assert pyth.metrics.value("pyth_stream_errors") >= 2  # the error events, incl. the 24 h one
        assert pyth.metrics.value("pyth_reconnects") >= 2
    finally:
        await pyth.stop()


async def test_api_key_is_a_bearer_and_a_refused_key_stops_without_retrying(hermes):
    sim, url = await hermes(api_key="sekret-key")
    got, log = Collected(), Log()
    good = source(url, got, log, key="sekret-key")
    try:
        good.want("stocks", ["MSFT"])
        await async_wait_for(lambda: got.events(), what="prices with the key")
    finally:
        await good.stop()
    bad_got = Collected()
    bad = source(url, bad_got, log, key="wrong-key")
    try:
        bad.want("stocks", ["MSFT"])
        await async_wait_for(lambda: bad.state == "auth_failed", what="auth failure")
        requests = len(sim.requests)
        assert bad_got.statuses("error") == [
            "Hermes refused the API key on /v2/price_feeds: HTTP 401; not retrying: PY.MSFT"]
        bad.want("stocks", ["AAPL"])  # nothing is even scheduled after a refused key
        assert len(sim.requests) == requests and not bad_got.frames
    finally:
        await bad.stop()
    assert "sekret-key" not in log.text() and "wrong-key" not in log.text()


class ScriptedHermes:
    """An HTTP server that answers the feed list and then plays scripted SSE byte chunks, one script per stream."""

    def __init__(self, feeds: list[tuple[str, str]], scripts: list[list[bytes]], status: int = 200) -> None:
        self.feeds = json.dumps([{"id": i, "attributes": {"symbol": s}} for i, s in feeds]).encode()
        self.scripts = scripts
        self.status = status
        self.requests: list[str] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader, writer):
        target = (await reader.readline()).split()[1].decode()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.requests.append(target)
        if target.startswith("/v2/price_feeds"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                         b"connection: close\r\n\r\n%s" % (len(self.feeds), self.feeds))
        elif self.scripts:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            for chunk in self.scripts.pop(0):
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.01)  # separate TCP segments: lines split across reads
        else:
            body = b"Price ids not found: " + self.feeds[9:73]
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def close(self):
        self.server.close()


async def test_sse_parsing_multiline_keepalives_errors_and_split_reads(monkeypatch):
    monkeypatch.setattr(stream_mod, "RESTREAM_DEBOUNCE_S", 0.0)
    btc = "ab" * 32
    one = payload([(btc, 9700000000000, 1, 1_700_000_000)])
    cut = one.index(',"parsed"') + 1
    script = [
        b": keep-alive comment\r\n\r\n",
        b"data: " + one[:cut].encode() + b"\r\ndata: " + one[cut:20 + cut].encode(),  # a line split across reads
        one[20 + cut:].encode() + b"\r\n\r\n",
        b":\n\nevent: error\ndata: Error receiving update: Lagged(3)\n\n",
        b"retry: 1000\nid: 7\ndata: " + payload([(btc, 9700100000000, 2, 1_700_000_001)]).encode() + b"\n\n",
        b"data: not json\n\n",
    ]
    server = ScriptedHermes([(btc, "Crypto.BTC/USD")], [script])
    url = await server.start()
    got = Collected()
    pyth = source(url, got)
    try:
        pyth.want("crypto", ["BTC-USD"])
        # after the scripted stream ends, the source reconnects; the server then answers 404 for the id
        await async_wait_for(lambda: got.statuses("error"), what="reconnect answered with 404")
        assert [e["p"] for e in got.events()] == [97000, 97001]
        assert pyth.metrics.value("pyth_stream_errors") == 1
        assert pyth.metrics.value("pyth_bad_updates") == 1
        assert got.statuses("upstream_down") and got.statuses("error") == [
            f"Pyth Hermes does not stream feed {btc} (404 Price ids not found): PY.BTC-USD"]
        assert pyth.rejected == {btc} and [r for r in server.requests if "stream" in r][1:] == [
            r for r in server.requests if "stream" in r][:1]  # the same stream, asked again once
    finally:
        await pyth.stop()
        await server.close()
