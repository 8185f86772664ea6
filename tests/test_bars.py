"""The millisecond bar engine (ms_aggregator: decode, book, clock) against its contract and its plain-Python reference."""

from __future__ import annotations

import json
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ms_aggregator.book import DEFAULT_GRACE_MS, BarBook
from ms_aggregator.clock import ClockSkew
from ms_aggregator.conditions import (
    UPDATES_ALL,
    UPDATES_HIGH_LOW,
    UPDATES_OPEN_CLOSE,
    ConditionRules,
    default_rules,
)
from ms_aggregator.decode import SymbolTable, TradeDecoder
from tests.bar_oracle import ReferenceBook

T0 = 1_700_000_000_000  # a multiple of 60000: every window of the usual intervals starts here
G = DEFAULT_GRACE_MS
KEYS = ["ev", "sym", "interval", "o", "h", "l", "c", "v", "vw", "n", "s", "e"]
FAR = 10**15  # a close time after everything


def trade(sym, p, s, t, c=None, **extra):
    ev = {"ev": "T", "sym": sym, "x": 4, "i": "1", "z": 3, "p": p, "s": s, "t": t, "q": 1}
    if c is not None:
        ev["c"] = c
    ev.update(extra)
    return ev


def xtrade(pair, p, s, t, c=None):
    ev = {"ev": "XT", "pair": pair, "p": p, "t": t, "s": s, "x": 1, "i": "9", "r": t + 5}
    if c is not None:
        ev["c"] = c
    return ev


def frame(*events) -> bytes:
    return msgspec.json.encode(list(events))


def book_for(subs, cluster="stocks", **kw) -> BarBook:
    book = BarBook(cluster, **kw)
    book.set_subscriptions(subs)
    return book


def feed(book: BarBook, *events) -> int:
    return book.add(book.decoder.decode_frame(frame(*events)))


def bars(raw: list[bytes]) -> list[dict]:
    return [json.loads(b) for b in raw]


def close_all(book) -> list[dict]:
    return bars(book.close_due(FAR))


# -- windows --------------------------------------------------------------------------------------------------------


def test_window_boundaries():
    book = book_for([(100, "AAPL")])
    feed(book, trade("AAPL", 1.0, 100, T0 + 99), trade("AAPL", 2.0, 100, T0 + 100), trade("AAPL", 3.0, 100, T0 + 199))
    out = close_all(book)
    assert [(b["s"], b["e"], b["o"], b["c"], b["n"]) for b in out] == [
        (T0, T0 + 100, 1.0, 1.0, 1),  # t = s + N - 1 is still in [s, e)
        (T0 + 100, T0 + 200, 2.0, 3.0, 2),  # t % N == 0 opens a new window
    ]


def test_wire_format_is_compact_and_ordered():
    book = book_for([(250, "MSFT")])
    feed(book, trade("MSFT", 114.125, 100, T0 + 10), trade("MSFT", 114.5, 300, T0 + 20))
    (raw,) = book.close_due(FAR)
    assert b" " not in raw
    assert raw.startswith(b'{"ev":"MB","sym":"MSFT","interval":250,')
    bar = json.loads(raw)
    assert list(bar) == KEYS
    assert bar == {
        "ev": "MB", "sym": "MSFT", "interval": 250, "o": 114.125, "h": 114.5, "l": 114.125, "c": 114.5,
        "v": 400, "vw": (114.125 * 100 + 114.5 * 300) / 400, "n": 2, "s": T0, "e": T0 + 250,
    }  # fmt: skip
    assert isinstance(bar["v"], int)
    assert book.bars_out == 1 and book.open_bars == 0


def test_ohlc_follow_arrival_order_not_timestamps():
    book = book_for([(1000, "A")])
    feed(book, trade("A", 5.0, 1, T0 + 500), trade("A", 7.0, 1, T0 + 100), trade("A", 3.0, 1, T0 + 300))
    feed(book, trade("A", 6.0, 1, T0 + 50))
    (bar,) = close_all(book)
    assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["n"]) == (5.0, 7.0, 3.0, 6.0, 4)


