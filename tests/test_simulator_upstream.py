"""The standalone simulator as the firehose's upstream: one connection, subscriptions = union of demand."""

from __future__ import annotations

import asyncio

from tests.helpers import async_wait_for, connect, status


async def test_simulator_sees_one_connection_with_union_of_demand(procs):
    sim = await asyncio.to_thread(procs.start, "sim", "firehose_proxy.sources.simulator", env={"SIM_RATE": "3000"})
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy",
                                 env={"UPSTREAM_URL": f"ws://127.0.0.1:{sim.port}", "UPSTREAM_GRACE_S": "0.2"})
    proxies = [
        await asyncio.to_thread(procs.start, f"proxy{i}", "filtered_proxy",
                                env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": "",
                                     "UPSTREAM_GRACE_S": "0.2"})
        for i in range(2)
    ]
    a = await connect(proxies[0].port)
    b = await connect(proxies[1].port)
    await a.send({"action": "subscribe", "params": "T.AAPL,Q.AAPL"})
    await b.send({"action": "subscribe", "params": "T.AAPL,T.MSFT"})

    def sim_topics():
        return set(status(sim.port).get("clusters", {}).get("stocks", {}).get("topics", []))

    await async_wait_for(lambda: sim_topics() == {"T.AAPL", "Q.AAPL", "T.MSFT"}, what="union at the simulator")
    assert status(sim.port)["clients"] == 1
    await a.until(lambda ev: {e.get("ev") for e in ev if e.get("sym") == "AAPL"} >= {"T", "Q"})
    await b.until(lambda ev: {e.get("sym") for e in ev if e.get("ev") == "T"} >= {"AAPL", "MSFT"})
    assert {e["sym"] for e in b.data()} <= {"AAPL", "MSFT"} and {e["ev"] for e in b.data()} == {"T"}
    await a.ws.close()
    await async_wait_for(lambda: sim_topics() == {"T.AAPL", "T.MSFT"}, what="the simulator's set shrinks")
