"""The bar book against the independent oracle (tests/bar_oracle.py) on hypothesis tapes.

Tapes mix sources of different constant delays plus jitter (so trades arrive out of timestamp order within
grace, and some beyond it), conditions from the oracle's own hand-written tables and unknown ids, other events
and malformed trades, upstream gaps, subscription changes, and both late policies. Every emitted bar must equal
the oracle's, in the same order: none missing, none duplicated.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ms_aggregator.book import DEFAULT_GRACE_MS, BarBook
from tests.bar_helpers import FAR, KEYS, T0, frame, trade, xtrade
from tests.bar_oracle import OPTION_RULES, STOCK_RULES, ReferenceBook

G = DEFAULT_GRACE_MS
TICKERS = ["AAPL", "BB", "C", "DDDD"]
UNKNOWN = [99, 4242, 100000]  # in neither the bundled file nor the oracle's tables
INTERVALS = st.one_of(st.sampled_from([1, 2, 3, 7, 10, 100, 250, 1000, 60000]), st.integers(1, 60000))
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
    {"ev": "T", "sym": "AAPL", "p": 1.5, "s": 1, "t": T0, "x": "N"},
    {"ev": "T", "sym": "AAPL", "p": 1.5, "s": 1, "t": T0, "x": None},
    {"ev": "XT", "pair": "BB", "p": 1.5, "s": 1.0},
    {"ev": "XT", "pair": "BB", "p": 1.5, "s": 1.0, "t": 1.5},
]


@st.composite
def tapes(draw):
    cluster = draw(st.sampled_from(["stocks", "stocks", "options", "crypto"]))
    rules = {"stocks": STOCK_RULES, "options": OPTION_RULES}.get(cluster, {})
    conditions = st.one_of(st.none(), st.lists(st.sampled_from(sorted(rules) + UNKNOWN), max_size=3))
    intervals = draw(st.lists(INTERVALS, min_size=1, max_size=4, unique=True))
    subs = draw(st.lists(st.tuples(st.sampled_from(intervals), st.sampled_from([*TICKERS, "*", "*"])),
                         min_size=1, max_size=6))
    # Sources: each with a constant delay; the trade's x names it (None: no x field).
    delays = draw(st.lists(st.sampled_from([0, 0, 20, 60, 150, 7, 400]), min_size=1, max_size=4))
    xs = draw(st.permutations([None, 1, 2, 300, 2**70]))[: len(delays)]  # any int names a source
    sizes = st.integers(0, 10_000) if cluster != "crypto" else st.floats(0, 1e4, allow_nan=False, allow_infinity=False)
    jitter = st.one_of(st.integers(0, G), st.integers(0, G), st.integers(G, G + 300))  # some arrive beyond grace
    n = draw(st.integers(0, 80))
    item = st.tuples(st.integers(0, 25), st.integers(0, len(delays) - 1), jitter, st.sampled_from(TICKERS),
                     PRICES, sizes, conditions)
    start = T0 + draw(st.integers(0, 120_000))
    clock, trades = start, []
    for step, src, jit, sym, price, size, conds in draw(st.lists(item, min_size=n, max_size=n)):
        clock += step
        x = xs[src]
        maker = xtrade if cluster == "crypto" else trade
        ev = maker(sym, price, size, clock, conds, x=x if x is not None else 0)
        if x is None:
            del ev["x"]
        trades.append((clock + delays[src] + jit, ev))
    trades.sort(key=lambda a: a[0])  # arrival order
    # Frames in arrival order, each arriving with its last trade; between them maybe a tick, a gap, a change.
    ops, i, local = [], 0, start - 1000
    while i < len(trades):
        k = draw(st.integers(1, 8))
        chunk = trades[i:i + k]
        events = [ev for _, ev in chunk]
        if draw(st.integers(0, 3)) == 0:
            events.insert(draw(st.integers(0, len(events))), draw(st.sampled_from(OTHER_EVENTS)))
        local = max(local, chunk[-1][0])
        ops.append(("frame", frame(*events), local))
        i += k
        for _ in range(draw(st.integers(0, 2))):
            local += draw(st.integers(0, 120))
            ops.append(("tick", None, local))
        roll = draw(st.integers(0, 30))
        if roll == 0:
            ops.append(("down", None, local))
        elif roll == 1:
            ops.append(("up", None, local))
        elif roll == 2:
            ops.append(("subs", draw(st.lists(st.tuples(st.sampled_from(intervals), st.sampled_from([*TICKERS, "*"])),
                                              max_size=4)), local))
    options = {"late": draw(st.sampled_from(["drop", "amend"])),
               "amend_window_ms": draw(st.sampled_from([0, 300, 60_000])),
               "hold_ms": draw(st.sampled_from([60_000, 500, 97]))}
    return cluster, subs, ops, options


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tapes(), st.booleans())
def test_book_matches_the_oracle(tape, subscribe_before_first_tick):
    cluster, subs, ops, options = tape
    book = BarBook(cluster, grace_ms=G, **options)
    ref = ReferenceBook(cluster, grace_ms=G, **options)
    if not subscribe_before_first_tick and ops:
        book.close_due(ops[0][2] - 500)
        ref.close_due(ops[0][2] - 500)
    book.set_subscriptions(subs)
    ref.set_subscriptions(subs)
    firsts: set[tuple[str, int, int]] = set()
    revs: dict[tuple[str, int, int], int] = {}
    for op, arg, local in [*ops, ("tick", None, FAR)]:
        if op == "frame":
            assert book.add(book.decoder.decode_frame(arg), local) == ref.add_frame(arg, local)
        elif op == "down":
            book.link_down()
            ref.link_down()
        elif op == "up":
            book.link_up()
            ref.link_up()
        elif op == "subs":
            book.set_subscriptions(arg)
            ref.set_subscriptions(arg)
        else:
            got_raw = book.close_due(local)
            got, want = [json.loads(b) for b in got_raw], [json.loads(b) for b in ref.close_due(local)]
            assert got == want
            for raw, bar in zip(got_raw, got):
                assert b" " not in raw and list(bar)[: len(KEYS)] == KEYS
                assert bar["s"] % bar["interval"] == 0 and bar["e"] == bar["s"] + bar["interval"]
                assert bar["l"] <= bar["h"]
                key = (bar["sym"], bar["interval"], bar["s"])
                if "rev" in bar:  # corrections number 1, 2, … per window
                    assert bar["rev"] == revs.get(key, 0) + 1
                    revs[key] = bar["rev"]
                else:  # a window's first edition goes out once
                    assert key not in firsts
                    firsts.add(key)
    assert (book.trades_in, book.late_trades, book.late_amended, book.bars_out, book.volume_only_windows) == (
        ref.trades_in, ref.late_trades, ref.late_amended, ref.bars_out, ref.volume_only_windows)
    assert book.open_bars == ref.open_bars == 0