def test_close_due_waits_for_grace_and_closes_many_windows_in_order():
    book = book_for([(100, "*"), (250, "*")])
    feed(
        book,
        trade("B", 1.0, 1, T0 + 10),
        trade("A", 1.0, 1, T0 + 20),
        trade("A", 2.0, 1, T0 + 120),
        trade("B", 2.0, 1, T0 + 260),
    )
    assert book.close_due(T0 + 100 + G - 1) == []
    first = bars(book.close_due(T0 + 100 + G))
    assert [(b["sym"], b["interval"], b["e"]) for b in first] == [("A", 100, T0 + 100), ("B", 100, T0 + 100)]
    rest = bars(book.close_due(T0 + 10_000))
    assert [(b["sym"], b["interval"], b["e"]) for b in rest] == [
        ("A", 100, T0 + 200),
        ("A", 250, T0 + 250),
        ("B", 250, T0 + 250),
        ("B", 100, T0 + 300),
        ("B", 250, T0 + 500),
    ]
    assert book.open_bars == 0


def test_trade_before_close_is_merged_late_trade_is_counted_not_merged():
    book = book_for([(100, "A")])
    feed(book, trade("A", 1.0, 10, T0 + 5))
    assert book.close_due(T0 + 100 + G - 1) == []
    assert feed(book, trade("A", 9.0, 10, T0 + 99)) == 0  # window still open (within grace): merged
    (bar,) = bars(book.close_due(T0 + 100 + G))
    assert (bar["c"], bar["h"], bar["v"], bar["n"]) == (9.0, 9.0, 20, 2)
    assert feed(book, trade("A", 50.0, 10, T0 + 50), trade("A", 2.0, 10, T0 + 150)) == 1
    assert book.late_trades == 1
    (bar,) = close_all(book)
    assert (bar["s"], bar["o"], bar["h"], bar["v"], bar["n"]) == (T0 + 100, 2.0, 2.0, 10, 1)


def test_late_for_one_interval_still_counts_in_the_open_one():
    book = book_for([(100, "A"), (60000, "A")])
    feed(book, trade("A", 1.0, 10, T0 + 5))
    assert len(book.close_due(T0 + 100 + G)) == 1
    assert feed(book, trade("A", 3.0, 10, T0 + 50)) == 1
    (bar,) = close_all(book)
    assert (bar["interval"], bar["c"], bar["v"], bar["n"]) == (60000, 3.0, 20, 2)


def test_window_without_any_trade_emits_nothing():
    book = book_for([(100, "*")])
    feed(book, trade("A", 1.0, 1, T0 + 5))
    assert len(book.close_due(T0 + 10_000)) == 1
    assert book.close_due(T0 + 20_000) == []


# -- conditions -----------------------------------------------------------------------------------------------------


def test_odd_lot_adds_volume_but_not_price():
    book = book_for([(100, "A")])
    feed(book, trade("A", 10.0, 100, T0 + 1), trade("A", 99.0, 37, T0 + 2, [37]), trade("A", 11.0, 100, T0 + 3))
    (bar,) = close_all(book)
    assert (bar["o"], bar["h"], bar["l"], bar["c"]) == (10.0, 11.0, 10.0, 11.0)
    assert bar["v"] == 237
    assert bar["vw"] == (10.0 * 100 + 99.0 * 37 + 11.0 * 100) / 237
    assert bar["n"] == 3


def test_volume_only_window_emits_no_bar_and_carries_nothing():
    book = book_for([(100, "A")])
    feed(book, trade("A", 10.0, 37, T0 + 1, [37]), trade("A", 10.0, 50, T0 + 2, [12]))
    feed(book, trade("A", 12.0, 100, T0 + 101))
    out = close_all(book)
    assert [(b["s"], b["v"], b["n"]) for b in out] == [(T0 + 100, 100, 1)]
    assert book.volume_only_windows == 1


def test_official_open_close_prints_touch_nothing():
    book = book_for([(100, "A")])
    feed(book, trade("A", 50.0, 1000, T0 + 1, [15]), trade("A", 10.0, 100, T0 + 2), trade("A", 60.0, 5, T0 + 3, [16]))
    (bar,) = close_all(book)
    assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"], bar["n"]) == (10.0, 10.0, 10.0, 10.0, 100, 1)


