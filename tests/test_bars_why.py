"""The cases in issue #9's "Why", one test each, through the aggregator's service (frames in, bars out, time passed
in). Each failed on the code before per-source clocks, partial bars, the late policy, OPRA rules and eviction."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import msgspec

from common.clusters import CLUSTERS
from common.frames import Frame
from common.metrics import Metrics
from common.topics import Topic
from ms_aggregator.service import BarService
from ms_aggregator.settings import AggregatorSettings

T0 = 1_700_000_000_000
G = 30


class FakeHub:
    """What the service needs of a hub: the topic counts it reads and a publish that records bars."""

    def __init__(self) -> None:
        self.topic_counts = {c: Counter() for c in CLUSTERS}
        self.bars: list[dict] = []

    def publish(self, cluster, events) -> None:
        self.bars += [json.loads(bytes(e.raw)) for e in events if e.code.endswith("Ms")]


def service(cluster: str, topics: list[str], **settings) -> tuple[BarService, FakeHub]:
    hub = FakeHub()
    svc = BarService(dataclasses.replace(AggregatorSettings(), **settings), hub, Metrics("test"))
    subscribe(svc, hub, cluster, topics)
    return svc, hub


def subscribe(svc, hub, cluster: str, topics: list[str]) -> None:
    for text in topics:
        code, _, ticker = text.partition(".")
        hub.topic_counts[cluster][Topic(code, ticker)] += 1
    svc.set_subscriptions(CLUSTERS[cluster])


def send(svc, cluster: str, events: list[dict], local: int) -> None:
    svc.on_frame(cluster, Frame(msgspec.json.encode(events)), local)


def stock(sym, p, s, t, c=None, x=4):
    return {"ev": "T", "sym": sym, "x": x, "p": p, "s": s, "t": t, "c": c or [], "i": "1", "q": 1}


def xt(pair, p, s, t, x):
    return {"ev": "XT", "pair": pair, "p": p, "s": s, "t": t, "x": x, "c": [1], "i": "1", "r": t}


WARM = 1000  # the feed runs this long before we look: a venue nobody has heard from yet cannot hold a window


def run_crypto_tape(slow_delay: int) -> tuple[int, int, list[dict]]:
    """100 ms bars of one pair traded on a venue with no delay (x=1) and one `slow_delay` ms behind (x=2), one
    trade per ms for 4 s; returns the late trades after the warm-up, the trades stamped after it, and the bars."""
    svc, hub = service("crypto", ["100Ms.BTC-USD"])
    rng = random.Random(slow_delay)
    arrivals = []
    for i in range(4000):
        t = T0 + i
        x = 1 + i % 2
        arrivals.append((t + (0 if x == 1 else slow_delay) + rng.randint(0, 4), t, x))
    arrivals.sort()
    pos, late_at_warm = 0, None
    for local in range(T0, T0 + 4500):
        batch = []
        while pos < len(arrivals) and arrivals[pos][0] <= local:
            _, t, x = arrivals[pos]
            batch.append(xt("BTC-USD", 100.0 + rng.random(), 0.5, t, x))
            pos += 1
        if batch:
            send(svc, "crypto", batch, local)
        svc.close_due(local)
        if local == T0 + WARM:
            late_at_warm = svc.status()["crypto"]["late_trades"]
    return svc.status()["crypto"]["late_trades"] - late_at_warm, 4000 - WARM, hub.bars


def test_why_a_slower_venue_loses_no_trades_to_the_clock_of_a_faster_one():
    for slow in (60, 150):  # the landed code lost 31% of the slow venue's trades at +60 ms, all at +150 ms
        late, trades, bars = run_crypto_tape(slow)
        assert late == 0, (slow, late)
        assert sum(b["n"] for b in bars if b["s"] >= T0 + WARM) == trades


def test_why_lateness_does_not_depend_on_other_tickers():
    outcomes = []
    for other_bar_open in (False, True):
        svc, hub = service("stocks", ["100Ms.AAPL", "60000Ms.MSFT"])
        send(svc, "stocks", [stock("AAPL", 10.0, 100, T0 + 10)], T0 + 10)
        if other_bar_open:
            send(svc, "stocks", [stock("MSFT", 20.0, 100, T0 + 11)], T0 + 11)
        for local in range(T0 + 11, T0 + 10_000, 50):
            svc.close_due(local)
        hub.bars.clear()
        send(svc, "stocks", [stock("AAPL", 99.0, 100, T0 + 500)], T0 + 10_000)  # stamped 9.5 s in the past
        svc.close_due(T0 + 10_001)
        outcomes.append((svc.status()["stocks"]["late_trades"], hub.bars))
    assert outcomes[0] == outcomes[1] == (1, [])  # late both times; no bar sent 9.4 s after its window


def test_why_a_series_started_mid_window_says_its_first_bar_is_partial():
    svc, hub = service("stocks", [])
    send(svc, "stocks", [stock("IBM", 1.0, 1, T0 - 5000)], T0 - 5000)  # the feed has been running
    svc.close_due(T0 - 5000)
    svc.close_due(T0 + 40)  # the true bar of [T0, T0+100) opened at 10 with 200 shares before this subscription
    subscribe(svc, hub, "stocks", ["100Ms.AAPL"])
    send(svc, "stocks", [stock("AAPL", 11.0, 100, T0 + 60)], T0 + 60)
    send(svc, "stocks", [stock("AAPL", 12.0, 100, T0 + 160)], T0 + 160)
    svc.close_due(T0 + 1000)
    first, second = hub.bars
    assert (first["o"], first["v"], first["n"], first.get("partial")) == (11.0, 100, 1, True)
    assert "partial" not in second


def test_why_windows_across_an_upstream_gap_are_partial():
    svc, hub = service("stocks", ["100Ms.AAPL"])
    send(svc, "stocks", [stock("AAPL", 1.0, 1, T0 - 1000)], T0 - 1000)
    svc.close_due(T0 - 500)
    send(svc, "stocks", [stock("AAPL", 10.0, 100, T0 + 10)], T0 + 10)
    svc.link_changed("stocks", False, T0 + 20)  # the firehose link drops mid-window...
    svc.link_changed("stocks", True, T0 + 250)  # ...and comes back
    send(svc, "stocks", [stock("AAPL", 11.0, 100, T0 + 260)], T0 + 260)
    send(svc, "stocks", [stock("AAPL", 12.0, 100, T0 + 360)], T0 + 360)
    svc.close_due(T0 + 5000)
    assert [(b["s"] - T0, b.get("partial", False)) for b in hub.bars] == [(-1000, False), (0, True), (200, True),
                                                                         (300, False)]


def test_why_options_trades_follow_opra_conditions():
    svc, hub = service("options", ["1000Ms.*"])
    contract = "O:SPY241220C00500000"
    send(svc, "options", [stock(contract, 1.25, 10, T0 + 1, [209]),  # Automatic Execution: a regular print
                          stock(contract, 9.99, 50, T0 + 2, [201]),  # Canceled: touches nothing
                          stock(contract, 0.05, 70, T0 + 3, [204]),  # Late: touches nothing
                          stock(contract, 7.00, 30, T0 + 4, [246])],  # proprietary multi-leg floor: volume only
         T0 + 4)
    svc.close_due(T0 + 5000)
    (bar,) = hub.bars
    assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"], bar["n"]) == (1.25, 1.25, 1.25, 1.25, 40, 2)


def test_why_the_late_policy_is_a_setting():
    assert AggregatorSettings().late_trades == "drop"
    svc, hub = service("stocks", ["100Ms.AAPL"], late_trades="amend", amend_window_ms=60_000)
    send(svc, "stocks", [stock("AAPL", 1.0, 1, T0 - 1000)], T0 - 1000)
    svc.close_due(T0 - 900)
    send(svc, "stocks", [stock("AAPL", 10.0, 100, T0 + 10)], T0 + 10)
    svc.close_due(T0 + 200)
    send(svc, "stocks", [stock("AAPL", 9.0, 100, T0 + 50)], T0 + 200)  # 150 ms after its window closed
    svc.close_due(T0 + 201)
    assert [(b["s"] - T0, b["c"], b["v"], b.get("rev")) for b in hub.bars] == [(-1000, 1.0, 1, None), (0, 10.0, 100, None),
                                                                               (0, 9.0, 200, 1)]
    status = svc.status()["stocks"]
    assert (status["late_trades"], status["late_amended"], status["late_dropped"]) == (1, 1, 0)


def test_why_an_options_tape_does_not_hold_every_contract_forever():
    svc, hub = service("options", ["1000Ms.*"], series_idle_s=60)
    for i in range(0, 5000, 500):
        send(svc, "options", [stock(f"O:X{j:06d}C00001000", 1.0, 1, T0 + i, [209], x=302) for j in range(i, i + 500)],
             T0 + i)
    svc.close_due(T0 + 6000)
    assert svc.status()["options"]["symbols"] == 5000
    svc.close_due(T0 + 200_000)  # idle for longer than SERIES_IDLE_S (from the end of the last trade's hold epoch)
    status = svc.status()["options"]
    assert (status["symbols"], status["live_series"], status["open_bars"]) == (0, 0, 0)


def test_why_the_oracle_reads_the_rules_on_its_own():
    """The property test's reference must not share the project's reading of the rules: it holds its own
    hand-written table (stocks and options), and the bundled data must agree with it."""
    import ast
    from pathlib import Path

    from ms_aggregator.conditions import default_rules
    from tests.bar_oracle import OPTION_RULES, STOCK_RULES

    source = Path(__file__).with_name("bar_oracle.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert not any(m and m.startswith("ms_aggregator") for m in imported)
    assert len(STOCK_RULES) + len(OPTION_RULES) >= 20 and len(OPTION_RULES) >= 10
    for asset_class, table in (("stocks", STOCK_RULES), ("options", OPTION_RULES)):
        rules = default_rules(asset_class)
        for cid, (oc, hl, vol) in table.items():
            assert rules.rule(cid) == oc * 1 | hl * 2 | vol * 4, (asset_class, cid)


def test_frames_the_aggregator_cannot_handle_are_counted_and_skipped():
    """Not a Why case of #9 but its neighbour from #8: nothing from the data may end the upstream task."""
    svc, hub = service("stocks", ["100Ms.AAPL"])
    svc.on_frame("stocks", Frame(b"[{"), T0)  # not JSON
    send(svc, "stocks", [{"ev": "T", "sym": "AAPL", "p": "x", "s": 1, "t": T0}, stock("AAPL", 1.0, 1, T0 + 1)], T0 + 1)
    svc.on_frame("indices", Frame(b"not a frame"), T0)  # a cluster without a book
    status = svc.status()["stocks"]
    assert (status["bad_frames"], status["malformed_trades"], status["trades_in"]) == (1, 1, 1)
    assert svc.bad_frames["indices"] == 1
