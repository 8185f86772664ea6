"""The default stack with no key serves every topic it accepts: per cluster, the official client gets parsed models
of exactly its tickers for every code it models; PY prices flow through the proxy on /crypto, /stocks, /forex and
/indices beside 1000Ms bars. One stack (firehose, aggregator, proxy as real processes) for the module."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

massive = pytest.importorskip("massive")
from massive import WebSocketClient  # noqa: E402

from common.clusters import fair_value_ticker  # noqa: E402
from tests.helpers import Proc, connect, free_port  # noqa: E402

CODES = {  # what the official client models on each cluster, per our topic table
    "stocks": ["T", "Q", "A", "AM", "LULD", "NOI", "FMV", "LV"],
    "options": ["T", "Q", "A", "AM", "FMV"],
    "crypto": ["XT", "XQ", "XA", "XAS", "XL2", "FMV"],
    "forex": ["C", "CA", "CAS", "FMV"],
    "indices": ["V", "A", "AM"],
}
TICKERS = {
    "stocks": ["AAPL", "MSFT", "NVDA", "SPY", "TSLA"],
    "options": ["O:SPY251219C00600000", "O:SPY251219P00580000", "O:QQQ251219C00520000"],
    "crypto": ["BTC-USD", "ETH-USD"],
    "forex": ["EUR/USD", "USD/JPY"],
    "indices": ["I:SPX", "I:NDX"],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("every_topic")
    started = []

    def start(name, module, env):
        proc = Proc(name, module, free_port(), [], env, tmp)
        started.append(proc)
        return proc.wait_healthy()

    try:
        # light: five parsing clients share a core; 3 s "minutes" so minute aggregates come without a minute's wait
        fh = start("firehose", "firehose_proxy", {"SIM_RATE": "300", "SIM_MINUTE_MS": "3000"})
        agg = start("aggregator", "ms_aggregator", {"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}"})
        px = start("proxy", "filtered_proxy", {"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}",
                                               "MS_AGGREGATOR_URL": f"ws://127.0.0.1:{agg.port}"})
        yield fh, agg, px
    finally:
        for proc in reversed(started):
            proc.stop()


async def test_py_prices_through_the_proxy_beside_ms_bars(stack):
    _, _, px = stack
    wanted = {"/crypto": {"BTC-USD", "ETH-USD"}, "/stocks": {"AAPL"}, "/forex": {"EUR/USD", "XAU/USD"},
              "/indices": {"US10Y"}}
    clients = {}
    for path, tickers in wanted.items():
        clients[path] = c = await connect(px.port, path)
        extra = ",1000Ms.BTC-USD" if path == "/crypto" else ""
        await c.send({"action": "subscribe", "params": ",".join(f"PY.{t}" for t in tickers) + extra})
    crypto = clients["/crypto"]
    await crypto.until(lambda ev: any(e.get("ev") == "MB" for e in ev), timeout=15, what="1000Ms bars beside PY")
    for path, c in clients.items():
        await c.until(lambda ev, want=wanted[path]: want <= {e.get("sym") for e in ev if e.get("ev") == "PY"},
                      timeout=15, what=f"PY on {path}")
        data = c.data()
        assert {e["sym"] for e in data if e["ev"] == "PY"} == wanted[path], path
        for e in (e for e in data if e["ev"] == "PY"):
            assert list(e) == ["ev", "sym", "p", "conf", "ema", "t", "id"] and e["p"] > 0 and e["conf"] > 0
            assert len(e["id"]) == 64 and e["t"] % 1000 == 0
    bars = [e for e in crypto.data() if e["ev"] == "MB"]
    assert {(b["sym"], b["interval"]) for b in bars} == {("BTC-USD", 1000)} and all(b["n"] > 0 for b in bars)
    assert {e["ev"] for e in crypto.data()} == {"PY", "MB"}
    assert not [e for c in clients.values() for e in c.events if e.get("status") == "error"]


async def official_client(port: int, cluster: str, caplog) -> list:
    """Run the unchanged official client until every modeled code of the cluster arrived; return its messages."""
    client = WebSocketClient(api_key="any", feed=f"localhost:{port}", market=cluster, secure=False,
                             subscriptions=[f"{code}.{t}" for code in CODES[cluster] for t in TICKERS[cluster]])
    got: list = []
    seen: set[str] = set()
    deadline = time.monotonic() + 30

    class Done(Exception):
        pass

    async def handle(msgs):
        # (a deadline checked here, not wait_for: the client's own wait_for can swallow a cancellation)
        got.extend(msgs)
        seen.update(m.event_type.value if hasattr(m.event_type, "value") else m.event_type for m in msgs)
        if set(CODES[cluster]) <= seen:
            raise Done
        if time.monotonic() > deadline:
            raise AssertionError(f"{cluster}: no {sorted(set(CODES[cluster]) - seen)} within 30 s")

    try:
        await client.connect(handle)
    except Done:
        pass
    finally:
        if client.websocket is not None:
            await client.close()
    return got


async def test_official_client_gets_every_code_it_models_on_every_cluster(stack, caplog):
    _, _, px = stack
    with caplog.at_level(logging.WARNING):
        results = await asyncio.gather(*(official_client(px.port, c, caplog) for c in CODES))
    for cluster, got in zip(CODES, results):
        kinds = {}
        for m in got:
            code = m.event_type.value if hasattr(m.event_type, "value") else m.event_type
            kinds.setdefault(code, type(m).__name__)
            ticker = getattr(m, "symbol", None) or getattr(m, "pair", None) or getattr(m, "ticker", None)
            if code == "FMV":  # Polygon's form on crypto and forex (X:BTC-USD, C:EURUSD) for FMV.BTC-USD, FMV.EUR/USD
                ticker = fair_value_ticker(ticker)
            assert ticker in TICKERS[cluster], (cluster, code, ticker)
        assert set(kinds) == set(CODES[cluster]), cluster
        if cluster == "stocks":
            assert kinds["LULD"] == "LimitUpLimitDown" and kinds["NOI"] == "Imbalance"
            assert kinds["FMV"] == "FairMarketValue" and kinds["LV"] == "LaunchpadValue"
        if cluster == "crypto":
            assert kinds["XL2"] == "Level2Book" and kinds["XAS"] == "CurrencyAgg"
    # the client warns about anything it cannot parse and about non-OK statuses: there must be none
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