def test_high_low_only_trades_set_extremes_and_stand_in_for_open_close():
    book = book_for([(100, "A")])
    # 10 = derivatively priced: high/low and volume, not open/close
    feed(book, trade("A", 10.0, 100, T0 + 1), trade("A", 15.0, 100, T0 + 2, [10]), trade("A", 11.0, 100, T0 + 3))
    feed(book, trade("A", 4.0, 100, T0 + 101, [10]), trade("A", 5.0, 100, T0 + 102, [32]))
    first, second = close_all(book)
    assert (first["o"], first["h"], first["l"], first["c"]) == (10.0, 15.0, 10.0, 11.0)
    assert (second["o"], second["h"], second["l"], second["c"], second["n"]) == (4.0, 5.0, 4.0, 5.0, 2)


def test_open_close_without_high_low_and_no_volume_fallbacks():
    rules = ConditionRules({1: UPDATES_OPEN_CLOSE, 2: UPDATES_OPEN_CLOSE | UPDATES_HIGH_LOW})
    book = book_for([(100, "A")], rules=rules)
    feed(book, trade("A", 3.0, 10, T0 + 1, [1]), trade("A", 2.0, 10, T0 + 2, [1]))
    feed(book, trade("A", 7.0, 10, T0 + 101, [2]))
    first, second = close_all(book)
    assert (first["h"], first["l"]) == (3.0, 2.0)  # max(o, c), min(o, c)
    assert (first["v"], first["vw"]) == (0, 2.0)  # no volume: vw is the close
    assert (second["v"], second["vw"], second["n"]) == (0, 7.0, 1)


def test_unknown_condition_is_regular():
    book = book_for([(100, "A")])
    feed(book, trade("A", 10.0, 100, T0 + 1, [4242]), trade("A", 12.0, 50, T0 + 2, [4242, 14]))
    (bar,) = close_all(book)
    assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"], bar["n"]) == (10.0, 12.0, 10.0, 12.0, 150, 2)


def test_crypto_ignores_conditions_and_keeps_float_volume():
    book = book_for([(1000, "BTC-USD")], cluster="crypto")
    feed(
        book,
        xtrade("BTC-USD", 33021.9, 0.01616617, T0 + 1, [2]),
        xtrade("BTC-USD", 33022.5, 0.5, T0 + 2, [37]),
        xtrade("ETH-USD", 2000.0, 1.0, T0 + 3),
    )
    (raw,) = book.close_due(FAR)
    bar = json.loads(raw)
    assert (bar["sym"], bar["o"], bar["c"], bar["n"]) == ("BTC-USD", 33021.9, 33022.5, 2)
    assert bar["v"] == 0.01616617 + 0.5
    assert b'"v":0.51616617' in raw


def test_crypto_integral_volume_stays_float():
    book = book_for([(1000, "*")], cluster="crypto")
    feed(book, xtrade("X-USD", 1.0, 2, T0))
    (raw,) = book.close_due(FAR)
    assert b'"v":2.0' in raw


def test_options_cluster_uses_T_events():
    book = book_for([(100, "*")], cluster="options")
    feed(book, trade("O:SPY241220C00500000", 1.25, 3, T0, [209]))
    (bar,) = close_all(book)
    assert (bar["sym"], bar["o"], bar["v"]) == ("O:SPY241220C00500000", 1.25, 3)


# -- decoding -------------------------------------------------------------------------------------------------------


def test_decoder_columns_and_condition_masks():
    dec = TradeDecoder("stocks")
    batch = dec.decode_frame(
        frame(trade("MSFT", 114.125, 100, 1536036818784, [0, 12]), trade("AAPL", 1.5, 1, 2), trade("MSFT", 2.0, 7, 3))
    )
    assert len(batch) == 3
    assert batch.tid.dtype.name == "int32" and batch.price.dtype.name == "float64"
    assert batch.size.dtype.name == "float64" and batch.t.dtype.name == "int64" and batch.flags.dtype.name == "uint8"
    assert [dec.symbols.names[i] for i in batch.tid] == ["MSFT", "AAPL", "MSFT"]
    assert batch.price.tolist() == [114.125, 1.5, 2.0]
    assert batch.t.tolist() == [1536036818784, 2, 3]
    assert batch.flags.tolist() == [4, UPDATES_ALL, UPDATES_ALL]
    assert batch.max_t == 1536036818784


