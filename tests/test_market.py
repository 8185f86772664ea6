"""The simulated market (firehose_proxy/sources/market): determinism, NBBO-consistent trades, wire shapes (its
aggregates: test_market_aggregates.py; its scheduled events: test_market_scheduled.py)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.clusters import CLUSTERS, PYTH_CODE
from firehose_proxy.sources.market import MarketConfig, SimulatedMarket
from tests.market_helpers import (
    EXAMPLES,
    START,
    Call,
    run,
    step_times,
    stream,
    ticker,
)


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    return run(MarketConfig(seed=11, trades_per_second=200.0), step_times(3, 130_000))


# ---------------------------------------------------------------------------------------------------- basics


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    times = step_times(5, 8_000)
    a = run(MarketConfig(seed=3, trades_per_second=500.0), times)
    b = run(MarketConfig(seed=3, trades_per_second=500.0), times)
    c = run(MarketConfig(seed=4, trades_per_second=500.0), times)
    assert [x.raw for x in a] == [x.raw for x in b]
    assert sum(len(v) for x in a for v in x.raw.values()) > 1000
    for cluster in ("stocks", "options", "crypto", "forex", "indices"):
        assert [x.raw[cluster] for x in a] != [x.raw[cluster] for x in c], cluster


def streams(config: MarketConfig, times: list[int]) -> dict[str, tuple[list[bytes], list[bytes]]]:
    """Each cluster's whole output over ``times`` as (trades/quotes/values, aggregates), undecoded."""
    market = SimulatedMarket(config, START)
    out: dict[str, tuple[list[bytes], list[bytes]]] = {c: ([], []) for c in market.cluster_names}
    for now in times:
        for cluster, evs in market.advance(now).items():
            ticks, aggs = out[cluster]
            for e in evs:
                (ticks if b',"t":' in e else aggs).append(e)  # aggregates carry no "t"
    return out


def test_stream_does_not_depend_on_how_time_is_cut() -> None:
    config = MarketConfig(seed=9, trades_per_second=400.0)
    a = streams(config, step_times(1, 50_000))
    b = streams(config, [START + 50_000 + 999])
    c = streams(config, list(range(START + 11, START + 50_000 + 999, 11)))
    for cluster, (ticks, aggs) in a.items():
        assert ticks and aggs, cluster
        for other in (b, c):
            assert other[cluster][0][:len(ticks)] == ticks, cluster
            assert other[cluster][1][:len(aggs)] == aggs, cluster


def test_every_item_is_one_compact_json_object(calls: list[Call]) -> None:
    assert set(calls[0].raw) == {"stocks", "options", "crypto", "forex", "indices"}
    for call in calls[:200]:
        for evs in call.raw.values():
            for e in evs:
                assert isinstance(e, bytes)
                assert e.startswith(b'{"ev":"') and e.endswith(b"}")
                assert isinstance(json.loads(e), dict)
                assert b" " not in e and b"\n" not in e  # compact (no ticker here has a space)


def test_time_must_not_go_backwards() -> None:
    market = SimulatedMarket(MarketConfig(), START)
    assert all(v == [] for v in market.advance(START).values())
    market.advance(START + 10)
    with pytest.raises(ValueError):
        market.advance(START + 9)


def test_timestamps_in_window_and_ordered(calls: list[Call]) -> None:
    for call in calls:
        for cluster, evs in call.events.items():
            ts = [e["t"] for e in evs if "t" in e]
            assert ts == sorted(ts), cluster
            assert all(call.lo < t <= call.hi for t in ts), cluster
            for e in evs:
                if "r" in e:  # Polygon's receive time: a little after the exchange's, maybe after now
                    assert e["t"] < e["r"] <= e["t"] + 250
                if "s" in e and "t" not in e:  # an aggregate: after the trades, its window over by now
                    assert "e" not in e or e["e"] <= call.hi
            kinds = ["t" in e for e in evs]
            assert kinds == sorted(kinds, reverse=True), "aggregates come after the trades and quotes"


def test_rates_roughly_match_config() -> None:
    config = MarketConfig(seed=2, trades_per_second=400.0)
    market = SimulatedMarket(config, START)
    count: dict[tuple[str, str], int] = defaultdict(int)
    per_index: dict[str, int] = defaultdict(int)
    for now in range(START + 100, START + 60_001, 100):
        for cluster, evs in market.advance(now).items():
            for e in evs:
                ev = e[7:e.index(b'"', 7)].decode()  # b'{"ev":"XT",...'
                count[cluster, ev] += 1
                if ev == "V":
                    per_index[json.loads(e)["T"]] += 1
    r = config.trades_per_second * 60

    def near(got: int, want: float) -> bool:
        return 0.8 * want <= got <= 1.2 * want

    assert near(count["stocks", "T"], r)
    assert near(count["stocks", "Q"] - len(config.stock_tickers), r * config.quotes_per_trade)
    opt = r * config.options_ratio
    assert near(count["options", "T"], opt)
    assert near(count["options", "Q"], opt * config.options_quotes_per_trade)
    assert near(count["crypto", "XT"], r * config.crypto_ratio)
    assert near(count["crypto", "XQ"], r * config.crypto_ratio * config.quotes_per_trade)
    assert near(count["forex", "C"], r * config.forex_ratio)
    assert set(per_index) == set(config.indices) and all(59 <= n <= 60 for n in per_index.values())


