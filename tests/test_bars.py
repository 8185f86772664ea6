"""The millisecond bar engine (ms_aggregator: decode, book, clocks): windows, conditions, decoding, subscriptions.

Per-source clocks, partial bars, late policies and memory have their own files (test_bars_clock.py,
test_bars_partial.py, test_bars_oracle.py); the property test against the independent oracle is test_bars_oracle.py.
"""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest

from ms_aggregator.book import BarBook
from ms_aggregator.conditions import (
    UPDATES_ALL,
    UPDATES_HIGH_LOW,
    UPDATES_OPEN_CLOSE,
    ConditionRules,
)
from ms_aggregator.decode import SymbolTable, TradeDecoder
from tests.bar_helpers import (
    FAR,
    KEYS,
    T0,
    G,
    bars,
    book_for,
    close_all,
    feed,
    frame,
    trade,
    xtrade,
)
from tests.bar_oracle import ReferenceBook

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
    assert batch.tid.dtype == np.intp and batch.src.dtype == np.intp and batch.price.dtype.name == "float64"
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
    book.add(dec.decode_frame(frame(trade("A", 1.0, 1, T0), trade("B", 2.0, 1, T0))), T0)
    book.add(dec.decode_frame(frame(trade("C", 1.0, 1, T0), trade("B", 3.0, 1, T0 + 1))), T0 + 1)
    (bar,) = close_all(book)
    assert (bar["sym"], bar["o"], bar["c"], bar["n"]) == ("B", 2.0, 3.0, 2)


# -- subscriptions --------------------------------------------------------------------------------------------------


def test_wildcard_builds_every_ticker_and_adds_to_named_intervals():
    book = book_for([(100, "*"), (1000, "A")])
    feed(book, trade("A", 1.0, 1, T0), trade("B", 2.0, 1, T0), trade("C", 3.0, 1, T0))
    out = close_all(book)
    assert sorted((b["sym"], b["interval"]) for b in out) == [("A", 100), ("A", 1000), ("B", 100), ("C", 100)]


def test_no_subscription_no_bars():
    book = book_for([], warm=False)
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
    book, ref = book_for([], warm=False), ReferenceBook("stocks")
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
            book.add(book.decoder.decode_frame(frame(*events)), T0 + 200)
            ref.add_frame(frame(*events), T0 + 200)
    assert bars(book.close_due(FAR)) == bars(ref.close_due(FAR))


def test_many_intervals_widen_the_book_while_bars_are_open():
    book = book_for([(100, "A")], warm=False)
    ref = ReferenceBook("stocks")
    ref.set_subscriptions([(100, "A")])
    f1 = frame(trade("A", 1.0, 1, T0 + 1), trade("B", 2.0, 1, T0 + 2))
    book.add(book.decoder.decode_frame(f1), T0 + 2)
    ref.add_frame(f1, T0 + 2)
    subs = [(iv, "*") for iv in (1, 2, 3, 5, 7, 11, 13, 100, 60000)] + [(17, "A")]
    book.set_subscriptions(subs)
    ref.set_subscriptions(subs)
    f2 = frame(trade("A", 3.0, 1, T0 + 3), trade("B", 4.0, 1, T0 + 50), trade("A", 5.0, 1, T0 + 70))
    book.add(book.decoder.decode_frame(f2), T0 + 70)
    ref.add_frame(f2, T0 + 70)
    assert bars(book.close_due(FAR)) == bars(ref.close_due(FAR))


@pytest.mark.parametrize("bad", [(0, "A"), (60001, "A"), (1.5, "A"), (True, "A"), (100, ""), (100, None)])
def test_bad_subscriptions_are_rejected(bad):
    with pytest.raises(ValueError):
        BarBook("stocks").set_subscriptions([bad])
