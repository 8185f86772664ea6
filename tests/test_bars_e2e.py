"""Millisecond bars end to end: scripted upstream → firehose → ms_aggregator → proxy → clients."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
import websockets

from tests.helpers import async_wait_for, connect, http_get, run_client, status
from tests.scripted_upstream import ScriptedUpstream

# (ticker, ms after the base second, price, size, conditions); arrival order as listed
TRADES = [
    ("AAPL", 10, 10.0, 100, []),
    ("MSFT", 100, 20.0, 100, []),
    ("AAPL", 50, 10.5, 200, []),
    ("AAPL", 60, 9.0, 50, [37]),  # odd lot: adds volume, not price
    ("AAPL", 150, 11.0, 100, [14]),
    ("MSFT", 240, 21.0, 300, []),
    ("MSFT", 260, 22.0, 100, []),
    ("IBM", 500, 30.0, 100, []),
]


def bar(sym, interval, s, o, h, l, c, v, vw, n):
    return {"ev": "MB", "sym": sym, "interval": interval, "o": o, "h": h, "l": l, "c": c, "v": v, "vw": vw, "n": n,
            "s": s, "e": s + interval}


def expected(base: int) -> list[dict]:
    return [
        bar("AAPL", 100, base, 10.0, 10.5, 10.0, 10.5, 350, (10.0 * 100 + 10.5 * 200 + 9.0 * 50) / 350, 3),
        bar("AAPL", 100, base + 100, 11.0, 11.0, 11.0, 11.0, 100, 11.0, 1),
        bar("MSFT", 250, base, 20.0, 21.0, 20.0, 21.0, 400, (20.0 * 100 + 21.0 * 300) / 400, 2),
        bar("MSFT", 250, base + 250, 22.0, 22.0, 22.0, 22.0, 100, 22.0, 1),
        bar("AAPL", 1000, base, 10.0, 11.0, 10.0, 11.0, 450, (1000 + 2100 + 450 + 1100) / 450, 4),
        bar("IBM", 1000, base, 30.0, 30.0, 30.0, 30.0, 100, 30.0, 1),
        bar("MSFT", 1000, base, 20.0, 22.0, 20.0, 22.0, 500, (2000 + 6300 + 2200) / 500, 3),
    ]


def trade_json(sym, t, p, s, c, q) -> str:
    return json.dumps({"ev": "T", "sym": sym, "x": 4, "i": str(q), "z": 3, "p": p, "s": s, "c": c, "t": t, "q": q},
                      separators=(",", ":"))


def key(b):
    return (b["e"], b["sym"], b["interval"])


@pytest.fixture
async def bar_chain(procs):
    up = await ScriptedUpstream().start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={"UPSTREAM_URL": up.url})
    agg = await asyncio.to_thread(procs.start, "aggregator", "ms_aggregator",
                                  env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}"})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}",
                                      "MS_AGGREGATOR_URL": f"ws://127.0.0.1:{agg.port}"})
    yield up, fh, agg, px
    await up.close()


async def test_exact_bars_through_proxy_direct_and_official_client(bar_chain):
    from massive import WebSocketClient

    up, fh, agg, px = bar_chain
    client = await connect(px.port)
    await client.send({"action": "subscribe", "params": "100Ms.AAPL,250Ms.MSFT,1000Ms.*"})
    direct = await connect(agg.port)
    await direct.send({"action": "subscribe", "params": "100Ms.AAPL,T.AAPL"})
    official = WebSocketClient(api_key="any", feed=f"localhost:{px.port}", market="stocks", secure=False, raw=True,
                               subscriptions=["100Ms.AAPL"])
    official_task = asyncio.create_task(run_client(
        official, lambda got: sum(1 for m in got for e in json.loads(m) if e["ev"] == "MB") >= 2))
    await async_wait_for(
        lambda: status(px.port).get("clusters", {}).get("stocks", {}).get("subscriptions") == 4,
        what="proxy has both clients' subscriptions")
    await async_wait_for(lambda: {"T.AAPL", "T.MSFT", "T.*"} <= up.subscriptions.get("/stocks", set()),
                         what="firehose asked upstream for the trades the bars need")

    base = (int(time.time() * 1000) // 1000) * 1000
    # The feed has been running: one print that updates no bar (Market Center Official Open) starts the clock,
    # so the windows below are covered from their start and come out complete (no "partial").
    await up.send("/stocks", "[" + trade_json("WARMUP", base - 1000, 1.0, 1, [16], 0) + "]")
    await async_wait_for(lambda: status(agg.port)["bars"]["stocks"]["trades_in"] == 1, what="clock started")
    frame = "[" + ",".join(trade_json(sym, base + dt, p, s, c, q) for q, (sym, dt, p, s, c) in enumerate(TRADES)) + "]"
    await up.send("/stocks", frame)

    want = expected(base)
    await client.until(lambda ev: len([e for e in ev if e["ev"] == "MB"]) >= len(want), what="all bars")
    await async_wait_for(lambda: status(agg.port)["bars"]["stocks"]["bars_out"] == len(want) + 0, what="bars_out")
    await client.send({"action": "subscribe", "params": "T.NOTHING"})  # its ack follows anything still in flight
    await client.until(lambda ev: ev[-1].get("message") == "subscribed to: T.NOTHING")
    got = [e for e in client.events if e["ev"] == "MB"]
    assert sorted(got, key=key) == sorted(want, key=key)  # exact, none missing, none duplicated
    assert [key(b) for b in got] == sorted(key(b) for b in got)  # emitted in window-end order

    # the same bars, direct from the aggregator (which refuses raw trades)
    await direct.until(lambda ev: len([e for e in ev if e["ev"] == "MB"]) >= 2)
    acks = [e for e in direct.events if e["ev"] == "status"][2:]  # after connected and auth_success
    assert acks[0]["message"] == "subscribed to: 100Ms.AAPL" and acks[1]["status"] == "error"
    assert [e for e in direct.events if e["ev"] == "MB"] == [b for b in want if b["interval"] == 100]

    raw = await asyncio.wait_for(official_task, 20)
    official_bars = [e for m in raw for e in json.loads(m) if e["ev"] == "MB"]
    assert official_bars == [b for b in want if b["interval"] == 100]

    # a trade for a window that already closed is counted late, not merged (LATE_TRADES=drop)
    await up.send("/stocks", "[" + trade_json("AAPL", base + 20, 99.0, 100, [], 99) + "]")
    await async_wait_for(lambda: status(agg.port)["bars"]["stocks"]["late_trades"] == 1, what="late trade counted")
    metrics = http_get(agg.port, "/metrics")[2]
    assert 'tickfan_late_trades{process="ms_aggregator",cluster="stocks",outcome="dropped"} 1' in metrics
    assert "# TYPE tickfan_late_trades counter" in metrics
    await client.send({"action": "subscribe", "params": "T.NOTHING2"})
    await client.until(lambda ev: ev[-1].get("message") == "subscribed to: T.NOTHING2")
    assert len([e for e in client.events if e["ev"] == "MB"]) == len(want)


async def test_bare_star_never_includes_bars_and_aggregates_relay(bar_chain):
    up, fh, agg, px = bar_chain
    c = await connect(px.port)
    await c.send({"action": "subscribe", "params": "*"})
    d = await connect(agg.port)
    await d.send({"action": "subscribe", "params": "A.AAPL"})
    await async_wait_for(lambda: "A.AAPL" in up.subscriptions.get("/stocks", set()) and
                         "T.*" in up.subscriptions.get("/stocks", set()), what="upstream subscriptions")
    base = (int(time.time() * 1000) // 1000) * 1000
    agg_event = {"ev": "A", "sym": "AAPL", "v": 1, "av": 1, "op": 1.0, "vw": 1.0, "o": 1.0, "c": 1.0, "h": 1.0,
                 "l": 1.0, "a": 1.0, "z": 1, "s": base, "e": base + 1000}
    await up.send("/stocks", json.dumps([json.loads(trade_json("AAPL", base, 1.0, 100, [], 1)), agg_event]))
    await d.until(lambda ev: any(e["ev"] == "A" for e in ev))
    await c.until(lambda ev: {e["ev"] for e in ev} >= {"T", "A"})
    assert all(e["ev"] != "MB" for e in c.events)


async def test_proxy_rejects_bars_topics_on_clusters_without_trades(bar_chain):
    up, fh, agg, px = bar_chain
    c = await connect(px.port, path="/forex")
    await c.send({"action": "subscribe", "params": "100Ms.EUR/USD"})
    (reply,) = await c.recv_frame()
    assert reply == {"ev": "status", "status": "error", "message": "topic not available on /forex: 100Ms.EUR/USD"}


async def test_crypto_bars_from_xt_trades_ignore_conditions(bar_chain):
    up, fh, agg, px = bar_chain
    c = await connect(px.port, path="/crypto")
    await c.send({"action": "subscribe", "params": "100Ms.BTC-USD"})
    await async_wait_for(lambda: "XT.BTC-USD" in up.subscriptions.get("/crypto", set()), what="XT subscription")
    base = (int(time.time() * 1000) // 1000) * 1000
    trades = [
        {"ev": "XT", "pair": "BTC-USD", "p": 100.5, "t": base + 1, "s": 0.25, "c": [2], "i": "1", "x": 1, "r": base + 2},
        {"ev": "XT", "pair": "BTC-USD", "p": 99.5, "t": base + 7, "s": 0.75, "c": [1], "i": "2", "x": 1, "r": base + 8},
    ]
    await up.send("/crypto", json.dumps(trades))
    (mb,) = [e for e in await c.until(lambda ev: any(e["ev"] == "MB" for e in ev)) if e["ev"] == "MB"]
    # the first data the aggregator ever saw on /crypto: nobody knows what that window held before it
    assert mb == {**bar("BTC-USD", 100, base, 100.5, 100.5, 99.5, 99.5, 1.0, (100.5 * 0.25 + 99.5 * 0.75) / 1.0, 2),
                  "partial": True}
    assert isinstance(mb["v"], float)


# -- the aggregator straight on a scripted upstream (standing in for the firehose) -------------------------------

M = 1_700_000_001_000  # a synthetic market time, a multiple of 3000 and 1000: the clocks follow the trades


@pytest.fixture
async def direct_aggregator(procs, request):
    up = await ScriptedUpstream().start()
    env = {"FIREHOSE_URL": up.url, **getattr(request, "param", {})}
    agg = await asyncio.to_thread(procs.start, "aggregator", "ms_aggregator", env=env)
    yield up, agg
    await up.close()


def bars_of(client) -> list[dict]:
    return [e for e in client.events if e["ev"] == "MB"]


async def test_a_window_across_a_dropped_link_is_partial(direct_aggregator):
    up, agg = direct_aggregator
    c = await connect(agg.port)
    await c.send({"action": "subscribe", "params": "3000Ms.AAPL"})
    await async_wait_for(lambda: "T.AAPL" in up.subscriptions.get("/stocks", set()), what="T.AAPL upstream")
    await up.send("/stocks", "[" + trade_json("AAPL", M + 1, 10.0, 100, [], 1) + "]")  # the first data
    await async_wait_for(lambda: status(agg.port)["bars"]["stocks"]["market_ms"], what="the clock is known")
    # the clock jumps to M + 6001 (newest print): [M, M+3000) and [M+3000, M+6000) close; [M+6000, M+9000) opens
    await up.send("/stocks", "[" + trade_json("AAPL", M + 3001, 11.0, 100, [], 2) + ","
                  + trade_json("AAPL", M + 6001, 12.0, 100, [], 3) + "]")
    await c.until(lambda ev: len([e for e in ev if e["ev"] == "MB"]) >= 2, what="the first two bars")
    first, second = bars_of(c)
    assert (first["s"], first["o"], first.get("partial")) == (M, 10.0, True)  # began before the first data
    assert (second["s"], second["o"]) == (M + 3000, 11.0) and "partial" not in second
    connects = up.connects
    await up.drop_all()  # the aggregator's upstream link drops mid-window, then reconnects by itself
    await async_wait_for(lambda: up.connects > connects and "T.AAPL" in up.subscriptions.get("/stocks", set()),
                         what="the aggregator reconnected and re-subscribed")
    await up.send("/stocks", "[" + trade_json("AAPL", M + 6002, 13.0, 100, [], 4) + "]")
    await c.until(lambda ev: len([e for e in ev if e["ev"] == "MB"]) >= 3, timeout=15, what="the window across the gap")
    third = bars_of(c)[2]
    assert (third["s"], third["o"], third["c"], third["n"], third["partial"]) == (M + 6000, 12.0, 13.0, 2, True)


@pytest.mark.parametrize("direct_aggregator", [{"BAR_TICK_MS": "600000"}], indirect=True)
async def test_due_bars_are_flushed_on_sigterm_before_the_1012_close(direct_aggregator):
    up, agg = direct_aggregator  # the tick never comes round again: only the shutdown can close the window
    c = await connect(agg.port)
    await c.send({"action": "subscribe", "params": "1000Ms.AAPL"})
    await async_wait_for(lambda: "T.AAPL" in up.subscriptions.get("/stocks", set()), what="T.AAPL upstream")
    await up.send("/stocks", "[" + trade_json("AAPL", M + 1, 10.0, 100, [], 1) + ","
                  + trade_json("AAPL", M + 2001, 12.0, 100, [], 2) + "]")
    await async_wait_for(lambda: status(agg.port)["bars"]["stocks"]["trades_in"] == 2, what="trades in")
    assert bars_of(c) == []
    agg.popen.send_signal(signal.SIGTERM)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await c.recv_frame(timeout=5)
    assert closed.value.rcvd.code == 1012
    (flushed,) = bars_of(c)  # [M, M+1000) was due; [M+2000, M+3000) was not
    assert (flushed["s"], flushed["o"], flushed["v"]) == (M, 10.0, 100)
    assert await asyncio.to_thread(agg.popen.wait, 5) == 0


async def test_requests_the_aggregator_cannot_serve_are_refused_and_indices_aggregates_relay(direct_aggregator):
    up, agg = direct_aggregator
    idx = await connect(agg.port, path="/indices")
    await idx.send({"action": "subscribe", "params": "A.*,*,100Ms.I:SPX,V.*"})
    replies = await idx.until(lambda ev: len(ev) >= 6, what="four replies")
    assert [(e["status"], e["message"]) for e in replies[2:]] == [
        ("success", "subscribed to: A.*"),
        ("success", "subscribed to: *"),
        ("error", "topic not available on /indices: 100Ms.I:SPX"),
        ("error", "topic not available on this endpoint (serves A, AM, XA, XAS): V.*"),
    ]
    fx = await connect(agg.port, path="/forex")
    await fx.send({"action": "subscribe", "params": "*"})
    (reply,) = await fx.recv_frame()
    assert reply["status"] == "error" and reply["message"].endswith(": *")
    await async_wait_for(lambda: {"A.*", "AM.*"} <= up.subscriptions.get("/indices", set()), what="indices upstream")
    await up.send("/indices", "not json at all")  # a frame nobody can read: counted, skipped
    agg_event = {"ev": "A", "sym": "I:SPX", "op": 1.0, "o": 1.0, "c": 1.0, "h": 1.0, "l": 1.0, "s": M, "e": M + 1000}
    await up.send("/indices", json.dumps([agg_event]))
    await idx.until(lambda ev: any(e["ev"] == "A" for e in ev), what="the relayed aggregate")
    assert [e for e in idx.events if e["ev"] == "A"] == [agg_event]  # once, though A.* and * both match
    assert http_get(agg.port, "/health")[0] == 200
