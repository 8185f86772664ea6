"""The upstream client in process against a scripted Polygon-protocol server: every way an upstream can fail."""

from __future__ import annotations

import structlog

from common.backoff import Backoff
from common.metrics import Metrics
from common.upstream import UpstreamClient
from tests.helpers import async_wait_for
from tests.scripted_upstream import ScriptedUpstream

LOG = structlog.get_logger()
TRADE = b'{"ev":"T","sym":"AAPL","p":1.5,"s":100,"t":1536036818784}'


class Harness:
    """One UpstreamClient on /stocks (or /forex) of a ScriptedUpstream, recording what it hands on."""

    def __init__(self, up: ScriptedUpstream, path: str = "/stocks", key: str = "key", handler=None, **kw) -> None:
        self.frames: list[bytes] = []
        self.links: list[tuple[bool, str]] = []
        self.statuses: list[tuple[str, str]] = []

        def on_frame(frame):
            frame.events  # noqa: B018 - what every tier does with a frame: split it (raises FrameError on garbage)
            if handler is not None:
                handler(frame)
            self.frames.append(frame.data)

        self.client = UpstreamClient(
            "scripted/stocks", f"{up.url}{path}", key, on_frame, LOG, Metrics("t"), 1000,
            backoff=Backoff(base_s=0.02, cap_s=0.1), on_link=lambda ok, why: self.links.append((ok, why)),
            on_status=lambda st, msg, raw: self.statuses.append((st, msg)), settle_ms=200, **kw)

    async def __aenter__(self):
        self.client.start()
        return self

    async def __aexit__(self, *exc):
        await self.client.stop()


async def subscribed(h: Harness, up: ScriptedUpstream, topic: str = "T.AAPL", path: str = "/stocks"):
    h.client.want([topic])
    await async_wait_for(lambda: topic in up.subscriptions.get(path, set()), what=f"{topic} subscribed upstream")


async def test_abrupt_drop_is_announced_once_and_restored_after_reconnect():
    up = await ScriptedUpstream().start()
    async with Harness(up) as h:
        await subscribed(h, up)
        assert h.links == []  # a healthy first connection announces nothing
        await up.drop_all()
        await async_wait_for(lambda: h.links, what="down announced")
        assert h.links[0][0] is False and "scripted/stocks" in h.links[0][1]
        await async_wait_for(lambda: len(h.links) == 2, what="restored announced")
        assert h.links[1] == (True, "")
        await subscribed(h, up)  # the demand was re-sent
        await up.send("/stocks", b"[" + TRADE + b"]")
        await async_wait_for(lambda: h.frames, what="data after the reconnect")
    assert len(h.links) == 2, "a deliberate stop is not announced"
    await up.close()


async def test_silent_upstream_is_treated_as_down_and_reconnected():
    up = await ScriptedUpstream().start()
    async with Harness(up, ping_interval_s=0.1, ping_timeout_s=0.2) as h:
        await subscribed(h, up)
        up.go_silent()  # no data, no pong: the link is dead even though the socket is open
        await async_wait_for(lambda: h.links and h.links[0][0] is False, what="silence detected")
        await async_wait_for(lambda: up.connects >= 2 and h.client.state == "connected", what="a fresh connection")
    await up.close()


async def test_max_connections_backs_off_and_gets_in_later():
    up = await ScriptedUpstream(max_connections=True).start()
    async with Harness(up) as h:
        await async_wait_for(lambda: up.auth_attempts >= 2, what="retries")
        assert h.links and h.links[0][0] is False and "max_connections" in h.links[0][1]
        up.max_connections = False
        await async_wait_for(lambda: h.client.state == "connected", what="admitted")
        await async_wait_for(lambda: len(h.links) == 2 and h.links[1][0], what="restored")
    await up.close()


async def test_auth_failed_stops_for_good_and_says_why():
    up = await ScriptedUpstream(keys={"right"}).start()
    h = Harness(up, key="wrong-secret")
    task = h.client.start()
    await async_wait_for(lambda: task.done(), what="the client gives up")
    assert h.client.state == "auth_failed" and up.auth_attempts == 1
    assert h.links == [(False, "scripted/stocks rejected our key (auth_failed); an operator must fix the key")]
    assert "wrong-secret" not in str(h.client.status())
    await h.client.stop()
    await up.close()


