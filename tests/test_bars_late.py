"""Late trades and the late policy: ``drop`` counts them, ``amend`` re-sends the corrected bar with ``"rev": n``."""

from __future__ import annotations

import json

import pytest

from common.settings import SettingsError, load_settings
from ms_aggregator.book import DEFAULT_GRACE_MS, BarBook
from ms_aggregator.settings import AggregatorSettings
from tests.bar_helpers import T0, book_for, feed, trade

G = DEFAULT_GRACE_MS


def bars(raw):
    return [json.loads(b) for b in raw]


def test_drop_counts_late_trades_and_sends_nothing_more():
    book = book_for([(100, "A")])
    feed(book, trade("A", 10.0, 100, T0 + 10))
    (bar,) = bars(book.close_due(T0 + 200))
    assert feed(book, trade("A", 11.0, 100, T0 + 50), local=T0 + 200) == 1
    assert book.close_due(T0 + 201) == []
    assert (book.late_trades, book.late_amended) == (1, 0)


def test_amend_resends_the_whole_corrected_bar_with_rising_rev():
    book = book_for([(100, "A")], late="amend")
    feed(book, trade("A", 10.0, 100, T0 + 10), trade("A", 12.0, 100, T0 + 20))
    (first,) = bars(book.close_due(T0 + 200))
    assert "rev" not in first
    assert feed(book, trade("A", 9.0, 100, T0 + 50), local=T0 + 200) == 1
    (rev1,) = bars(book.close_due(T0 + 201))
    assert rev1 == {**first, "l": 9.0, "c": 9.0, "v": 300, "vw": (1000 + 1200 + 900) / 300, "n": 3, "rev": 1}
    feed(book, trade("A", 13.0, 50, T0 + 60), trade("A", 8.0, 37, T0 + 61, [37]), local=T0 + 250)  # 2 late trades
    (rev2,) = bars(book.close_due(T0 + 251))  # one correction for both
    assert (rev2["h"], rev2["c"], rev2["v"], rev2["n"], rev2["rev"]) == (13.0, 13.0, 387, 5, 2)
    assert (book.late_trades, book.late_amended, book.amends.bars_out) == (3, 3, 2)


def test_amend_window_limits_corrections_older_ones_are_dropped():
    book = book_for([(100, "A")], late="amend", amend_window_ms=1000)
    feed(book, trade("A", 10.0, 100, T0 + 10))
    book.close_due(T0 + 200)
    book.close_due(T0 + 1101)  # the window ended 1001 ms ago by the clock
    assert feed(book, trade("A", 9.0, 100, T0 + 50), local=T0 + 1101) == 1
    assert book.close_due(T0 + 1102) == []
    assert (book.late_trades, book.late_amended) == (1, 0)
    assert len(book.amends) == 0  # the kept window was given up with it


def test_amend_a_volume_only_window_and_an_empty_one_get_their_first_bar_as_rev_1():
    book = book_for([(100, "A")], late="amend")
    feed(book, trade("A", 10.0, 37, T0 + 10, [37]))  # odd lot only: no bar
    feed(book, trade("A", 11.0, 100, T0 + 110))
    out = bars(book.close_due(T0 + 400))
    assert [b["s"] for b in out] == [T0 + 100]
    assert feed(book, trade("A", 12.0, 100, T0 + 20), trade("A", 13.0, 100, T0 + 220), local=T0 + 400) == 2
    fixed = bars(book.close_due(T0 + 401))
    assert [(b["s"], b["o"], b["v"], b["n"], b["rev"]) for b in fixed] == [
        (T0, 12.0, 137, 2, 1),  # the odd lot's volume was kept
        (T0 + 200, 13.0, 100, 1, 1),  # a window that had no trade at all
    ]


def test_amended_bars_keep_their_partial_flag():
    book = book_for([], late="amend")
    book.close_due(T0 + 50)
    book.set_subscriptions([(100, "A")])
    feed(book, trade("A", 10.0, 100, T0 + 60))
    (first,) = bars(book.close_due(T0 + 200))
    feed(book, trade("A", 9.0, 100, T0 + 70), local=T0 + 200)
    (fixed,) = bars(book.close_due(T0 + 201))
    assert first["partial"] is fixed["partial"] is True and fixed["rev"] == 1


def test_amend_keeps_at_most_max_bars_and_drops_late_trades_for_windows_given_up():
    book = book_for([(100, "A"), (100, "B")], late="amend", amend_max_bars=2)
    feed(book, trade("A", 10.0, 100, T0 + 10), trade("B", 20.0, 100, T0 + 20))
    book.close_due(T0 + 200)
    feed(book, trade("A", 11.0, 100, T0 + 110))
    book.close_due(T0 + 300)  # three closed windows, room for two: A's first is given up
    assert (len(book.amends), book.amends.given_up) == (2, 1)
    # A late trade for the window given up is dropped, not sent as a bar of its own; B's is still corrected.
    assert feed(book, trade("A", 9.0, 100, T0 + 50), trade("B", 19.0, 100, T0 + 60), local=T0 + 300) == 2
    (fixed,) = bars(book.close_due(T0 + 301))
    assert (fixed["sym"], fixed["v"], fixed["rev"]) == ("B", 200, 1)
    assert (book.late_trades, book.late_amended, len(book.amends)) == (2, 1, 2)
    # So is one for an empty window as old as one given up: it might have held trades nobody keeps now.
    assert feed(book, trade("B", 18.0, 100, T0 - 50), local=T0 + 300) == 1
    assert book.close_due(T0 + 302) == [] and book.late_amended == 1


def test_unsubscribing_forgets_kept_windows():
    book = book_for([(100, "A")], late="amend")
    feed(book, trade("A", 10.0, 100, T0 + 10))
    book.close_due(T0 + 200)
    assert len(book.amends) == 1
    book.set_subscriptions([(100, "B")])
    assert len(book.amends) == 0


def test_a_bad_policy_is_refused():
    with pytest.raises(ValueError):
        BarBook("stocks", late="keep")
    with pytest.raises(SettingsError, match=r"LATE_TRADES \(--late-trades\)"):
        load_settings(AggregatorSettings, ["--late-trades", "keep"], environ={})
    with pytest.raises(SettingsError, match="SERIES_IDLE_S"):
        load_settings(AggregatorSettings, [], environ={"SERIES_IDLE_S": "0"})
    with pytest.raises(SettingsError, match=r"AMEND_MAX_BARS \(--amend-max-bars\)"):
        load_settings(AggregatorSettings, ["--amend-max-bars", "0"], environ={})
    with pytest.raises(ValueError):
        BarBook("stocks", late="amend", amend_max_bars=0)
    assert load_settings(AggregatorSettings, [], environ={"LATE_TRADES": "amend"}).late_trades == "amend"