def test_decoder_skips_other_events_and_malformed_trades():
    dec = TradeDecoder("stocks")
    events = [
        {"ev": "status", "status": "connected", "message": "Connected Successfully"},
        trade("A", 1.0, 1, T0),
        {"ev": "Q", "sym": "A", "bx": 4, "bp": 1.0, "bs": 1, "ax": 7, "ap": 1.1, "as": 1, "c": 0, "i": [604], "t": 1},
        {"ev": "AM", "sym": "A", "v": 1, "o": 1.0, "c": 1.1, "h": 1.2, "l": 0.9, "s": T0, "e": T0 + 60000},
        {"ev": "T", "sym": "A", "p": "not a price", "s": 1, "t": 1},
        {"ev": "T", "sym": "A", "s": 1, "t": 1},
        trade("B", 2.0, 2, T0 + 1),
        7,
    ]
    batch = dec.decode_frame(frame(*events))
    assert [dec.symbols.names[i] for i in batch.tid] == ["A", "B"]
    assert (dec.skipped, dec.malformed) == (4, 2)


def test_decoder_rejects_values_the_columns_cannot_hold():
    dec = TradeDecoder("stocks")
    batch = dec.decode_frame(
        frame(trade("A", 1.0, 1, 2**70), trade("A", 1.0, -5, T0), trade("A", 1.0, 1, -1), trade("A", 2.0, 3, T0))
    )
    assert batch.price.tolist() == [2.0]
    assert dec.malformed == 3
    assert dec.decode_frame(frame(trade("A", 1.0, 1, T0)).decode()).price.tolist() == [1.0]  # str frames too


def test_decoder_event_list_lone_object_and_empty():
    dec = TradeDecoder("stocks")
    events = [msgspec.json.encode(trade("A", 1.0, 1, T0)), msgspec.json.encode(trade("B", 2.0, 2, T0))]
    assert dec.decode(events).price.tolist() == [1.0, 2.0]
    assert dec.decode_frame(msgspec.json.encode(trade("C", 3.0, 1, T0))).price.tolist() == [3.0]
    assert len(dec.decode([])) == 0 and len(dec.decode_frame(b"[]")) == 0
    assert dec.decode_frame(b"[]").max_t is None
    with pytest.raises(msgspec.DecodeError):
        dec.decode_frame(b"[{")


def test_crypto_decoder_reads_pair_and_skips_stock_trades():
    dec = TradeDecoder("crypto")
    batch = dec.decode_frame(frame(xtrade("BTC-USD", 1.0, 0.5, T0, [2]), trade("AAPL", 1.0, 1, T0)))
    assert [dec.symbols.names[i] for i in batch.tid] == ["BTC-USD"]
    assert batch.flags.tolist() == [UPDATES_ALL] and dec.skipped == 1


def test_unknown_cluster_is_rejected():
    for cluster in ("forex", "indices", "nope"):
        with pytest.raises(ValueError):
            TradeDecoder(cluster)
        with pytest.raises(ValueError):
            BarBook(cluster)


def test_batches_from_a_foreign_symbol_table_are_mapped_by_name():
    book = book_for([(100, "B")])
    dec = TradeDecoder("stocks", symbols=SymbolTable())
    book.add(dec.decode_frame(frame(trade("A", 1.0, 1, T0), trade("B", 2.0, 1, T0))))
    book.add(dec.decode_frame(frame(trade("C", 1.0, 1, T0), trade("B", 3.0, 1, T0 + 1))))
    (bar,) = close_all(book)
    assert (bar["sym"], bar["o"], bar["c"], bar["n"]) == ("B", 2.0, 3.0, 2)


# -- subscriptions --------------------------------------------------------------------------------------------------


def test_wildcard_builds_every_ticker_and_adds_to_named_intervals():
    book = book_for([(100, "*"), (1000, "A")])
    feed(book, trade("A", 1.0, 1, T0), trade("B", 2.0, 1, T0), trade("C", 3.0, 1, T0))
    out = close_all(book)
    assert sorted((b["sym"], b["interval"]) for b in out) == [("A", 100), ("A", 1000), ("B", 100), ("C", 100)]


def test_no_subscription_no_bars():
    book = BarBook("stocks")
    assert feed(book, trade("A", 1.0, 1, T0)) == 0
    assert close_all(book) == [] and book.trades_in == 1


