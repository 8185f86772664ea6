"""Bars that may be missing trades say so (``"partial": true``): series that start mid-window, upstream gaps."""

from __future__ import annotations

import json

from ms_aggregator.book import DEFAULT_GRACE_MS, BarBook
from tests.bar_helpers import T0, book_for, feed, trade

G = DEFAULT_GRACE_MS


def bars(raw):
    return [json.loads(b) for b in raw]


def summary(out):
    return [(b["sym"], b["interval"], b["s"] - T0, b.get("partial", False)) for b in bars(out)]


def test_a_series_subscribed_mid_window_marks_its_first_bar_partial():
    book = book_for([])
    feed(book, trade("A", 10.0, 100, T0 + 10), trade("A", 10.5, 100, T0 + 20))  # before anyone asked for A
    book.close_due(T0 + 50)
    book.set_subscriptions([(100, "A")])  # covered from the clock's T0 + 50 on
    feed(book, trade("A", 11.0, 100, T0 + 60), trade("A", 12.0, 100, T0 + 160))
    first, second = bars(book.close_due(T0 + 10_000))
    # The first bar is not the true one (o=10, v=300, n=3): it must not look complete.
    assert (first["o"], first["v"], first["n"], first["partial"]) == (11.0, 100, 1, True)
    assert second["s"] == T0 + 100 and "partial" not in second


def test_a_cold_start_marks_the_first_windows_partial_then_bars_are_complete():
    book = BarBook("stocks")
    book.set_subscriptions([(100, "*")])  # before any clock is known
    feed(book, trade("A", 1.0, 1, T0 + 40), trade("B", 1.0, 1, T0 + 90))  # first data: the clock is T0 + 90
    feed(book, trade("A", 1.0, 1, T0 + 120))
    assert summary(book.close_due(T0 + 10_000)) == [("A", 100, 0, True), ("B", 100, 0, True), ("A", 100, 100, False)]


def test_a_new_named_ticker_starts_partial_a_ticker_under_a_running_wildcard_does_not():
    book = book_for([(100, "A"), (250, "*")])
    feed(book, trade("A", 1.0, 1, T0 + 10))
    book.close_due(T0 + 50)
    book.set_subscriptions([(100, "A"), (100, "B"), (250, "*")])
    feed(book, trade("A", 1.0, 1, T0 + 60), trade("B", 2.0, 1, T0 + 70), trade("NEW", 3.0, 1, T0 + 80))
    assert summary(book.close_due(T0 + 10_000)) == [
        ("A", 100, 0, False), ("B", 100, 0, True), ("A", 250, 0, False), ("B", 250, 0, False), ("NEW", 250, 0, False)]


def test_resubscribing_starts_over_partial():
    book = book_for([(100, "A")])
    feed(book, trade("A", 1.0, 1, T0 + 10))
    book.close_due(T0 + 20)
    book.set_subscriptions([])
    book.set_subscriptions([(100, "A")])  # the open bar was dropped: what comes now is not the whole window
    feed(book, trade("A", 2.0, 1, T0 + 30))
    assert summary(book.close_due(T0 + 10_000)) == [("A", 100, 0, True)]


def test_an_upstream_gap_marks_every_window_it_overlapped():
    book = book_for([(100, "*"), (1000, "A")])
    feed(book, trade("A", 1.0, 1, T0 + 10), trade("B", 1.0, 1, T0 + 20))
    assert summary(book.close_due(T0 + 135)) == [("A", 100, 0, False), ("B", 100, 0, False)]
    feed(book, trade("A", 2.0, 1, T0 + 140))
    out = book.close_due(T0 + 150)
    book.link_down()  # open: A 100 ms [100, 200) and A 1000 ms [0, 1000)
    out += book.close_due(T0 + 420)
    book.link_up()  # the clock is at T0 + 420: windows that began before it may miss trades
    feed(book, trade("A", 3.0, 1, T0 + 430), trade("B", 3.0, 1, T0 + 510))
    out += book.close_due(T0 + 1900)
    feed(book, trade("A", 4.0, 1, T0 + 2010))
    out += book.close_due(T0 + 10_000)
    assert summary(out) == [
        ("A", 100, 100, True), ("A", 100, 400, True), ("B", 100, 500, False), ("A", 1000, 0, True),
        ("A", 100, 2000, False), ("A", 1000, 2000, False)]


def test_a_gap_before_any_clock_ends_at_the_first_known_clock():
    book = BarBook("stocks")
    book.set_subscriptions([(100, "*")])
    book.link_down()
    book.link_up()
    feed(book, trade("A", 1.0, 1, T0 + 150), local=T0 + 150)  # the clock becomes known: T0 + 150
    feed(book, trade("A", 2.0, 1, T0 + 250))
    assert summary(book.close_due(T0 + 10_000)) == [("A", 100, 100, True), ("A", 100, 200, False)]


def test_link_events_are_idempotent():
    book = book_for([(100, "A")])
    book.link_up()  # up while up: nothing
    assert book.coverage.gaps == []
    book.link_down()
    book.link_down()
    assert len(book.coverage.gaps) == 1
