"""End to end: scripted upstream → firehose → filtered proxies → clients, all real processes and sockets."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.helpers import (
    async_wait_for,
    connect,
    http_get,
    quote,
    status,
    trade,
    until_upstream_has,
)
from tests.scripted_upstream import ScriptedUpstream


@pytest.fixture
async def chain(procs):
    """A scripted upstream, a firehose on it, and one filtered proxy (no aggregator)."""
    up = await ScriptedUpstream().start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy",
                                 env={"UPSTREAM_URL": up.url, "UPSTREAM_GRACE_S": "0.3"})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": "",
                                      "UPSTREAM_GRACE_S": "0.3"})
    yield up, fh, px
    await up.close()


async def test_handshake_pipelined_auth_and_subscribes_and_filtering(chain):
    up, fh, px = chain
    ws = await websockets.connect(f"ws://127.0.0.1:{px.port}/stocks")
    frames = [json.loads(await ws.recv())]
    assert frames[0] == [{"ev": "status", "status": "connected", "message": "Connected Successfully"}]
    # auth and two subscribes in one burst, without waiting for replies
    await ws.send('{"action":"auth","params":"anything"}')
    await ws.send('{"action":"subscribe","params":"T.AAPL, Q.MSFT"}')
    await ws.send('{"action":"subscribe","params":"T.*,BAD.X,0Ms.AAPL"}')
    statuses = []
    while len(statuses) < 6:
        statuses += json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert statuses == [
        {"ev": "status", "status": "auth_success", "message": "authenticated"},
        {"ev": "status", "status": "success", "message": "subscribed to: T.AAPL"},
        {"ev": "status", "status": "success", "message": "subscribed to: Q.MSFT"},
        {"ev": "status", "status": "success", "message": "subscribed to: T.*"},
        {"ev": "status", "status": "error", "message": "unknown topic: BAD.X"},
        {"ev": "status", "status": "error", "message": "interval out of range 1..60000 ms: 0Ms.AAPL"},
    ]
    await until_upstream_has(up, {"T.AAPL", "Q.MSFT", "T.*"})
    sent = [trade("AAPL", "1.50", 1), quote("AAPL", 2), quote("MSFT", 3), trade("IBM", "2.10", 4)]
    await up.send("/stocks", "[" + ",".join(sent) + "]")
    got = []
    while len(got) < 3:
        got += [json.dumps(e, separators=(",", ":")) for e in json.loads(await asyncio.wait_for(ws.recv(), 5))]
    # T.AAPL matched by T.AAPL and T.* arrives once; Q.AAPL not subscribed; order and bytes kept
    assert got == [json.dumps(json.loads(s), separators=(",", ":")) for s in (sent[0], sent[2], sent[3])]
    await ws.close()


async def test_bytes_are_forwarded_unchanged(chain):
    up, fh, px = chain
    c = await connect(px.port)
    await c.send({"action": "subscribe", "params": "T.AAPL"})
    await c.recv_frame()
    await until_upstream_has(up, {"T.AAPL"})
    raw = trade("AAPL", "114.1250", 9)
    await up.send("/stocks", f"[ {raw} ]")
    frame = await asyncio.wait_for(c.ws.recv(), 5)
    assert frame == f"[{raw}]"


async def test_bare_star_and_unsubscribe_stops_flow(chain):
    up, fh, px = chain
    c = await connect(px.port)
    await c.send({"action": "subscribe", "params": "*"})
    assert (await c.recv_frame())[0]["message"] == "subscribed to: *"
    await until_upstream_has(up, {"T.*", "Q.*", "A.*", "AM.*", "LULD.*"})
    await up.send("/stocks", f"[{trade('A', q=1)},{quote('B', 2)}]")
    await c.until(lambda ev: len([e for e in ev if e["ev"] != "status"]) >= 2)
    await c.send({"action": "unsubscribe", "params": "*"})
    await c.until(lambda ev: ev[-1].get("message") == "unsubscribed to: *")
    # the unsubscribe shrinks the firehose's upstream set after the grace period
    await async_wait_for(lambda: not up.subscriptions.get("/stocks"), what="upstream unsubscribed")
    before = len(c.data())
    await c.send({"action": "subscribe", "params": "Q.MARKER"})
    await until_upstream_has(up, {"Q.MARKER"})
    await up.send("/stocks", f"[{trade('A', q=3)},{quote('MARKER', 4)}]")
    await c.until(lambda ev: ev[-1].get("sym") == "MARKER")
    assert [e["ev"] for e in c.data()[before:]] == ["Q"]  # the trade after unsubscribing never arrived


async def test_two_proxies_share_one_upstream_with_union_of_demand(chain, procs):
    up, fh, px = chain
    px2 = await asyncio.to_thread(procs.start, "proxy2", "filtered_proxy",
                                  env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": "",
                                       "UPSTREAM_GRACE_S": "0.3"})
    a = await connect(px.port)
    b = await connect(px2.port)
    await a.send({"action": "subscribe", "params": "T.AAPL"})
    await b.send({"action": "subscribe", "params": "T.MSFT,T.AAPL"})
    await until_upstream_has(up, {"T.AAPL", "T.MSFT"})
    assert up.connects == 1 and len(up.connections) == 1
    await up.send("/stocks", f"[{trade('AAPL', q=1)},{trade('MSFT', q=2)}]")
    await a.until(lambda ev: any(e.get("sym") == "AAPL" for e in ev))
    await b.until(lambda ev: {e.get("sym") for e in ev} >= {"AAPL", "MSFT"})
    assert all(e.get("sym") != "MSFT" for e in a.data())
    await b.ws.close()
    await async_wait_for(lambda: up.subscriptions.get("/stocks") == {"T.AAPL"}, what="upstream set shrinks to T.AAPL")
    st = status(fh.port)
    assert st["clients"] == 2 and st["clusters"]["stocks"]["topics"] == ["T.AAPL"]  # two proxies, one topic


async def test_upstream_drop_reconnects_and_resubscribes(chain):
    up, fh, px = chain
    c = await connect(px.port)
    await c.send({"action": "subscribe", "params": "T.AAPL"})
    await until_upstream_has(up, {"T.AAPL"})
    await up.drop_all()
    await async_wait_for(lambda: up.connects >= 2 and "T.AAPL" in up.subscriptions.get("/stocks", set()),
                         what="firehose reconnected and re-subscribed")
    await up.send("/stocks", f"[{trade('AAPL', q=7)}]")
    await c.until(lambda ev: any(e.get("q") == 7 for e in ev))
    assert status(fh.port)["counters"]["upstream_reconnects"] == {"upstream=upstream_url/stocks": 1}
    assert "tickfan_upstream_reconnects" in http_get(fh.port, "/metrics")[2]


async def test_upstream_auth_failure_stops_without_hot_loop(procs):
    up = await ScriptedUpstream(keys={"right"}).start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy",
                                 env={"UPSTREAM_URL": up.url, "POLYGON_API_KEY": "wrong-secret-key"})
    c = await connect(fh.port)
    await c.send({"action": "subscribe", "params": "T.AAPL"})
    await async_wait_for(lambda: status(fh.port)["upstreams"].get("stocks", {}).get("state") == "auth_failed",
                         what="upstream state auth_failed")
    assert up.auth_attempts == 1
    # No retry follows: the first retry of a backoff loop would come within 0.5 s; watch for 2 s.
    with pytest.raises(AssertionError, match="timed out"):
        await async_wait_for(lambda: up.auth_attempts > 1, timeout=2.0, what="a retry after auth_failed")
    assert "wrong-secret-key" not in fh.log() and "wrong-secret-key" not in http_get(fh.port, "/status")[2]
    assert "upstream_auth_failed" in fh.log()
    await up.close()


async def test_malformed_input_gets_errors_and_other_clients_never_notice(chain):
    up, fh, px = chain
    good = await connect(px.port)
    await good.send({"action": "subscribe", "params": "T.AAPL"})
    await until_upstream_has(up, {"T.AAPL"})
    bad = await connect(px.port)
    for message, expect in [
        ("{not json", "malformed JSON"),
        ('{"action":"jump"}', "unknown action"),
        ("x" * 70_000, "message too large"),
    ]:
        await bad.send(message)
        (reply,) = await bad.recv_frame()
        assert reply["status"] == "error" and expect in reply["message"]
    await bad.send({"action": "subscribe", "params": "T.MSFT"})
    assert (await bad.recv_frame())[0]["message"] == "subscribed to: T.MSFT"
    await up.send("/stocks", f"[{trade('AAPL', q=5)}]")
    await good.until(lambda ev: any(e.get("q") == 5 for e in ev))
    assert status(px.port)["counters"]["client_errors"] == 3
    for _ in range(50):  # a flood of bad input: every one answered, one log line a second at most
        await bad.send("{flood")
    await bad.until(lambda ev: sum(1 for e in ev if "malformed JSON" in e.get("message", "")) == 51, what="answers")
    assert status(px.port)["counters"]["client_errors"] == 53
    lines = [line for line in px.log().splitlines() if '"client_error"' in line]
    assert 1 <= len(lines) <= 3 and all('"level": "info"' in line for line in lines), lines


async def test_auth_failure_timeout_and_unknown_path(procs):
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"TICKFAN_API_KEYS": "good", "TICKFAN_INTERNAL_TOKEN": "t", "AUTH_TIMEOUT_S": "0.5",
                                      "FIREHOSE_URL": "ws://127.0.0.1:9", "MS_AGGREGATOR_URL": ""})
    c = await connect(px.port, key=None)
    await c.send({"action": "subscribe", "params": "T.AAPL"})
    assert await c.recv_frame() == [{"ev": "status", "status": "auth_required", "message": "authentication required"}]
    await c.send({"action": "auth", "params": "nope"})
    assert await c.recv_frame() == [{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await c.ws.recv()
    assert closed.value.rcvd.code == 1008
    idle = await connect(px.port, key=None)
    assert await idle.recv_frame() == [{"ev": "status", "status": "auth_timeout",
                                        "message": "No authentication request received."}]
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await idle.ws.recv()
    assert closed.value.rcvd.code == 1008
    ws = await websockets.connect(f"ws://127.0.0.1:{px.port}/nope")
    (err,) = json.loads(await ws.recv())
    assert err["status"] == "error" and "unknown path" in err["message"]
    assert status(px.port)["counters"]["auth_failures"] == 1


def test_http_endpoints(procs):
    px = procs.start("proxy", "filtered_proxy", env={"FIREHOSE_URL": "ws://127.0.0.1:9", "MS_AGGREGATOR_URL": ""})
    assert http_get(px.port, "/health")[:2] == (200, "text/plain; charset=utf-8")
    code, ctype, body = http_get(px.port, "/status")
    assert code == 200 and ctype == "application/json" and json.loads(body)["process"] == "filtered_proxy"
    code, ctype, body = http_get(px.port, "/metrics")
    assert code == 200 and "tickfan_clients{" in body and "# TYPE tickfan_dropped_events counter" in body
    assert http_get(px.port, "/nope")[0] == 404


def test_refuses_public_bind_without_keys(procs, tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT

    out = subprocess.run([sys.executable, "-m", "filtered_proxy", "--host", "0.0.0.0", "--port", "0"],
                         cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "TICKFAN_API_KEYS" in out.stdout + out.stderr


async def test_keys_and_internal_token_across_tiers(procs):
    up = await ScriptedUpstream().start()
    keys = {"TICKFAN_API_KEYS": "team-key", "TICKFAN_INTERNAL_TOKEN": "tier-token"}
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={"UPSTREAM_URL": up.url, **keys})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": "", **keys})
    c = await connect(px.port, key="team-key")
    await c.send({"action": "subscribe", "params": "T.AAPL"})
    await until_upstream_has(up, {"T.AAPL"})
    await up.send("/stocks", f"[{trade('AAPL', q=3)}]")
    await c.until(lambda ev: any(e.get("q") == 3 for e in ev))
    for proc in (fh, px):
        assert "tier-token" not in proc.log() and "team-key" not in proc.log()
    await up.close()


async def test_oversized_message_closes_1009_and_others_carry_on(chain):
    up, fh, px = chain
    good = await connect(px.port)
    await good.send({"action": "subscribe", "params": "T.AAPL"})
    edge = await connect(px.port)
    await edge.send("x" * (1 << 20))  # exactly 1 MiB: too large to act on, small enough to read
    (reply,) = await edge.recv_frame()
    assert reply["status"] == "error" and "message too large" in reply["message"]
    big = await connect(px.port)
    await big.send("x" * ((1 << 20) + 1))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await big.ws.recv()
    assert closed.value.rcvd.code == 1009
    await until_upstream_has(up, {"T.AAPL"})
    await up.send("/stocks", f"[{trade('AAPL', q=11)}]")
    await good.until(lambda ev: any(e.get("q") == 11 for e in ev))


def test_static_firehose_subscriptions_parse_per_cluster():
    from common.settings import SettingsError
    from firehose_proxy.static import static_topics

    assert static_topics("T.*, Q.AAPL,crypto/XT.*,forex/C.EUR/USD") == {
        "stocks": ["T.*", "Q.AAPL"], "crypto": ["XT.*"], "forex": ["C.EUR/USD"]}
    assert static_topics("indices/*") == {"indices": ["V.*", "A.*", "AM.*", "PY.*"]}
    for bad in ("moon/T.*", "100Ms.AAPL", "XT.BTC-USD"):
        with pytest.raises(SettingsError):
            static_topics(bad)


async def test_garbage_from_upstream_is_counted_and_skipped(chain):
    up, fh, px = chain
    c = await connect(px.port)
    await c.send({"action": "subscribe", "params": "T.AAPL"})
    await until_upstream_has(up, {"T.AAPL"})
    await up.send("/stocks", "this is not json")
    await up.send("/stocks", '{"ev":"T"}')
    await up.send("/stocks", f"[{trade('AAPL', q=21)}]")
    await c.until(lambda ev: any(e.get("q") == 21 for e in ev))
    assert status(fh.port)["counters"]["upstream_bad_frames"] == {"upstream=upstream_url/stocks": 2}
    assert status(fh.port)["upstreams"]["stocks"]["state"] == "connected"  # nothing ended the connection task


async def test_a_forex_quote_of_the_wrong_shape_ends_nothing_and_loses_no_neighbour(chain):
    up, fh, px = chain
    fx = await connect(px.port, "/forex")
    await fx.send({"action": "subscribe", "params": "C.*"})
    await until_upstream_has(up, {"C.*"}, "/forex")
    good = '{"ev":"C","p":"EUR/USD","x":48,"a":1.1,"b":1.09,"t":1}'
    await up.send("/forex", f'[{{"ev":"C","p":1.5,"a":1}},{good}]')  # once a ValidationError that killed the task
    await up.send("/forex", f"[{good.replace('EUR/USD', 'USD/JPY')}]")
    await fx.until(lambda ev: {"EUR/USD", "USD/JPY"} <= {e.get("p") for e in ev}, what="both good quotes")
    assert {"ev": "C", "p": 1.5, "a": 1} in fx.events  # forwarded as sent: C.* asked for every quote
    assert status(fh.port)["upstreams"]["forex"]["state"] == "connected"


async def test_upstream_max_connections_backs_off_and_retries(procs):
    up = await ScriptedUpstream(max_connections=True).start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={"UPSTREAM_URL": up.url})
    c = await connect(fh.port)
    await c.send({"action": "subscribe", "params": "T.AAPL"})
    await async_wait_for(lambda: up.auth_attempts >= 2, what="a retry after max_connections")
    upstream = status(fh.port)["upstreams"]["stocks"]
    assert upstream["state"] in ("backoff", "connecting") and "max_connections" in upstream["last_error"]
    up.max_connections = False  # the other session went away: the next retry gets in and subscribes
    await async_wait_for(lambda: "T.AAPL" in up.subscriptions.get("/stocks", set()), timeout=30,
                         what="subscribed after the limit cleared")
    await up.close()