def test_changing_subscriptions_keeps_wanted_bars_and_drops_the_rest():
    book = book_for([(100, "*"), (1000, "A"), (1000, "B")])
    feed(book, trade("A", 1.0, 1, T0), trade("B", 2.0, 1, T0), trade("C", 3.0, 1, T0))
    assert book.open_bars == 5
    book.set_subscriptions([(1000, "A"), (250, "*")])
    assert book.open_bars == 1
    feed(book, trade("A", 4.0, 1, T0 + 1), trade("B", 5.0, 1, T0 + 2))
    out = close_all(book)
    assert sorted((b["sym"], b["interval"], b["o"], b["c"], b["n"]) for b in out) == [
        ("A", 250, 4.0, 4.0, 1),
        ("A", 1000, 1.0, 4.0, 2),
        ("B", 250, 5.0, 5.0, 1),
    ]
    assert book.subscriptions == frozenset({(1000, "A"), (250, "*")})


def test_dropped_bars_leave_no_stale_cache_behind():
    # Two open windows of A (the series cache holds both), dropped; their slots are reused by B; A comes back.
    book, ref = BarBook("stocks"), ReferenceBook("stocks")
    steps = [
        ([(100, "A")], [trade("A", 1.0, 1, T0 + 150), trade("A", 2.0, 1, T0 + 50)]),
        ([], []),
        ([(100, "B")], [trade("B", 3.0, 1, T0 + 50), trade("B", 4.0, 1, T0 + 150)]),
        ([(100, "A"), (100, "B")], [trade("A", 5.0, 1, T0 + 60), trade("A", 6.0, 1, T0 + 160)]),
    ]
    for subs, events in steps:
        book.set_subscriptions(subs)
        ref.set_subscriptions(subs)
        if events:
            book.add(book.decoder.decode_frame(frame(*events)))
            ref.add_frame(frame(*events))
    assert bars(book.close_due(FAR)) == bars(ref.close_due(FAR))


def test_many_intervals_widen_the_book_while_bars_are_open():
    book = book_for([(100, "A")])
    ref = ReferenceBook("stocks")
    ref.set_subscriptions([(100, "A")])
    f1 = frame(trade("A", 1.0, 1, T0 + 1), trade("B", 2.0, 1, T0 + 2))
    book.add(book.decoder.decode_frame(f1))
    ref.add_frame(f1)
    subs = [(iv, "*") for iv in (1, 2, 3, 5, 7, 11, 13, 100, 60000)] + [(17, "A")]
    book.set_subscriptions(subs)
    ref.set_subscriptions(subs)
    f2 = frame(trade("A", 3.0, 1, T0 + 3), trade("B", 4.0, 1, T0 + 50), trade("A", 5.0, 1, T0 + 70))
    book.add(book.decoder.decode_frame(f2))
    ref.add_frame(f2)
    assert bars(book.close_due(FAR)) == bars(ref.close_due(FAR))


@pytest.mark.parametrize("bad", [(0, "A"), (60001, "A"), (1.5, "A"), (True, "A"), (100, ""), (100, None)])
def test_bad_subscriptions_are_rejected(bad):
    with pytest.raises(ValueError):
        BarBook("stocks").set_subscriptions([bad])


# -- clock skew -----------------------------------------------------------------------------------------------------


def test_skew_without_observations_is_zero():
    skew = ClockSkew()
    assert skew.offset == 0 and skew.market_now(123) == 123
    skew.observe(1000, None)
    assert skew.offset == 0


def test_skew_ignores_a_few_delayed_trades_and_a_bogus_early_one():
    skew = ClockSkew()
    rng = random.Random(3)
    for i in range(20_000):
        local = T0 + i
        delay = 400 if i % 997 == 0 else rng.randint(2, 8)
        skew.observe(local + 5000, local - delay)
    assert 5002 <= skew.offset <= 5004
    skew.observe(T0 + 20_001 + 5000, T0 + 20_001 + 3000)  # a trade "from the future" once
    assert 5002 <= skew.offset <= 5004


