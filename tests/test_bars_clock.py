"""Market clocks of the bar book: one clock per source (the trade's ``x``), windows held for slow sources, and a
lateness horizon that moves with the clock whatever other tickers do."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from ms_aggregator.book import DEFAULT_GRACE_MS
from ms_aggregator.clock import NEVER, ClockSkew, SourceClocks
from ms_aggregator.decode import MAX_SOURCES, SourceTable
from tests.bar_helpers import T0, book_for, feed, frame, trade, xtrade

G = DEFAULT_GRACE_MS


def bars(raw):
    return [json.loads(b) for b in raw]


# -- one clock --------------------------------------------------------------------------------------------------


def test_skew_without_observations_is_zero():
    skew = ClockSkew()
    assert skew.offset == 0 and skew.market_now(123) == 123 and not skew.known
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


# -- sources ----------------------------------------------------------------------------------------------------


def test_sources_get_their_own_clock_and_horizon():
    sources = SourceTable()
    clocks = SourceClocks(sources)
    assert clocks.market_ms == NEVER and clocks.market_at(T0) == NEVER
    src = np.array([sources[x] for x in (4, 300, 4, 2**20)], np.uint8)
    assert src.tolist() == [0, 1, 0, 2] and clocks.keys == [4, 300, 2**20]
    clocks.observe(T0 + 100, src, np.array([T0 + 100, T0 + 40, T0 + 90, T0 + 99], np.int64))
    assert [s.offset for s in clocks.skews] == [0, 60, 1]
    assert clocks.market_at(T0 + 100) == T0 + 100
    clocks.tick(T0 + 110)
    assert clocks.horizon == [T0 + 110, T0 + 50, T0 + 109]
    assert clocks.market_ms == T0 + 110 and clocks.slowest() == T0 + 50
    masks = np.array([0b001, 0b011, 0b110, 0], np.int64)
    assert clocks.min_horizon(masks, empty=-1).tolist() == [T0 + 110, T0 + 50, T0 + 50, -1]


def test_horizons_never_go_back():
    sources = SourceTable()
    clocks = SourceClocks(sources)
    src = np.array([sources[1]], np.uint8)
    clocks.observe(T0, src, np.array([T0], np.int64))
    clocks.tick(T0 + 10)
    clocks.observe(T0 + 11, src, np.array([T0 - 500], np.int64))  # a late print does not lower the estimate...
    clocks.tick(T0 + 5)  # ...and a tick at an earlier local time does not move the horizon back
    assert clocks.horizon[0] == T0 + 10


def test_more_sources_than_bits_share_the_last_one():
    sources = SourceTable()
    src = [sources[x] for x in range(MAX_SOURCES + 5)]
    assert max(src) == MAX_SOURCES - 1 and len(sources) == MAX_SOURCES
    assert set(src[MAX_SOURCES - 1:]) == {MAX_SOURCES - 1}


# -- windows held for the sources of their ticker ----------------------------------------------------------------


def test_a_window_waits_for_every_source_that_trades_its_ticker_and_no_longer():
    book = book_for([(100, "*")], cluster="crypto")
    # BTC trades on a fast venue (x=1) and one 150 ms behind (x=2); ETH only on the fast one.
    feed(book, xtrade("BTC-USD", 10.0, 1, T0 + 10, x=1), xtrade("ETH-USD", 5.0, 1, T0 + 10, x=1), local=T0 + 10)
    feed(book, xtrade("BTC-USD", 11.0, 1, T0 + 20, x=2), local=T0 + 170)
    out = bars(book.close_due(T0 + 100 + G))  # the fast clock passed e + grace: ETH closes, BTC waits for x=2
    assert [b["sym"] for b in out] == ["ETH-USD"]
    feed(book, xtrade("BTC-USD", 12.0, 1, T0 + 95, x=2), local=T0 + 245)  # x=2's print of that window: merged
    assert bars(book.close_due(T0 + 100 + G + 149)) == []
    (btc,) = bars(book.close_due(T0 + 100 + G + 150))
    assert (btc["sym"], btc["o"], btc["c"], btc["n"]) == ("BTC-USD", 10.0, 12.0, 3)
    assert book.late_trades == 0


def test_a_source_that_stops_trading_a_ticker_stops_holding_it():
    hold = 1000
    book = book_for([(100, "*")], cluster="crypto", hold_ms=hold)
    feed(book, xtrade("BTC-USD", 10.0, 1, T0 + 10, x=2), local=T0 + 160)  # x=2: 150 ms behind
    book.close_due(T0 + 400)
    start = T0 + 3 * hold  # x=2 has not traded BTC for two hold epochs: only x=1 counts now
    feed(book, xtrade("BTC-USD", 11.0, 1, start + 10, x=1), local=start + 10)
    (bar,) = bars(book.close_due(start + 100 + G))
    assert (bar["s"], bar["o"]) == (start, 11.0)


def test_lateness_moves_with_the_clock_whatever_other_tickers_do():
    """The same stale trade is late with no bar open anywhere and with another ticker's 60 s bar open."""
    outcomes = []
    for other_bar_open in (False, True):
        book = book_for([(100, "AAPL"), (60000, "MSFT")])
        feed(book, trade("AAPL", 10.0, 100, T0 + 10))
        if other_bar_open:
            feed(book, trade("MSFT", 20.0, 100, T0 + 11))
        book.close_due(T0 + 200)
        for tick in range(T0 + 200, T0 + 10_000, 100):  # ten seconds of ticks, AAPL quiet
            book.close_due(tick)
        assert book.open_bars == int(other_bar_open)
        stale = feed(book, trade("AAPL", 99.0, 100, T0 + 500), local=T0 + 10_000)  # stamped 9.5 s ago
        outcomes.append((stale, bars(book.close_due(T0 + 10_001))))
    assert outcomes[0] == outcomes[1] == (1, [])


