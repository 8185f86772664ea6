"""Nothing silent: real processes, real outages, and what each client is told (issue #8, "Clients are told")."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import pytest

from tests.helpers import (
    async_wait_for,
    connect,
    http_get,
    status,
    trade,
    until_upstream_has,
)
from tests.scripted_upstream import ScriptedUpstream


def told(client, kind: str) -> list[str]:
    return [e["message"] for e in client.events if e.get("ev") == "status" and e.get("status") == kind]


def after(client, kind: str) -> list[dict]:
    """The data events a client got after the last status of ``kind``."""
    idx = max((i for i, e in enumerate(client.events) if e.get("status") == kind), default=len(client.events))
    return [e for e in client.events[idx + 1:] if e.get("ev") != "status"]


@pytest.fixture
async def sim_chain(procs):
    """The default stack (simulated market), with the firehose's port fixed so it can be restarted in place."""
    env = {"SIM_RATE": "1000", "PYTH_HERMES_URL": "off"}
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env=env)
    agg = await asyncio.to_thread(procs.start, "aggregator", "ms_aggregator",
                                  env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}"})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy", env={
        "FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": f"ws://127.0.0.1:{agg.port}"})
    return procs, env, fh, agg, px


async def test_kill9_of_the_firehose_is_told_and_data_and_bars_resume(sim_chain):
    procs, env, fh, agg, px = sim_chain
    native, bars = await connect(px.port), await connect(px.port)
    await native.send({"action": "subscribe", "params": "T.*"})
    await bars.send({"action": "subscribe", "params": "100Ms.*"})
    await native.until(lambda ev: any(e.get("ev") == "T" for e in ev), what="trades")
    await bars.until(lambda ev: any(e.get("ev") == "MB" for e in ev), what="bars")
    fh.popen.kill()
    for c in (native, bars):
        await c.until(lambda ev: told(c, "upstream_down"), what="upstream_down")
        assert told(c, "upstream_down")[0].startswith("stocks feed interrupted: ")
        assert told(c, "upstream_down")[0].endswith("; it will resume by itself")
    await asyncio.to_thread(procs.start, "firehose-again", "firehose_proxy", env=env, port=fh.port)
    restarted = time.monotonic()
    await native.until(lambda ev: any(e.get("ev") == "T" for e in after(native, "upstream_restored")), timeout=5,
                       what="trades within 5 s of the restart")
    await bars.until(lambda ev: any(e.get("ev") == "MB" for e in after(bars, "upstream_restored")), timeout=5,
                     what="bars within 5 s of the restart")
    assert time.monotonic() - restarted < 5
    for c in (native, bars):  # told once each way, on the same connection
        assert len(told(c, "upstream_down")) == 1 and len(told(c, "upstream_restored")) == 1
        assert told(c, "upstream_restored")[0].startswith("stocks feed restored after ")
    assert status(px.port)["clients"] == 2


async def test_kill9_of_the_aggregator_is_told_only_to_bar_clients(sim_chain):
    procs, env, fh, agg, px = sim_chain
    native, bars = await connect(px.port), await connect(px.port)
    await native.send({"action": "subscribe", "params": "T.*"})
    await bars.send({"action": "subscribe", "params": "250Ms.*"})
    await bars.until(lambda ev: any(e.get("ev") == "MB" for e in ev), what="bars")
    agg.popen.kill()
    await bars.until(lambda ev: told(bars, "upstream_down"), what="upstream_down for bars")
    await asyncio.to_thread(procs.start, "aggregator-again", "ms_aggregator",
                            env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}"}, port=agg.port)
    await bars.until(lambda ev: any(e.get("ev") == "MB" for e in after(bars, "upstream_restored")), timeout=5,
                     what="bars again")
    n = len(native.events)
    await native.until(lambda ev: len(ev) > n + 10, what="trades never stopped")
    assert not told(native, "upstream_down"), "a client of trades only does not hear about the bar tier"


@pytest.fixture
async def scripted_chain(procs):
    up = await ScriptedUpstream().start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy",
                                 env={"UPSTREAM_URL": up.url, "PYTH_HERMES_URL": "off"})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": ""})
    yield up, fh, px
    await up.close()


async def test_polygon_outages_and_refused_topics_reach_exactly_the_clients_concerned(scripted_chain):
    up, fh, px = scripted_chain
    up.refused["T.NOPE"] = "not entitled to this data: T.NOPE"
    a, b, c = await connect(px.port), await connect(px.port), await connect(px.port, "/crypto")
    await a.send({"action": "subscribe", "params": "T.AAPL"})
    await b.send({"action": "subscribe", "params": "T.NOPE"})
    await c.send({"action": "subscribe", "params": "XT.BTC-USD"})
    await b.until(lambda ev: told(b, "error"), what="the refusal, relayed")
    assert told(b, "error") == ["not entitled to this data: T.NOPE"]
    await until_upstream_has(up, {"T.AAPL"})
    await until_upstream_has(up, {"XT.BTC-USD"}, "/crypto")
    assert not told(a, "error") and not told(c, "error")

    up.max_connections = True  # the drop lasts: every reconnect is refused until we say so
    await up.drop_all()
    for client in (a, b, c):
        await client.until(lambda ev, client=client: told(client, "upstream_down"), what="upstream_down")
    assert told(a, "upstream_down")[0].startswith("stocks feed interrupted: upstream_url/stocks: ")
    assert told(c, "upstream_down")[0].startswith("crypto feed interrupted: ")
    late = await connect(px.port)  # subscribing during the outage: the ack, then the outage
    await late.send({"action": "subscribe", "params": "T.MSFT"})
    await late.until(lambda ev: told(late, "upstream_down"), what="the held outage for a late subscriber")
    assert [e["status"] for e in late.events[-2:]] == ["success", "upstream_down"]
    assert http_get(fh.port, "/health")[0] == 200  # it will heal by itself: still healthy

    up.max_connections = False
    for client in (a, b, late):
        await client.until(lambda ev, client=client: told(client, "upstream_restored"), timeout=15, what="restored")
    await until_upstream_has(up, {"T.AAPL", "T.MSFT"})
    await up.send("/stocks", f"[{trade('AAPL', q=5)},{trade('MSFT', q=6)}]")
    await a.until(lambda ev: any(e.get("q") == 5 for e in ev), what="data after the outage")
    await late.until(lambda ev: any(e.get("q") == 6 for e in ev), what="data after the outage")


