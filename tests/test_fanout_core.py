"""Pure tests of the fan-out core: a client's outbox and its bound, lazily decoded frames, metric cells."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.frames import MAX_FRAME_BYTES, Frame, FrameError, split_frame
from common.metrics import Metrics
from common.outbox import Outbox
from tests.helpers import quote, trade


def _obj(i: int, pad: int) -> bytes:
    return b'{"ev":"T","sym":"S","q":%d,"pad":"%s"}' % (i, b"x" * pad)


# -- outbox -----------------------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 300_000), st.integers(1, 5)), max_size=40))
def test_outbox_take_keeps_order_counts_events_and_frames_stay_under_the_limit(pieces):
    box, sent, seq = Outbox(limit=1 << 40), [], 0
    for pad, events in pieces:
        objs = [_obj(seq + k, pad // events) for k in range(events)]
        seq += events
        sent += objs
        if events == 1:
            box.add(objs[0])
        else:
            box.add_body(memoryview(b",".join(objs)), events)  # a whole frame's objects as one piece
    assert box.pending_events == len(sent)
    frames, events = box.take()
    assert events == len(sent) and box.items == [] and box.nbytes == 0 and box.pending_events == 0
    got = [json.dumps(o, separators=(",", ":")).encode() for f in frames for o in json.loads(f)]
    assert got == [json.dumps(json.loads(o), separators=(",", ":")).encode() for o in sent]
    for f in frames:
        assert len(f) <= MAX_FRAME_BYTES or len(json.loads(f)) <= 5  # only a single piece may be larger


@given(st.lists(st.integers(1, 5000), max_size=50), st.integers(0, 100_000), st.integers(0, 200_000))
def test_outbox_bound_counts_pending_plus_in_flight(sizes, in_flight, limit):
    box = Outbox(limit)
    for i, size in enumerate(sizes):
        box.add(_obj(i, size))
    assert box.nbytes == sum(len(_obj(i, s)) + 1 for i, s in enumerate(sizes))
    assert box.fits(in_flight) == (box.nbytes + in_flight <= limit)
    assert box.drop() == len(sizes) and box.nbytes == 0 and box.fits(0) == (limit >= 0)


# -- frames ------------------------------------------------------------------------------------------------------


def test_frame_decodes_routes_raws_and_body_lazily():
    data = f"[{trade('AAPL', '1.50', 1)},{quote('MSFT', 2)}]".encode()
    frame = Frame(data)
    assert frame.routes == [("T", "AAPL"), ("Q", "MSFT")]
    assert [bytes(r) for r in frame.raws] == [trade("AAPL", "1.50", 1).encode(), quote("MSFT", 2).encode()]
    assert bytes(frame.body) == data[1:-1]  # the frame's own bytes, for a receiver that wants all of it
    assert [tuple(e[:2]) for e in frame.events] == frame.routes == [tuple(e[:2]) for e in split_frame(data)]
    assert Frame(b"[ " + data[1:-1] + b" ]").body is None  # not compact: forwarded object by object
    assert Frame(b"[]").routes == []


@pytest.mark.parametrize("bad", [b'{"ev":"T"}', b"[1,2]", b"nope", b'[{"sym":"AAPL"}]'])
def test_frame_errors_are_frame_errors(bad):
    with pytest.raises(FrameError):
        Frame(bad).routes


def test_an_event_of_the_wrong_shape_costs_nothing_else_in_its_frame():
    # a forex quote whose pair is a number: routed by its text and forwarded as sent; its neighbours are untouched
    frame = Frame(b'[{"ev":"C","p":1.5,"a":1},{"ev":"C","p":"EUR/USD","a":1.1}]')
    assert frame.routes == [("C", "1.5"), ("C", "EUR/USD")]


# -- metrics -----------------------------------------------------------------------------------------------------


def test_metric_cells_are_plain_integers_behind_the_public_api():
    m = Metrics("p")
    cell = m.counter("events_in", cluster="stocks")
    cell.n += 3
    m.inc("events_in", 2, cluster="stocks")
    assert m.counter("events_in", cluster="stocks") is cell and cell.n == 5
    assert m.value("events_in", cluster="stocks") == 5
    m.counter_from("bars_out", lambda: {(("cluster", "stocks"),): 7})
    assert m.value("bars_out", cluster="stocks") == 7
    assert m.snapshot()["events_in"] == {"cluster=stocks": 5}
    text = m.prometheus()
    assert '# TYPE tickfan_events_in counter' in text and 'tickfan_events_in{process="p",cluster="stocks"} 5' in text
