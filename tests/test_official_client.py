"""The official ``massive`` client, unchanged but for host, against the default stack (simulated market)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

massive = pytest.importorskip("massive")
from massive import WebSocketClient  # noqa: E402
from massive.websocket.models import EquityAgg, EquityQuote, EquityTrade  # noqa: E402

from tests.helpers import run_client, status  # noqa: E402


@pytest.fixture
async def default_stack(procs):
    fh = await asyncio.to_thread(procs.start, "firehose", "firehose_proxy", env={"SIM_RATE": "4000"})
    px = await asyncio.to_thread(procs.start, "proxy", "filtered_proxy",
                                 env={"FIREHOSE_URL": f"ws://127.0.0.1:{fh.port}", "MS_AGGREGATOR_URL": ""})
    return fh, px


async def test_official_client_gets_parsed_objects_for_exactly_its_tickers(default_stack, caplog):
    fh, px = default_stack
    client = WebSocketClient(api_key="any", feed=f"localhost:{px.port}", market="stocks", secure=False,
                             subscriptions=["T.AAPL", "Q.AAPL", "T.MSFT", "A.NVDA"])

    def done(got):
        kinds = {(type(m).__name__, m.symbol) for m in got}
        return {("EquityTrade", "AAPL"), ("EquityQuote", "AAPL"), ("EquityTrade", "MSFT"), ("EquityAgg", "NVDA")} <= kinds

    with caplog.at_level(logging.WARNING):
        got = await run_client(client, done)
    assert done(got)
    for m in got:
        assert isinstance(m, (EquityTrade, EquityQuote, EquityAgg))
        if isinstance(m, EquityTrade):
            assert m.symbol in {"AAPL", "MSFT"} and m.price > 0 and m.size > 0 and m.timestamp > 0
        elif isinstance(m, EquityQuote):
            assert m.symbol == "AAPL" and m.bid_price <= m.ask_price
        else:
            assert m.symbol == "NVDA" and m.event_type == "A" and m.end_timestamp - m.start_timestamp == 1000
    # the client logs every non-OK server status as a warning: there must be none
    assert not [r for r in caplog.records if "server" in r.getMessage()]
    assert status(fh.port)["source"] == "simulated"


async def test_official_client_raw_mode_sees_bytes(default_stack):
    fh, px = default_stack
    client = WebSocketClient(api_key="any", feed=f"localhost:{px.port}", market="stocks", secure=False, raw=True,
                             subscriptions=["T.AAPL"])
    got = await run_client(client, lambda got: len(got) >= 2)
    events = [e for frame in got for e in json.loads(frame) if e["ev"] != "status"]
    assert events and all(e["ev"] == "T" and e["sym"] == "AAPL" for e in events)