async def test_a_rejected_key_is_told_to_clients_and_health_says_why(procs):
    up = await ScriptedUpstream(keys={"right"}).start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={
        "UPSTREAM_URL": up.url, "POLYGON_API_KEY": "wrong-secret", "PYTH_HERMES_URL": "off"})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": ""})
    client = await connect(px.port)
    await client.send({"action": "subscribe", "params": "T.AAPL"})
    await client.until(lambda ev: told(client, "upstream_down"), what="told about the rejected key")
    assert "rejected our key (auth_failed)" in told(client, "upstream_down")[0]
    code, _, body = http_get(fh.port, "/health")
    assert code == 503 and "auth_failed" in body and "wrong-secret" not in body
    assert http_get(px.port, "/health")[0] == 200  # the proxy itself is fine; its client was told
    await up.close()


async def test_a_wrong_internal_token_is_told_and_unhealthy(procs):
    keys = {"TICKFAN_API_KEYS": "team-key"}
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={
        **keys, "TICKFAN_INTERNAL_TOKEN": "right-token", "SIM_RATE": "200", "PYTH_HERMES_URL": "off"})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy", env={
        **keys, "TICKFAN_INTERNAL_TOKEN": "wrong-token", "FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}",
        "MS_AGGREGATOR_URL": ""})
    client = await connect(px.port, key="team-key")
    await client.send({"action": "subscribe", "params": "T.AAPL"})
    await client.until(lambda ev: told(client, "upstream_down"), what="told")
    assert "firehose/stocks rejected our key" in told(client, "upstream_down")[0]
    code, _, body = http_get(px.port, "/health")
    assert code == 503 and "stocks" in body and "wrong-token" not in body and "right-token" not in px.log()


async def test_static_subscriptions_are_made_at_start_up(procs):
    up = await ScriptedUpstream().start()
    await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={
        "UPSTREAM_URL": up.url, "FIREHOSE_SUBSCRIBE": "T.AAPL,crypto/XT.*", "PYTH_HERMES_URL": "off"})
    await until_upstream_has(up, {"T.AAPL"})  # no client asked for anything
    await until_upstream_has(up, {"XT.*"}, "/crypto")
    await up.close()


async def test_the_official_client_logs_our_statuses_and_keeps_running(sim_chain, caplog):
    from massive import WebSocketClient

    procs, env, fh, agg, px = sim_chain
    client = WebSocketClient(api_key="k", feed=f"localhost:{px.port}", market="stocks", secure=False,
                             subscriptions=["T.*"])
    trades: list = []
    task = asyncio.create_task(client.connect(lambda msgs: _extend(trades, msgs)))
    try:
        await async_wait_for(lambda: trades, what="trades")
        with caplog.at_level(logging.WARNING):
            fh.popen.kill()
            await async_wait_for(lambda: "upstream_down" in caplog.text, what="the client's warning")
            await asyncio.to_thread(procs.start, "firehose-again", "firehose_proxy", env=env, port=fh.port)
            n = len(trades)
            await async_wait_for(lambda: len(trades) > n, timeout=10, what="trades again, same client")
        assert not task.done(), "the official client kept running"
        assert "server upstream_down: stocks feed interrupted" in caplog.text
    finally:
        await client.close()
        task.cancel()


async def _extend(into: list, msgs) -> None:
    into.extend(msgs)


async def test_every_tier_stops_within_5_s_even_with_peers_that_never_answer(sim_chain):
    procs, env, fh, agg, px = sim_chain
    hung = []
    for proc in (fh, agg, px):
        c = await connect(proc.port)
        await c.send({"action": "subscribe", "params": "A.*" if proc is agg else "T.*"})
        c.ws.transport.pause_reading()  # never reads again: never answers a close either
        hung.append(c)
    fh.popen.send_signal(signal.SIGSTOP)  # the upstream of the other two stops answering too
    try:
        started = time.monotonic()
        for proc in (agg, px):
            proc.popen.send_signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(proc.popen.wait, 6) for proc in (agg, px)]
        assert codes == [0, 0] and time.monotonic() - started < 5
    finally:
        fh.popen.send_signal(signal.SIGCONT)
    started = time.monotonic()
    fh.popen.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(fh.popen.wait, 6) == 0 and time.monotonic() - started < 5
    for c in hung:
        c.ws.transport.abort()
