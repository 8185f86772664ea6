"""The simulated market's scheduled events: LULD bands, NOI imbalances, FMV, LV and XL2 books report the market at
their time, on schedule, and evolve like the real thing (firehose_proxy/sources/market/periodic, l2book)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firehose_proxy.sources.market import MarketConfig
from firehose_proxy.sources.market.periodic import latest, schedule
from tests.market_helpers import START, Call, run, step_times, ticker

SECONDS = 65


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    return run(MarketConfig(seed=5, trades_per_second=300.0), step_times(8, SECONDS * 1000))


def replayed(calls: list[Call], cluster: str, quote: str, bid: str, ask: str, key: str):
    """Walk the cluster's stream in order, yielding (event, NBBO of its ticker then, last trade price then)."""
    nbbo: dict[str, tuple[float, float]] = {}
    last: dict[str, float] = {}
    for call in calls:
        for e in call.events[cluster]:
            if e["ev"] == quote:
                nbbo[e[key]] = (e[bid], e[ask])
            elif e["ev"] in ("T", "XT"):
                last[e.get("sym", e.get("pair"))] = e["p"]
            yield e, nbbo.get(ticker(e)), last.get(ticker(e))


def test_luld_bands_straddle_the_midpoint_on_schedule(calls: list[Call]) -> None:
    per: dict[str, list[dict]] = defaultdict(list)
    for e, book, _ in replayed(calls, "stocks", "Q", "bp", "ap", "sym"):
        if e["ev"] != "LULD":
            continue
        bid, ask = book
        mid = (bid + ask) / 2
        assert e["l"] < bid <= ask < e["h"]
        assert e["h"] == pytest.approx(mid * 1.05, abs=0.011) and e["l"] == pytest.approx(mid * 0.95, abs=0.011)
        assert e["i"] == [21] and e["z"] in (1, 2, 3)
        per[e["T"]].append(e)
    assert set(per) == set(MarketConfig().stock_tickers)
    for rows in per.values():
        assert [b["t"] - a["t"] for a, b in zip(rows, rows[1:])] == [30_000] * (len(rows) - 1)
        assert [r["q"] for r in rows] == sorted({r["q"] for r in rows})


