"""Record -> kill -9 -> replay, end to end with real processes: what a crash leaves on disk is every frame but the
last second's, byte for byte and in order; a replay hands the firehose exactly those frames again (recorded a
second time, they are identical); and bars built from the replay equal the bars built live from the same frames."""

from __future__ import annotations

import asyncio
import json
import time

from tests.helpers import async_wait_for, connect, read_all, status

GRACE_MS = "300"  # generous: on a shared 2-core box a live trade must never be late, or live and replay differ


def bars_of(events: list[dict]) -> dict[tuple[str, int], dict]:
    return {(e["sym"], e["s"]): e for e in events if e.get("ev") == "MB"}


async def test_record_kill9_replay_round_trip(procs, tmp_path):
    rec_dir, again_dir = tmp_path / "rec", tmp_path / "again"
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={
        "RECORD_DIR": str(rec_dir), "FIREHOSE_SUBSCRIBE": "T.*,crypto/XT.*,crypto/PY.BTC-USD", "SIM_RATE": "1500"})
    agg = await asyncio.to_thread(procs.start, "aggregator", "ms_aggregator", env={
        "FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "BAR_GRACE_MS": GRACE_MS})
    raw = await connect(fh.port, "/stocks")
    await raw.send({"action": "subscribe", "params": "T.*"})
    live = await connect(agg.port, "/stocks")
    await live.send({"action": "subscribe", "params": "1000Ms.*"})

    received: list[tuple[float, bytes]] = []  # every T event the raw client got, with when

    async def read_raw():
        while True:
            frame = await raw.ws.recv()
            now = time.monotonic()
            received.extend((now, json.dumps(e, separators=(",", ":")).encode()) for e in json.loads(frame)
                            if e["ev"] == "T")

    reader = asyncio.get_running_loop().create_task(read_raw())
    await live.until(lambda ev: len({e["s"] for e in ev if e.get("ev") == "MB"}) >= 5, timeout=20,
                     what="five windows of live bars")
    fh.popen.kill()  # kill -9: no flush, no goodbye
    killed_at = time.monotonic()
    await asyncio.to_thread(fh.popen.wait)
    reader.cancel()

    # What a crash leaves: a prefix of the stream, byte for byte, missing at most the last second.
    recorded = read_all(rec_dir)
    assert {c for c, _, _ in recorded} == {"stocks", "crypto"}
    assert any(b'"ev":"PY"' in d for c, _, d in recorded if c == "crypto")
    stock_events = [json.dumps(e, separators=(",", ":")).encode()
                    for c, _, d in recorded if c == "stocks" for e in json.loads(d)]
    got = [e for _, e in received]
    start = stock_events.index(got[0])  # recording began before the client subscribed
    kept = stock_events[start:]
    assert kept == got[:len(kept)]  # (the simulator writes compact JSON: re-encoding is exact)
    assert all(k < len(kept) for k, (at, _) in enumerate(received) if at < killed_at - 1.5)
    assert len(kept) > 1000
    assert [ns for _, ns, _ in recorded] == sorted(ns for _, ns, _ in recorded)

    # Replay at the original pace, recording again; bars from the replay.
    fh2 = await asyncio.to_thread(procs.start, "replay", "firehose_proxy", env={
        "REPLAY": str(rec_dir), "RECORD_DIR": str(again_dir)})
    agg2 = await asyncio.to_thread(procs.start, "aggregator2", "ms_aggregator", env={
        "FIREHOSE_URL": f"ws://127.0.0.1:{fh2.port}", "BAR_GRACE_MS": GRACE_MS})
    assert status(fh2.port)["replay"]["state"] == "waiting for the first subscription"
    replayed = await connect(agg2.port, "/stocks")
    await replayed.send({"action": "subscribe", "params": "1000Ms.*"})
    await async_wait_for(lambda: status(fh2.port)["replay"]["state"] == "finished", timeout=60, what="replay over")

    live_bars = bars_of(live.events)
    last_t = max(json.loads(e)["t"] for e in stock_events)
    first_s = min(s for _, s in live_bars)  # the live aggregator joined mid-window: skip that one
    # windows the live aggregator had closed before the kill (end + grace within the recorded stream)
    closed_live = last_t - 1000 - int(GRACE_MS)
    compared = {k for k in live_bars if first_s < k[1] <= closed_live}
    await replayed.until(lambda ev: compared <= bars_of(ev).keys(), timeout=20, what="the replay's bars")
    replay_bars = bars_of(replayed.events)
    span = {k for k in replay_bars if first_s < k[1] <= closed_live}
    assert len(compared) > 20 and span == compared
    assert {k: replay_bars[k] for k in compared} == {k: live_bars[k] for k in compared}
    assert status(agg.port)["bars"]["stocks"]["late_trades"] == 0

    # The replay handed the firehose exactly the recorded frames: recorded again, they are the same bytes.
    assert fh2.stop() == 0
    again = read_all(again_dir)
    assert [(c, d) for c, _, d in again] == [(c, d) for c, _, d in recorded]
