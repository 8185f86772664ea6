"""A tier cut as a slow consumer by the tier above (issue #8 §3), end to end with real processes."""

from __future__ import annotations

import asyncio
import signal

from tests.helpers import async_wait_for, connect, status, trade, until_upstream_has
from tests.scripted_upstream import ScriptedUpstream


async def test_a_proxy_cut_at_the_firehose_reconnects_and_its_clients_resume(procs):
    up = await ScriptedUpstream().start()
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy",
                                 env={"UPSTREAM_URL": up.url, "INTERNAL_BUFFER_BYTES": str(256 << 10)})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": ""})
    client = await connect(px.port)
    await client.send({"action": "subscribe", "params": "T.*"})
    await until_upstream_has(up, {"T.*"})
    px.popen.send_signal(signal.SIGSTOP)  # the proxy stops reading: its socket and the firehose's buffer fill
    try:
        frame = "[" + ",".join(trade(f"S{i}", "1.25", i) for i in range(100)) + "]"
        for sent in range(1, 5000):
            await up.send("/stocks", frame)
            if sent % 50 == 0 and status(fh.port)["counters"]["slow_consumer_disconnects"] == 1:
                break
        cut = status(fh.port)
        assert cut["counters"]["slow_consumer_disconnects"] == 1 and cut["counters"]["dropped_events"] > 0
        assert cut["clients"] == 0 and "stocks" not in cut["clusters"]  # out of the index at once
    finally:
        px.popen.send_signal(signal.SIGCONT)
    # the proxy reconnects and re-subscribes by itself; its client never left and gets data again
    await async_wait_for(lambda: status(fh.port)["clients"] == 1 and "stocks" in status(fh.port)["clusters"],
                         timeout=20, what="proxy back at the firehose")
    await up.send("/stocks", f"[{trade('AFTER', '2.50', 777)}]")
    await client.until(lambda ev: any(e.get("sym") == "AFTER" for e in ev), timeout=10, what="data after the cut")
    # its client was told: the feed was interrupted (the proxy was cut at the firehose), then restored
    said = [(e["status"], e["message"]) for e in client.events if e.get("status", "").startswith("upstream_")]
    assert [s for s, _ in said] == ["upstream_down", "upstream_restored"], said
    assert said[0][1].startswith("stocks feed interrupted: firehose/stocks: ")  # 1013, or a cut if it came too late
    assert status(px.port)["counters"]["upstream_reconnects"] == {"upstream=firehose/stocks": 1}
    assert status(px.port)["clients"] == 1
    await up.close()