def test_a_new_sources_first_prints_are_judged_by_the_ticker_s_other_sources():
    book = book_for([(100, "*")], cluster="crypto")
    feed(book, xtrade("BTC-USD", 10.0, 1, T0 + 10, x=1), local=T0 + 10)
    book.close_due(T0 + 500)
    # x=9 never seen before, stamped 400 ms ago: x=1 (the ticker's only clocked source) says the window is over
    assert feed(book, xtrade("BTC-USD", 11.0, 1, T0 + 90, x=9), local=T0 + 500) == 1
    # a ticker nobody has traded: a source without a clock yet judges nothing late
    assert feed(book, xtrade("SOL-USD", 1.0, 1, T0 + 90, x=9), local=T0 + 500) == 0


@pytest.mark.parametrize("skew_ms", [5000, -5000, 0])
def test_skewed_local_clock_loses_no_trade_and_delays_no_bar(skew_ms):
    book = book_for([(100, "*"), (250, "A")], warm=False)
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
            book.add(book.decoder.decode_frame(frame(*events)), local)
        for raw in book.close_due(local):
            emitted.append((json.loads(raw), local - skew_ms))  # the true market time at emission
    assert book.late_trades == 0
    assert pos == len(arrivals)
    assert len(emitted) == 3 * 30 + 12
    assert sum(b["n"] for b, _ in emitted if b["interval"] == 100) == 6000
    for bar, market_time in emitted:
        # Closed no earlier than e + grace, and no later than that plus the worst latency and one tick.
        assert bar["e"] + G <= market_time <= bar["e"] + G + 12 + 1


def test_four_sources_of_different_delays_lose_nothing_and_each_ticker_waits_only_for_its_own():
    delays = {1: 0, 2: 20, 3: 60, 4: 150}
    book = book_for([(100, "*")], cluster="crypto", warm=False)
    rng = random.Random(9)
    # ticker i trades on venues 1..(i % 4 + 1): its slowest venue is the (i % 4 + 1)-th
    pairs = {f"P{i}-USD": list(delays)[: i % 4 + 1] for i in range(8)}
    arrivals = []
    for i in range(8000):
        t = T0 + i // 4
        pair = rng.choice(list(pairs))
        x = rng.choice(pairs[pair])
        arrivals.append((t + delays[x] + rng.randint(0, 5), t, pair, x))
    arrivals.sort()
    emitted, pos = [], 0
    for local in range(T0, T0 + 2400):
        events = []
        while pos < len(arrivals) and arrivals[pos][0] <= local:
            _, t, pair, x = arrivals[pos]
            events.append(xtrade(pair, 100.0 + rng.random(), 0.5, t, x=x))
            pos += 1
        if events:
            book.add(book.decoder.decode_frame(frame(*events)), local)
        emitted += [(json.loads(raw), local) for raw in book.close_due(local)]
    assert book.late_trades == 0
    assert sum(b["n"] for b, _ in emitted) == 8000
    for bar, local in emitted:
        if bar["e"] > T0 + 1000:  # once every venue's clock has settled
            slowest = max(delays[x] for x in pairs[bar["sym"]])
            assert bar["e"] + G + slowest <= local <= bar["e"] + G + slowest + 2, (bar["sym"], local - bar["e"])


def test_ticks_do_not_rescan_the_open_windows_while_nothing_can_be_due():
    book = book_for([(100, "*")], cluster="crypto")
    scans = []
    scan = book._scan
    book._scan = lambda local, clock: scans.append(local) or scan(local, clock)
    feed(book, xtrade("BTC-USD", 10.0, 1, T0 + 10, x=1), local=T0 + 10)
    feed(book, xtrade("BTC-USD", 11.0, 1, T0 + 11, x=2), local=T0 + 161)  # x=2: 150 ms behind
    out = []
    for local in range(T0 + 161, T0 + 400):  # a tick every ms
        out += book.close_due(local)
    (bar,) = bars(out)
    assert bar["n"] == 2
    # the window was examined when it ended on the fast clock and when x=2's clock was due to pass it, not 239 times
    assert len(scans) <= 4, [s - T0 for s in scans]
    assert scans[-1] == T0 + 100 + G + 150