async def test_per_topic_error_is_handed_on_and_others_flow():
    up = await ScriptedUpstream().start()
    up.refused["T.NOPE"] = "not authorized: T.NOPE"
    async with Harness(up) as h:
        await subscribed(h, up)
        h.client.want(["T.NOPE"])
        await async_wait_for(lambda: h.statuses, what="the error handed on")
        assert h.statuses == [("error", "not authorized: T.NOPE")]
        await up.send("/stocks", b"[" + TRADE + b"]")
        await async_wait_for(lambda: h.frames, what="data still flows")
    await up.close()


async def test_garbage_and_events_of_the_wrong_shape_are_counted_and_skipped():
    up = await ScriptedUpstream().start()

    def fussy(frame):
        if b'"boom"' in frame.data:
            raise KeyError("a handler bug on this event")

    async with Harness(up, handler=fussy) as h:
        await subscribed(h, up)
        await up.send("/stocks", "not json at all")
        await up.send("/stocks", '[{"ev":"status","status":1}, 5]')  # a status-marked frame that is not events
        await up.send("/stocks", '[{"ev":"T","sym":"boom","p":1,"s":1,"t":1}]')
        await up.send("/stocks", b"[" + TRADE + b"]")
        await async_wait_for(lambda: h.frames == [b"[" + TRADE + b"]"], what="the good frame after the bad ones")
        s = h.client.status()
        assert (s["bad_frames"], s["bad_events"], s["reconnects"], s["state"]) == (2, 1, 0, "connected")
    await up.close()


async def test_relayed_outage_of_the_tier_above_is_announced():
    up = await ScriptedUpstream().start()
    async with Harness(up) as h:
        await subscribed(h, up)
        await up.send("/stocks", '[{"ev":"status","status":"upstream_down","message":'
                                 '"stocks feed interrupted: polygon/stocks: closed with 1011; it will resume by itself"}]')
        await async_wait_for(lambda: h.links, what="relayed down")
        assert h.links == [(False, "polygon/stocks: closed with 1011")]
        await up.send("/stocks", '[{"ev":"status","status":"upstream_restored","message":"stocks feed restored after 2.0 s"}]')
        await async_wait_for(lambda: len(h.links) == 2, what="relayed restore")
        assert h.links[1] == (True, "") and h.statuses == []  # outage reports are not handed on as statuses
    await up.close()


async def test_relayed_planned_restart_is_logged_at_info_like_our_own():
    """Tiers stopping together: the tier above relays the firehose's 1012 before we stop; no warning for that."""
    up = await ScriptedUpstream().start()
    async with Harness(up) as h:
        await subscribed(h, up)
        with structlog.testing.capture_logs() as logs:
            for code in (1012, 1011):
                await up.send("/stocks", '[{"ev":"status","status":"upstream_down","message":"stocks feed interrupted: '
                                         f'firehose/stocks: closed with {code} (x); it will resume by itself"}}]')
                await async_wait_for(lambda: h.links and not h.links[-1][0], what="relayed down")
                await up.send("/stocks", '[{"ev":"status","status":"upstream_restored","message":"stocks feed '
                                         'restored after 0.1 s"}]')
                await async_wait_for(lambda: h.links[-1][0], what="relayed restore")
        downs = [(e["reason"], e["log_level"]) for e in logs if e["event"] == "upstream_feed_down"]
        assert downs == [("firehose/stocks: closed with 1012 (x)", "info"), ("firehose/stocks: closed with 1011 (x)",
                                                                           "warning")]
    await up.close()


async def test_after_a_planned_restart_above_refused_connections_are_retried_quietly():
    up = await ScriptedUpstream().start()
    async with Harness(up) as h:
        await subscribed(h, up)
        with structlog.testing.capture_logs() as logs:
            port = up.port
            await up.close()  # 1001 to every client, then nothing listens on the port
            await async_wait_for(lambda: any(e["event"] == "upstream_not_ready" for e in logs), what="a refusal")
            up = await ScriptedUpstream().start(port)
            await subscribed(h, up)
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == []
        assert [e["log_level"] for e in logs if e["event"] == "upstream_feed_down"] == ["info"]  # clients are told
        assert h.links[0][0] is False and "1001" in h.links[0][1]
    await up.close()

