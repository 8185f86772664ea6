"""The simulated market's aggregates (A/AM, XA/XAS, CA/CAS, indices A/AM) recomputed from its own trades, quotes
and values with the SIP rules (firehose_proxy/sources/market)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from firehose_proxy.sources.market import MarketConfig
from tests.market_helpers import NO_OHLC, Call, run, step_times, stream


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    return run(MarketConfig(seed=11, trades_per_second=200.0), step_times(3, 130_000))


# ---------------------------------------------------------------------------------------------------- aggregates


def bucketed(events: list[tuple[Call, dict[str, Any]]], ev: str, key: str, width: int
             ) -> dict[str, list[tuple[int, list[dict[str, Any]]]]]:
    """Per ticker, its (window start, events in it) in time order."""
    out: dict[str, list[tuple[int, list[dict[str, Any]]]]] = defaultdict(list)
    for _, e in events:
        if e["ev"] != ev:
            continue
        start = e["t"] - e["t"] % width
        rows = out[e[key]]
        if not rows or rows[-1][0] != start:
            rows.append((start, []))
        rows[-1][1].append(e)
    return out


def expected_equity_bars(trades: dict[str, list[tuple[int, list[dict[str, Any]]]]], width: int, until: int,
                         eligible: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """Bars recomputed with the SIP rules: all trades count in volume; only eligible ones move o/h/l/c; a bar with
    no eligible trade repeats the last eligible close, or is skipped before the ticker's first eligible trade."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for sym, rows in trades.items():
        op = carry = None
        av = apv = 0.0
        for start, ts in rows:
            if start + width > until:
                break
            v = sum(t["s"] for t in ts)
            pv = sum(t["p"] * t["s"] for t in ts)
            av += v
            apv += pv
            el = [t["p"] for t in ts if eligible(t)]
            if el:
                op = el[0] if op is None else op
                o, h, lo, c = el[0], max(el), min(el), el[-1]
                carry = c
            elif carry is None:
                continue
            else:
                o = h = lo = c = carry
            out[sym, start] = {"sym": sym, "v": v, "av": av, "op": op, "vw": pv / v, "o": o, "c": c, "h": h,
                               "l": lo, "a": apv / av, "z": int(v // len(ts)), "s": start, "e": start + width}
    return out


def emitted(calls: list[Call], cluster: str, ev: str, key: str = "sym") -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for call, e in stream(calls, cluster):
        if e["ev"] == ev:
            end = e.get("e", e["s"] + (1000 if ev == "CAS" else 60_000))
            assert call.lo < end <= call.hi, "a bar is emitted by the call that passes its end"
            assert (e[key], e["s"]) not in out
            out[e[key], e["s"]] = e
    return out


def assert_bars_equal(got: dict, want: dict, approx: tuple[str, ...] = ("vw", "a"), tol: float = 1.01e-4) -> None:
    assert got.keys() == want.keys()
    for k, w in want.items():
        g = got[k]
        for f, value in w.items():
            if f in approx:
                assert abs(g[f] - value) <= tol, (k, f, g[f], value)
            else:
                assert g[f] == value, (k, f, g[f], value)


def stock_eligible(t: dict[str, Any]) -> bool:
    return not (set(t.get("c", ())) & NO_OHLC)


@pytest.mark.parametrize("cluster", ["stocks", "options"])
@pytest.mark.parametrize("ev,width", [("A", 1000), ("AM", 60_000)])
def test_equity_aggregates_recomputed_from_trades(calls: list[Call], cluster: str, ev: str, width: int) -> None:
    trades = bucketed(stream(calls, cluster), "T", "sym", width)
    want = expected_equity_bars(trades, width, calls[-1].hi, stock_eligible)
    got = emitted(calls, cluster, ev)
    assert len(want) > {("options", "AM"): 8, ("options", "A"): 100}.get((cluster, ev), 50)
    assert_bars_equal(got, want)
    if cluster == "stocks" and ev == "A":
        assert any(set(t.get("c", ())) & NO_OHLC for _, ts in trades["SPY"] for t in ts)


@pytest.mark.parametrize("ev,width", [("XA", 60_000), ("XAS", 1000)])
def test_crypto_aggregates(calls: list[Call], ev: str, width: int) -> None:
    trades = bucketed(stream(calls, "crypto"), "XT", "pair", width)
    want = {}
    for pair, rows in trades.items():
        for start, ts in rows:
            if start + width > calls[-1].hi:
                break
            v = sum(t["s"] for t in ts)
            ps = [t["p"] for t in ts]
            want[pair, start] = {"pair": pair, "v": v, "vw": sum(t["p"] * t["s"] for t in ts) / v,
                                 "z": int(v / len(ts)), "o": ps[0], "c": ps[-1], "h": max(ps), "l": min(ps),
                                 "s": start, "e": start + width}
    assert len(want) > 10
    assert_bars_equal(emitted(calls, "crypto", ev, "pair"), want, approx=("v", "vw"))


@pytest.mark.parametrize("ev,width", [("CA", 60_000), ("CAS", 1000)])
def test_forex_aggregates_from_bids(calls: list[Call], ev: str, width: int) -> None:
    quotes = bucketed(stream(calls, "forex"), "C", "p", width)
    want = {}
    for pair, rows in quotes.items():
        for start, qs in rows:
            if start + width > calls[-1].hi:
                break
            bids = [q["b"] for q in qs]
            want[pair, start] = {"pair": pair, "o": bids[0], "c": bids[-1], "h": max(bids), "l": min(bids),
                                 "v": len(qs), "s": start}
    assert len(want) > 10
    assert_bars_equal(emitted(calls, "forex", ev, "pair"), want)


@pytest.mark.parametrize("ev,width", [("A", 1000), ("AM", 60_000)])
def test_index_aggregates_from_values(calls: list[Call], ev: str, width: int) -> None:
    values = bucketed(stream(calls, "indices"), "V", "T", width)
    want = {}
    for sym, rows in values.items():
        op = rows[0][1][0]["val"]
        for start, vs in rows:
            if start + width > calls[-1].hi:
                break
            xs = [v["val"] for v in vs]
            want[sym, start] = {"sym": sym, "op": op, "o": xs[0], "c": xs[-1], "h": max(xs), "l": min(xs),
                                "s": start, "e": start + width}
    assert len(want) > 10
    assert_bars_equal(emitted(calls, "indices", ev), want)