def test_skew_follows_a_clock_step_within_the_window():
    skew = ClockSkew(bucket_ms=1000, buckets=4)
    for i in range(0, 4000, 10):
        skew.observe(T0 + i + 3, T0 + i)
    assert skew.offset == 3
    for i in range(4000, 8000, 10):  # the local clock stepped 2 s ahead
        skew.observe(T0 + i + 2003, T0 + i)
    assert skew.offset == 2003
    skew.observe(T0 + 60_000, T0 + 60_000 - 7)  # after a silence, old buckets no longer count
    assert skew.offset == 7


@pytest.mark.parametrize("skew_ms", [5000, -5000, 0])
def test_skewed_local_clock_loses_no_trade_and_delays_no_bar(skew_ms):
    book = book_for([(100, "*"), (250, "A")])
    skew = ClockSkew()
    rng = random.Random(skew_ms)
    # One trade every 0.5 ms of market time for 3 s; transport latency 2..12 ms (jitter below grace).
    arrivals = []
    for i in range(6000):
        t = T0 + i // 2
        arrivals.append((t + rng.randint(2, 12) + skew_ms, t, rng.choice("ABC")))
    arrivals.sort()
    emitted = []
    pos = 0
    for local in range(T0 + skew_ms, T0 + 3200 + skew_ms):
        events = []
        while pos < len(arrivals) and arrivals[pos][0] <= local:
            _, t, sym = arrivals[pos]
            events.append(trade(sym, 10.0 + rng.random(), 100, t))
            pos += 1
        if events:
            batch = book.decoder.decode_frame(frame(*events))
            skew.observe(local, batch.max_t)
            book.add(batch)
        for raw in book.close_due(skew.market_now(local)):
            emitted.append((json.loads(raw), local - skew_ms))  # the true market time at emission
    assert book.late_trades == 0
    assert pos == len(arrivals)
    assert len(emitted) == 3 * 30 + 12
    assert sum(b["n"] for b, _ in emitted if b["interval"] == 100) == 6000
    for bar, market_time in emitted:
        # Closed no earlier than e + grace, and no later than that plus the worst latency and one tick.
        assert bar["e"] + G <= market_time <= bar["e"] + G + 12 + 1


# -- against the reference ------------------------------------------------------------------------------------------

TICKERS = ["AAPL", "BB", "C", "DDDD"]
RULE_IDS = sorted(default_rules().ids)
INTERVALS = st.one_of(st.sampled_from([1, 2, 3, 7, 10, 100, 250, 1000, 60000]), st.integers(1, 60000))
CONDITIONS = st.one_of(
    st.none(),
    st.lists(st.one_of(st.sampled_from(RULE_IDS), st.sampled_from([99, 4242, 100000])), max_size=3),
)
PRICES = st.one_of(
    st.integers(1, 100_000).map(lambda cents: cents / 100),
    st.floats(1e-6, 1e7, allow_nan=False, allow_infinity=False),
)
OTHER_EVENTS = [
    {"ev": "status", "status": "success", "message": "subscribed to: T.*"},
    {"ev": "Q", "sym": "AAPL", "bx": 4, "bp": 1.0, "bs": 1, "ax": 7, "ap": 1.1, "as": 1, "c": 0, "t": T0},
    {"ev": "XQ", "pair": "BTC-USD", "bp": 1.0, "bs": 1.0, "ap": 1.1, "as": 1.0, "t": T0, "x": 1, "r": T0},
    # malformed trades, skipped by both
    {"ev": "T", "sym": "AAPL", "p": "1.5", "s": 1, "t": T0},
    {"ev": "T", "sym": "AAPL", "p": 1.5, "s": -1, "t": T0},
    {"ev": "T", "sym": "AAPL", "p": 1.5, "s": 1, "t": T0, "c": ["x"]},
    {"ev": "XT", "pair": "BB", "p": 1.5, "s": 1.0},
    {"ev": "XT", "pair": "BB", "p": 1.5, "s": 1.0, "t": 1.5},
]