def test_popular_tickers_trade_more(calls: list[Call]) -> None:
    n: dict[str, int] = defaultdict(int)
    for _, e in stream(calls, "stocks"):
        if e["ev"] == "T":
            n[e["sym"]] += 1
    tickers = MarketConfig().stock_tickers
    assert n[tickers[0]] > 5 * n[tickers[-1]] > 0


def test_custom_and_empty_ticker_sets() -> None:
    config = MarketConfig(stock_tickers=("ZZZZ", "AAPL"), options_tickers=(), crypto_pairs=("FOO-USD",),
                          forex_pairs=(), indices=())
    (call,) = run(config, [START + 5_000])
    assert {ticker(e) for e in call.events["stocks"]} == {"ZZZZ", "AAPL"}
    assert {ticker(e) for e in call.events["crypto"]} == {"FOO-USD"}
    assert call.raw["options"] == call.raw["forex"] == call.raw["indices"] == []


# ---------------------------------------------------------------------------------------------------- trades & quotes


@pytest.mark.parametrize("cluster", ["stocks", "options"])
def test_trades_at_or_inside_the_nbbo_and_sequence_numbers(calls: list[Call], cluster: str) -> None:
    nbbo: dict[str, tuple[float, float]] = {}
    last_q: dict[str, int] = {}
    trades = 0
    for _, e in stream(calls, cluster):
        if e["ev"] not in ("T", "Q"):
            continue
        sym = e["sym"]
        assert e["q"] > last_q.get(sym, -1), "q strictly increasing per ticker across trades and quotes"
        last_q[sym] = e["q"]
        if e["ev"] == "Q":
            assert 0 < e["bp"] < e["ap"]
            assert e["bs"] > 0 and e["as"] > 0
            nbbo[sym] = (e["bp"], e["ap"])
        else:
            trades += 1
            bid, ask = nbbo[sym]  # every trade has a published NBBO before it
            assert bid <= e["p"] <= ask
            assert e["s"] > 0
    assert trades > (300 if cluster == "options" else 10_000)


def test_stock_trade_fields(calls: list[Call]) -> None:
    tapes: dict[str, int] = {}
    ids: set[str] = set()
    sizes, odd = [], 0
    for _, e in stream(calls, "stocks"):
        if e["ev"] == "Q":
            assert e["bx"] != 4 and e["ax"] != 4 and 1 <= e["bx"] <= 21 and 1 <= e["ax"] <= 21
            assert tapes.setdefault(e["sym"], e["z"]) == e["z"]
        if e["ev"] != "T":
            continue
        assert 1 <= e["x"] <= 21 and e["z"] in (1, 2, 3)
        assert tapes.setdefault(e["sym"], e["z"]) == e["z"], "a ticker's tape is fixed"
        assert e["i"].isdigit() and e["i"] not in ids
        ids.add(e["i"])
        conds = e.get("c")
        assert conds is None or (conds and conds == sorted(conds) and set(conds) <= {2, 12, 14, 37, 41})
        conds = conds or []
        assert (e["s"] < 100) == (37 in conds), "odd lots, and only they, carry condition 37"
        assert e["s"] < 100 or e["s"] % 100 == 0
        sizes.append(e["s"])
        odd += e["s"] < 100
    assert tapes["SPY"] == 2 and tapes["AAPL"] == 3 and tapes["JPM"] == 1
    assert 0.10 <= odd / len(sizes) <= 0.20
    assert max(sizes) >= 2000, "some blocks"
    assert sum(100 <= s <= 1000 for s in sizes) / len(sizes) > 0.75


def test_crypto_trades_hit_the_book(calls: list[Call]) -> None:
    book: dict[str, tuple[float, float]] = {}
    ids: set[int] = set()
    n = 0
    for _, e in stream(calls, "crypto"):
        if e["ev"] == "XQ":
            assert 0 < e["bp"] < e["ap"] and e["bs"] > 0 and e["as"] > 0
            book[e["pair"]] = (e["bp"], e["ap"])
        elif e["ev"] == "XT":
            n += 1
            bid, ask = book[e["pair"]]
            assert e["c"] in ([1], [2])
            assert e["p"] == (ask if e["c"] == [2] else bid), "buys lift the ask, sells hit the bid"
            assert e["s"] > 0 and isinstance(e["i"], int) and e["i"] not in ids
            ids.add(e["i"])
    assert n > 500


def test_forex_quotes(calls: list[Call]) -> None:
    quotes = [e for _, e in stream(calls, "forex") if e["ev"] == "C"]
    assert quotes
    for e in quotes:
        assert isinstance(e["x"], int) and 0 < e["b"] < e["a"]
        decimals = 3 if "JPY" in e["p"] else 5
        assert round(e["a"], decimals) == e["a"] and round(e["b"], decimals) == e["b"]