def test_noi_closing_imbalances_near_the_midpoint(calls: list[Call]) -> None:
    per: dict[str, list[dict]] = defaultdict(list)
    tapes = {}
    for e, book, _ in replayed(calls, "stocks", "Q", "bp", "ap", "sym"):
        if e["ev"] == "Q":
            tapes[e["sym"]] = e["z"]
        if e["ev"] != "NOI":
            continue
        mid = sum(book) / 2
        assert abs(e["b"] - mid) <= 0.01 * mid
        assert (e["a"], e["at"]) == ("C", 1600) and e["o"] >= 100 and e["o"] % 100 == 0
        per[e["T"]].append(e)
    assert len(per) == len(MarketConfig().stock_tickers)
    for sym, rows in per.items():
        assert {r["x"] for r in rows} == {{1: 10, 2: 11, 3: 12}[tapes[sym]]}
        assert [r["i"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["p"] for r in rows] == sorted(r["p"] for r in rows), "paired shares only grow"
        assert [b["t"] - a["t"] for a, b in zip(rows, rows[1:])] == [5000] * (len(rows) - 1)
        assert len({r["o"] for r in rows}) > 1, "the imbalance moves"


@pytest.mark.parametrize("cluster,quote,bid,ask,key", [
    ("stocks", "Q", "bp", "ap", "sym"), ("options", "Q", "bp", "ap", "sym"),
    ("crypto", "XQ", "bp", "ap", "pair"), ("forex", "C", "b", "a", "p")])
def test_fmv_within_the_spread_once_a_second(calls: list[Call], cluster: str, quote: str, bid: str, ask: str,
                                             key: str) -> None:
    per: dict[str, list[int]] = defaultdict(list)
    for e, book, _ in replayed(calls, cluster, quote, bid, ask, key):
        if e["ev"] == "FMV":
            assert book[0] <= e["fmv"] <= book[1], (e, book)
            per[e["sym"]].append(e["t"])
    assert per
    for ts in per.values():
        assert {b - a for a, b in zip(ts, ts[1:])} == {1000}


def test_lv_is_the_last_sale(calls: list[Call]) -> None:
    n = 0
    for e, _, last in replayed(calls, "stocks", "Q", "bp", "ap", "sym"):
        if e["ev"] == "LV" and last is not None:
            assert e["val"] == last
            n += 1
    assert n > 1000


def test_xl2_books_sit_on_the_nbbo_and_evolve(calls: list[Call]) -> None:
    books: dict[str, list[dict]] = defaultdict(list)
    for e, book, _ in replayed(calls, "crypto", "XQ", "bp", "ap", "pair"):
        if e["ev"] != "XL2":
            continue
        assert (e["b"][0][0], e["a"][0][0]) == book
        assert len(e["a"]) == 10 and 1 <= len(e["b"]) <= 10 and e["x"] == 1
        assert [p for p, _ in e["b"]] == sorted((p for p, _ in e["b"]), reverse=True)
        assert [p for p, _ in e["a"]] == sorted(p for p, _ in e["a"])
        assert all(size > 0 for _, size in e["b"] + e["a"])
        books[e["pair"]].append(e)
    assert set(books) == set(MarketConfig().crypto_pairs)
    ratios = []
    for rows in books.values():
        assert {b["t"] - a["t"] for a, b in zip(rows, rows[1:])} == {250}
        for a, b in zip(rows, rows[1:]):
            ratios += [y[1] / x[1] for x, y in zip(a["a"], b["a"])]
    # one book moving: a level's size changes by a little from one snapshot to the next, not independently
    assert 0.9 < statistics.median(ratios) < 1.1
    assert statistics.median(abs(np.log(r)) for r in ratios) < 0.2


# ---------------------------------------------------------------------------------------------------- pure helpers


@settings(max_examples=50, deadline=None)
@given(lo=st.integers(0, 10**6), width=st.integers(0, 5000), period=st.integers(1, 3000),
       offsets=st.lists(st.integers(0, 2999), min_size=0, max_size=8))
def test_schedule_is_every_period_at_each_offset(lo: int, width: int, period: int, offsets: list[int]) -> None:
    offs = np.array([o % period for o in offsets], np.int64)
    t, sym = schedule(lo, lo + width, period, offs)
    want = sorted((tt, k) for k, o in enumerate(offs.tolist()) for tt in range(lo + 1, lo + width + 1)
                  if tt % period == o)
    assert list(zip(t.tolist(), sym.tolist())) == want


@settings(max_examples=50, deadline=None)
@given(events=st.lists(st.tuples(st.integers(1, 50), st.integers(0, 3), st.integers(0, 1000)), max_size=30),
       queries=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3)), min_size=1, max_size=10))
def test_latest_matches_a_plain_scan(events: list[tuple[int, int, int]], queries: list[tuple[int, int]]) -> None:
    events = sorted(events, key=lambda e: e[0])
    carry = np.array([-1, -2, -3, -4], np.int64)
    arr = (np.array([e[i] for e in events], np.int64).reshape(-1) for i in range(3))
    ev_t, ev_sym, ev_val = arr
    t = np.array([q[0] for q in queries], np.int64)
    sym = np.array([q[1] for q in queries], np.int64)
    got = latest(ev_t, ev_sym, ev_val, carry, 0, t, sym).tolist()
    for (qt, qs), g in zip(queries, got):
        want: Any = carry[qs]
        for et, es, ev in events:
            if es == qs and et <= qt:
                want = ev
        assert g == want


def test_scheduled_events_follow_the_time_cut_contract() -> None:
    """Scheduled events are part of the stream, so cutting time differently changes nothing."""
    config = MarketConfig(seed=4, trades_per_second=100.0)
    a = run(config, [START + 20_000])
    b = run(config, list(range(START + 7, START + 20_001, 7)))
    for cluster in a[0].raw:
        flat_b = [e for call in b for e in call.raw[cluster]]
        timed_a = [e for e in a[0].raw[cluster] if b'"t":' in e]
        assert [e for e in flat_b if b'"t":' in e] == timed_a, cluster