@st.composite
def scenarios(draw):
    cluster = draw(st.sampled_from(["stocks", "stocks", "crypto"]))
    intervals = draw(st.lists(INTERVALS, min_size=1, max_size=4, unique=True))
    targets = st.sampled_from([*TICKERS, "*", "*"])
    subs = draw(st.lists(st.tuples(st.sampled_from(intervals), targets), min_size=1, max_size=6))
    sizes = st.integers(0, 10_000) if cluster != "crypto" else st.floats(0, 1e4, allow_nan=False, allow_infinity=False)
    # Market clock steps forward; each trade is stamped up to a bit more than grace before its arrival, so
    # arrival order is shuffled within the grace window and a few trades come late.
    n = draw(st.integers(0, 100))
    item = st.tuples(st.integers(0, 25), st.integers(0, G + 10), st.sampled_from(TICKERS), PRICES, sizes, CONDITIONS)
    raw = draw(st.lists(item, min_size=n, max_size=n))
    start = T0 + draw(st.integers(0, 120_000))
    clock = start
    events = []
    for step, delay, sym, price, size, conds in raw:
        clock += step
        t = clock - delay
        if cluster == "crypto":
            events.append((xtrade(sym, price, size, t, conds), clock))
        else:
            events.append((trade(sym, price, size, t, conds), clock))
    # Split into frames; after each frame maybe close at a time near the market clock (kept increasing).
    ops = []
    i = 0
    now = start - 1000
    while i < len(events):
        k = draw(st.integers(1, 12))
        chunk = [ev for ev, _ in events[i : i + k]]
        if draw(st.booleans()) and draw(st.booleans()):
            chunk.insert(draw(st.integers(0, len(chunk))), draw(st.sampled_from(OTHER_EVENTS)))
        ops.append(("frame", frame(*chunk)))
        i = min(i + k, len(events))
        if draw(st.booleans()):
            now = max(now, events[i - 1][1] + draw(st.integers(-30, 80)))
            ops.append(("close", now))
    ops.append(("close", FAR))
    return cluster, subs, [ev for ev, _ in events], ops


def in_window(ev, bar, cluster, rules):
    sym = ev["pair"] if cluster == "crypto" else ev["sym"]
    if sym != bar["sym"] or not bar["s"] <= ev["t"] < bar["e"]:
        return False
    return cluster == "crypto" or bool(rules.mask(ev.get("c")) & (UPDATES_OPEN_CLOSE | UPDATES_HIGH_LOW))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_book_matches_reference(scenario):
    cluster, subs, trades, ops = scenario
    book = book_for(subs, cluster=cluster)
    ref = ReferenceBook(cluster)
    ref.set_subscriptions(subs)
    seen = set()
    rules = default_rules()
    for op, arg in ops:
        if op == "frame":
            assert book.add(book.decoder.decode_frame(arg)) == ref.add_frame(arg)
            continue
        got_raw = book.close_due(arg)
        got, want = bars(got_raw), bars(ref.close_due(arg))
        assert got == want
        for raw, bar in zip(got_raw, got):
            assert list(bar) == KEYS and b" " not in raw
            assert bar["s"] % bar["interval"] == 0 and bar["e"] == bar["s"] + bar["interval"]
            key = (bar["sym"], bar["interval"], bar["s"])
            assert key not in seen
            seen.add(key)
            assert any(in_window(ev, bar, cluster, rules) for ev in trades)
            assert bar["l"] <= bar["h"]
    assert (book.trades_in, book.late_trades, book.bars_out) == (ref.trades_in, ref.late_trades, ref.bars_out)
    assert book.volume_only_windows == ref.volume_only_windows
    assert book.open_bars == ref.open_bars == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(TICKERS), st.integers(0, 3000), CONDITIONS), max_size=60),
    st.lists(st.lists(st.tuples(INTERVALS, st.sampled_from([*TICKERS, "*"])), max_size=4), min_size=1, max_size=4),
)
def test_subscription_changes_match_reference(raw, sub_sets):
    book, ref = BarBook("stocks"), ReferenceBook("stocks")
    chunks = [raw[i :: len(sub_sets)] for i in range(len(sub_sets))]
    for subs, chunk in zip(sub_sets, chunks):
        book.set_subscriptions(subs)
        ref.set_subscriptions(subs)
        assert book.open_bars == ref.open_bars
        f = frame(*(trade(sym, 1.0 + dt / 7, 1 + dt % 5, T0 + dt, c) for sym, dt, c in chunk))
        book.add(book.decoder.decode_frame(f))
        ref.add_frame(f)
        assert bars(book.close_due(T0 + 1000)) == bars(ref.close_due(T0 + 1000))
    assert bars(book.close_due(FAR)) == bars(ref.close_due(FAR))