# ---------------------------------------------------------------------------------------------------- wire shapes

# (cluster, ev) -> the spec path whose example gives the keys
SHAPES = {
    ("stocks", "T"): "/stocks/T", ("stocks", "Q"): "/stocks/Q", ("stocks", "A"): "/stocks/A",
    ("stocks", "AM"): "/stocks/AM", ("options", "T"): "/options/T", ("options", "Q"): "/options/Q",
    ("options", "A"): "/options/A", ("options", "AM"): "/options/AM", ("crypto", "XT"): "/crypto/XT",
    ("crypto", "XQ"): "/crypto/XQ", ("crypto", "XA"): "/crypto/XA", ("forex", "C"): "/forex/C",
    ("forex", "CA"): "/forex/CA", ("indices", "V"): "/indices/V", ("indices", "A"): "/indices/A",
    ("indices", "AM"): "/indices/AM", ("stocks", "LULD"): "/stocks/LULD", ("stocks", "NOI"): "/stocks/NOI",
    ("stocks", "FMV"): "/business/stocks/FMV", ("stocks", "LV"): "/launchpad/stocks/LV",
    ("options", "FMV"): "/business/options/FMV", ("crypto", "XAS"): "/crypto/XAS", ("crypto", "XL2"): "/crypto/XL2",
    ("crypto", "FMV"): "/business/crypto/FMV", ("forex", "CAS"): "/forex/CAS", ("forex", "FMV"): "/business/forex/FMV",
}


def test_events_have_the_spec_example_keys_and_types(calls: list[Call]) -> None:
    by_path = json.loads(EXAMPLES.read_text())
    examples = {k: by_path[p] for k, p in SHAPES.items()}
    seen: set[tuple[str, str]] = set()
    for call in calls:
        for cluster, evs in call.events.items():
            for e in evs:  # decoded with key order kept
                kind = (cluster, e["ev"])
                seen.add(kind)
                example = examples[kind]
                want = list(example)
                if kind == ("stocks", "T") and "c" not in e:
                    want.remove("c")  # regular stock trades carry no condition list, as on Polygon
                assert list(e) == want, (kind, e)  # same keys, in the spec's order
                for k, v in e.items():
                    x = example[k]
                    if kind == ("forex", "C") and k == "x":
                        assert isinstance(v, int)  # the example shows "44"; the schema says integer
                    elif isinstance(x, bool) or x is None:
                        continue
                    elif kind[1] == "FMV" and k == "sym":  # the example's ticker form: X:BTC-USD, C:EURUSD, O:…
                        assert v[:2] == x[:2] if x[1] == ":" else ":" not in v, (kind, e)
                        assert ("-" in v) == ("-" in x) and "/" not in v, (kind, e)
                    elif isinstance(x, int):
                        assert type(v) is int, (kind, k, e)
                    elif isinstance(x, float):
                        assert type(v) in (int, float), (kind, k, e)  # whole numbers are written as 175
                    else:
                        assert type(v) is type(x), (kind, k, e)
    assert seen == set(SHAPES)
    # every native code of every cluster is produced (PY comes from the Hermes simulator, not this market)
    assert seen == {(c.name, code) for c in CLUSTERS.values() for code in c.native_codes if code != PYTH_CODE}


# ---------------------------------------------------------------------------------------------------- property


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.lists(st.integers(0, 3000), min_size=1, max_size=30),
       start=st.integers(1_600_000_000_000, 1_800_000_000_000))
def test_any_advance_sequence_keeps_windows_and_unique_sequence_numbers(seed: int, steps: list[int],
                                                                        start: int) -> None:
    times, now = [], start
    for s in steps:
        now += s
        times.append(now)
    calls = run(MarketConfig(seed=seed, trades_per_second=60.0), times, start=start)
    seen: set[tuple[str, str, int]] = set()
    for call in calls:
        for cluster, evs in call.events.items():
            for e in evs:
                if "t" in e:
                    assert call.lo < e["t"] <= call.hi
                elif "e" in e:
                    assert call.lo < e["e"] <= call.hi
                else:  # CA / CAS carry only their start
                    assert call.lo < e["s"] + (1000 if e["ev"] == "CAS" else 60_000) <= call.hi
                if "q" in e:  # LULD numbers its own messages; trades and quotes share a sequence
                    key = (cluster, e["ev"] == "LULD", ticker(e), e["q"])
                    assert key not in seen
                    seen.add(key)


def test_minute_window_can_be_compressed_for_demos_and_tests() -> None:
    calls = run(MarketConfig(seed=5, trades_per_second=200.0, minute_ms=3000), step_times(4, 10_000))
    minutes = [e for _, e in stream(calls, "stocks") if e["ev"] == "AM"]
    assert minutes and all(e["e"] - e["s"] == 3000 and e["s"] % 3000 == 0 for e in minutes)
    with pytest.raises(Exception, match="SIM_MINUTE_MS"):
        from firehose_proxy.sources.simulator import market_config

        market_config(100.0, 1, "", minute_ms=1500)
