"""FeedState: one down and one restored announcement per outage, no flicker (pure, time passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common import protocol
from common.feed import Announcement, FeedState


def test_lost_link_is_announced_once_and_restored_on_first_data():
    f = FeedState(settle_ms=1000)
    f.link_established(0)
    assert f.data(5) is None  # nothing was announced: nothing to restore
    assert f.link_lost(100, "connection reset") == Announcement(False, "connection reset")
    assert f.attempt_failed(200, "refused") is None  # the same outage
    f.link_established(3100)
    assert f.data(3150) == Announcement(True, down_ms=3050)
    assert f.data(3160) is None


def test_quiet_feed_is_restored_after_settling_unless_the_tier_above_says_otherwise():
    f = FeedState(settle_ms=1000)
    assert f.attempt_failed(0, "no network") == Announcement(False, "no network")  # never connected: say so
    f.link_established(500)
    assert f.next_tick_ms() == 1500
    assert f.tick(1499) is None
    assert f.tick(1500) == Announcement(True, down_ms=1500)
    f.link_lost(2000, "reset")
    f.link_established(2100)
    assert f.relayed(2150, True, "polygon unreachable") is None  # still the same outage, no flicker
    assert f.tick(9000) is None and f.next_tick_ms() is None  # not while the tier above is down
    assert f.relayed(9100, False) == Announcement(True, down_ms=7100)


def test_relayed_outage_while_linked():
    f = FeedState()
    f.link_established(0)
    assert f.relayed(10, True, "polygon: max_connections") == Announcement(False, "polygon: max_connections")
    assert not f.up
    assert f.data(20) == Announcement(True, down_ms=10)  # data flowing again ends it too


@given(st.lists(st.tuples(st.sampled_from(["up", "lost", "fail", "rdown", "rup", "data", "tick"]),
                          st.integers(0, 2000)), max_size=60))
def test_announcements_alternate_and_restores_only_when_data_can_flow(events):
    f, now, said = FeedState(settle_ms=500), 0, []
    for kind, step in events:
        now += step
        out = {"up": lambda: f.link_established(now), "lost": lambda: f.link_lost(now, "x"),
               "fail": lambda: f.attempt_failed(now, "y"), "rdown": lambda: f.relayed(now, True, "z"),
               "rup": lambda: f.relayed(now, False), "data": lambda: f.data(now), "tick": lambda: f.tick(now)}[kind]()
        if out is not None:
            said.append(out.up)
            if out.up:
                assert f.up and out.down_ms >= 0
    assert all(a != b for a, b in zip(said, said[1:])), said  # down, restored, down, … never twice the same
    assert not said or said[0] is False


def test_status_texts():
    down = protocol.upstream_down("stocks", "polygon connection lost")
    assert down == (b'{"ev":"status","status":"upstream_down","message":"stocks feed interrupted: '
                    b'polygon connection lost; it will resume by itself"}')
    assert protocol.upstream_restored("crypto", 12.34) == (
        b'{"ev":"status","status":"upstream_restored","message":"crypto feed restored after 12.3 s"}')
    assert protocol.upstream_down_reason("stocks feed interrupted: a: b; it will resume by itself") == "a: b"
    assert protocol.upstream_down_reason("something else") == "something else"
