"""Bounded memory: idle tickers give their ids and arrays back; slot and ticker arrays shrink when little is used."""

from __future__ import annotations

import json

from ms_aggregator.book import BarBook
from tests.bar_helpers import T0, feed, frame, trade

IDLE = 5_000


def contracts(n: int, start: int = 0) -> list[str]:
    return [f"O:SPY{start + i:07d}C00500000" for i in range(n)]


def options_book(**kw) -> BarBook:
    book = BarBook("options", idle_ms=IDLE, hold_ms=1000, **kw)  # idle counts from the end of a 1 s hold epoch
    book.set_subscriptions([(100, "*"), (1000, "*")])
    return book


def test_idle_tickers_give_their_memory_back_and_come_back_whole():
    book = options_book()
    names = contracts(20_000)
    for i in range(0, len(names), 1000):  # 20 000 contracts trade once each
        feed(book, *(trade(n, 1.0, 1, T0 + i // 100, [209], x=302) for n in names[i:i + 1000]), local=T0 + i // 100)
    book.close_due(T0 + 2000)
    busy = book.memory()
    assert busy["symbols"] == 20_000 and busy["live_series"] == 40_000 and busy["open_bars"] == 0
    book.close_due(T0 + 2000 + IDLE + 1000)  # every contract idle for longer than SERIES_IDLE_S
    idle = book.memory()
    assert idle["symbols"] == 0 and idle["live_series"] == 0 and book.evicted == 20_000
    assert idle["book_bytes"] < busy["book_bytes"] / 8
    assert book.tickers.tcap <= 128 and len(book.symbols) == 0
    # a contract that comes back starts afresh, and under a wildcard that has been running it is complete
    now = T0 + 2000 + IDLE + 2000
    feed(book, trade(names[7], 2.0, 3, now + 5, [209], x=302))
    (bar,) = [json.loads(b) for b in book.close_due(now + 100 + 31)]
    assert (bar["sym"], bar["o"], bar["v"], bar.get("partial")) == (names[7], 2.0, 3, None)


def test_tickers_with_open_windows_or_named_subscriptions_stay():
    book = BarBook("stocks", idle_ms=IDLE)
    book.set_subscriptions([(60000, "*"), (100, "NAMED")])
    feed(book, trade("OPEN", 1.0, 1, T0 + 1), trade("NAMED", 1.0, 1, T0 + 2), trade("GONE", 1.0, 1, T0 + 3))
    book.close_due(T0 + 200)
    book.close_due(T0 + 39_000)  # the 60 s windows [T0 - 20 s, T0 + 40 s) are still open: nobody goes
    assert book.evicted == 0
    book.close_due(T0 + 41_000)  # they closed
    book.close_due(T0 + 46_000)  # and the hold epoch of the last trades ended SERIES_IDLE_S ago
    assert sorted(n for n in book.symbols.names if n) == ["NAMED"]


def test_slots_shrink_after_a_burst():
    book = BarBook("stocks", idle_ms=10**9)
    book.set_subscriptions([(1, "*")])
    events = [trade(f"T{i}", 1.0, 1, T0 + i % 50) for i in range(30_000)]
    book.add(book.decoder.decode_frame(frame(*events)), T0 + 50)
    assert book.slots.cap >= 30_000
    book.close_due(T0 + 1000)
    book.close_due(T0 + 2001)
    assert book.open_bars == 0 and book.slots.cap <= 2048


def test_compaction_keeps_open_windows_and_ids_consistent():
    book = BarBook("stocks", idle_ms=IDLE)
    book.set_subscriptions([(60000, "*")])
    feed(book, *(trade(f"OLD{i}", 1.0, 1, T0 + 1) for i in range(10_000)))
    book.close_due(T0 + 61_000)
    feed(book, trade("KEEP", 5.0, 7, T0 + 61_500))  # opens [60000, 120000) while the OLD ones go idle
    book.close_due(T0 + 61_000 + IDLE + 1000)
    assert book.symbols.live == 1 and book.tickers.tcap <= 128
    feed(book, trade("KEEP", 6.0, 1, T0 + 70_000), trade("NEW", 1.0, 1, T0 + 70_001))
    out = [json.loads(b) for b in book.close_due(T0 + 200_000)]
    assert [(b["sym"], b["o"], b["c"], b["v"], b["n"]) for b in out] == [
        ("KEEP", 5.0, 6.0, 8, 2), ("NEW", 1.0, 1.0, 1, 1)]
