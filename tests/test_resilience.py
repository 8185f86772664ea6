"""Slow and dead clients, connection limits and shutdown, end to end."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
import websockets

from tests.helpers import async_wait_for, connect, status, trade, until_upstream_has
from tests.scripted_upstream import ScriptedUpstream


@pytest.fixture
async def small_buffer_chain(procs):
    up = await ScriptedUpstream().start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={"UPSTREAM_URL": up.url})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": "",
                                      "CLIENT_BUFFER_BYTES": str(1 << 20)})
    yield up, fh, px
    await up.close()


async def test_slow_consumer_is_told_then_closed_1013_and_healthy_client_sees_no_gap(small_buffer_chain):
    up, fh, px = small_buffer_chain
    healthy = await connect(px.port)
    slow = await connect(px.port, max_queue=1)  # stops reading from its socket almost at once
    for c in (healthy, slow):
        await c.send({"action": "subscribe", "params": "T.*"})
        await c.recv_frame()
    await until_upstream_has(up, {"T.*"})

    received = 0
    frames = 1000
    total = frames * 100

    async def read_healthy():
        nonlocal received
        while received < total:
            received += sum(1 for e in json.loads(await healthy.ws.recv()) if e["ev"] == "T")

    reader = asyncio.create_task(read_healthy())
    for f in range(frames):
        await up.send("/stocks", "[" + ",".join(trade(f"S{i % 50}", "1.25", f * 100 + i) for i in range(100)) + "]")
        if f % 10 == 0:  # the healthy reader shares this event loop: let it read
            await async_wait_for(lambda: received >= (f - 20) * 100, what="healthy client keeping up")
    await asyncio.wait_for(reader, 30)
    assert received == total  # the healthy client saw every event
    await async_wait_for(lambda: status(px.port)["counters"]["slow_consumer_disconnects"] == 1, what="slow consumer cut")
    last = None
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            last = json.loads(await asyncio.wait_for(slow.ws.recv(), 10))
    assert closed.value.rcvd.code == 1013
    assert last[-1]["status"] == "slow_consumer" and "1013" in last[-1]["message"]
    st = status(px.port)["counters"]
    assert st["dropped_events"] > 0


async def test_dead_client_is_cleaned_up_and_demand_released(small_buffer_chain):
    up, fh, px = small_buffer_chain
    c = await connect(px.port)
    await c.send({"action": "subscribe", "params": "T.GONE"})
    await until_upstream_has(up, {"T.GONE"})
    c.ws.transport.abort()  # no close handshake: a client that died
    await async_wait_for(lambda: status(px.port)["clients"] == 0, what="proxy forgets the dead client")
    assert "stocks" not in status(px.port)["clusters"]


async def test_max_connections(procs):
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"MAX_CLIENTS": "1", "FIREHOSE_URL": "ws://127.0.0.1:9", "MS_AGGREGATOR_URL": ""})
    first = await connect(px.port)
    second = await connect(px.port, key=None)
    await second.send({"action": "auth", "params": "k"})
    assert (await second.recv_frame())[0]["status"] == "max_connections"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await second.ws.recv()
    assert closed.value.rcvd.code == 1008
    await first.ws.close()


async def test_sigterm_closes_clients_with_1012_and_exits_0_fast(procs):
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": "ws://127.0.0.1:9", "MS_AGGREGATOR_URL": ""})
    c = await connect(px.port)
    started = time.monotonic()
    px.popen.send_signal(signal.SIGTERM)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(c.ws.recv(), 5)
    assert closed.value.rcvd.code == 1012
    assert await asyncio.to_thread(px.popen.wait, 5) == 0
    assert time.monotonic() - started < 5


def test_port_in_use_is_one_clear_line_naming_the_setting(procs, tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT

    first = procs.start("proxy", "filtered_proxy", env={"MS_AGGREGATOR_URL": ""})
    second = subprocess.run(
        [sys.executable, "-m", "filtered_proxy", "--port", str(first.port)], cwd=tmp_path, capture_output=True,
        text=True, timeout=20, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"127.0.0.1:{first.port}" in lines[0] and "FILTERED_PROXY_PORT" in lines[0] and "--port" in lines[0]
    assert "Traceback" not in second.stderr
