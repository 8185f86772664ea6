"""The one resilient upstream client every tier uses: a Polygon-protocol client for one cluster (DESIGN §1, §3).

It authenticates, keeps the upstream subscribed to exactly the current demand (reference-counted, with a grace
period before unsubscribing), reconnects with exponential backoff and jitter after any drop, silence (no pong within
the ping timeout) or ``max_connections``, re-sends every topic after a reconnect, and hands each data frame to
``on_frame`` as bytes. ``auth_failed`` stops it for good with a clear error: retrying a bad key only gets an account
locked. The key is sent in the auth message and never logged.

Supervision: nothing that arrives can end the connection task. A frame that is not a frame of events, or that the
handler cannot take, is counted and skipped (logged at most once a second, with a sample); an unexpected error ends
only that connection, which is re-established with backoff. :class:`~common.feed.FeedState` turns link events and the
tier above's ``upstream_down``/``upstream_restored`` into announcements for ``on_link``; other statuses (per-topic
errors) go to ``on_status``. :class:`~common.upstream_set.UpstreamSet` holds one client per cluster.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Iterable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidURI,
)

from common import protocol
from common.backoff import Backoff
from common.clock import monotonic_ms
from common.demand import TopicDemand
from common.feed import Announcement, FeedState
from common.frames import STATUS, Frame, FrameError, decode_status, split_frame
from common.logs import LogThrottle
from common.metrics import Metrics

SUBSCRIBE_CHUNK = 500  # topics per subscribe message, to keep control messages small
STABLE_AFTER_S = 10.0  # a connection that lived this long resets the backoff
# Tiers start together (honcho, systemd): while an upstream has never answered yet, or after it closed with
# 1012/1001 (a planned restart), a refused connection is a tier still (re)starting, retried quickly and quietly for
# this long before it counts as an outage (or, after a restart, before it is worth a warning).
STARTUP_GRACE_S = 5.0
STARTUP_RETRY_S = 0.1
SAMPLE_BYTES = 200  # how much of a bad frame a log line shows

# Called with each upstream data frame (status objects already handled and removed). May raise anything: counted.
FrameHandler = Callable[[Frame], None]
# Called with (False, reason) when the feed is interrupted and (True, "") when it is restored (see common.feed).
LinkHandler = Callable[[bool, str], None]
# Called with (status, message, raw object) for statuses that are not the handshake's, acks or outage reports.
StatusHandler = Callable[[str, str, bytes], None]

# Status objects always carry this; data frames without it need no split here (compact or not, the value is quoted).
_STATUS_MARK = b'"status"'
_QUIET_STATUSES = frozenset({"success", "connected", "auth_success"})
_RESTART_CODES = frozenset({1001, 1012})  # the tier above is restarting or going away on purpose


class UpstreamAuthFailed(RuntimeError):
    pass


class UpstreamClient:
    def __init__(
        self,
        name: str,
        url: str,
        key: str,
        on_frame: FrameHandler,
        log,
        metrics: Metrics,
        grace_ms: int,
        static: Iterable[str] = (),
        backoff: Backoff | None = None,
        open_timeout_s: float = 10.0,
        on_link: LinkHandler | None = None,
        on_status: StatusHandler | None = None,
        ping_interval_s: float = 10.0,
        ping_timeout_s: float = 10.0,
        settle_ms: int | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._key = key
        self.on_frame = on_frame
        self.on_link = on_link
        self.on_status = on_status
        self.log = log.bind(upstream=name, url=url)
        self.metrics = metrics
        self.demand = TopicDemand(grace_ms, static)
        self.backoff = backoff or Backoff()
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.feed = FeedState() if settle_ms is None else FeedState(settle_ms)
        self.state = "idle"
        self.last_error = ""
        self.last_outage_ms = 0
        self.connects = 0
        self.frames = 0
        self.bad_frames = 0
        self.bad_events = 0
        self.errors = 0
        self.last_frame_at: float | None = None  # monotonic seconds
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._settle: asyncio.TimerHandle | None = None
        self._stopping = False
        self._quiet_until = 0.0  # monotonic s: refused connections until then are a tier (re)starting
        self._throttle = LogThrottle()
        for counter, help in (
            ("upstream_reconnects", "Upstream connections re-established after a drop."),
            ("upstream_frames", "Frames received from upstreams."),
            ("upstream_bad_frames", "Upstream frames that were not JSON arrays of events (counted, skipped)."),
            ("upstream_bad_events", "Upstream frames whose events could not be handled (counted, skipped)."),
            ("upstream_errors", "Upstream connections ended by an unexpected error (re-established with backoff)."),
        ):
            metrics.describe(counter, help)
        self._frames = metrics.counter("upstream_frames", upstream=name)

    # -- demand ------------------------------------------------------------------------------------------------

    def want(self, topics: Iterable[str]) -> None:
        """One more downstream wants each topic; new ones are subscribed upstream at once."""
        new = self.demand.add(topics)
        if new:
            self._send("subscribe", new)

    def unwant(self, topics: Iterable[str]) -> None:
        """One downstream fewer wants each topic; a topic nobody wants is unsubscribed after the grace period."""
        self.demand.remove(topics, monotonic_ms())
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        due = self.demand.next_due_ms()
        if due is None or self._expiry is not None:
            return
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, (due - monotonic_ms()) / 1000), self._expire)

    def _expire(self) -> None:
        self._expiry = None
        gone = self.demand.due(monotonic_ms())
        if gone:
            self._send("unsubscribe", gone)
        self._schedule_expiry()

    def _send(self, action: str, topics: list[str]) -> None:
        ws = self._ws
        if ws is None or self.state != "connected":
            return  # sent on (re)connect from the demand
        for i in range(0, len(topics), SUBSCRIBE_CHUNK):
            message = protocol.encode_client_message(action, ",".join(topics[i : i + SUBSCRIBE_CHUNK]))
            # websockets serialises sends in call order; tasks run in creation order.
            asyncio.get_running_loop().create_task(self._send_quietly(ws, message))
        self.log.debug("upstream_" + action, topics=len(topics))

    @staticmethod
    async def _send_quietly(ws: ClientConnection, message: bytes) -> None:
        try:
            await ws.send(message, text=True)
        except ConnectionClosed:
            pass  # the reconnect re-sends the whole demand

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Run the connection task (again, if the last one ended)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"upstream-{self.name}")
        return self._task

    def stopping(self) -> None:
        """From now on this is a deliberate stop: no reconnects, no warnings, no announcements."""
        self._stopping = True
        for handle in (self._expiry, self._settle):
            if handle is not None:
                handle.cancel()

    async def stop(self) -> None:
        self.stopping()
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, UpstreamAuthFailed):
                pass
        self.state = "stopped"

    async def run(self) -> None:
        """Connect and stay connected until stopped; raises :class:`UpstreamAuthFailed` on a rejected key."""
        self._quiet_until = time.monotonic() + STARTUP_GRACE_S
        while not self._stopping:
            started = time.monotonic()
            was_up = self.feed.link_up
            planned = False  # the tier above is restarting on purpose (1012/1001): not worth a warning
            try:
                await self._session()
                self.last_error = "connection closed by the upstream"
            except UpstreamAuthFailed as exc:
                self.state = "auth_failed"
                self.last_error = str(exc)
                self.log.error("upstream_auth_failed", error=str(exc), hint="check the key; not retrying")
                self._lost(f"{self.name} rejected our key (auth_failed); an operator must fix the key")
                raise
            except InvalidURI as exc:
                self.state = "failed"
                self.last_error = str(exc)
                self.log.error("upstream_bad_url", error=str(exc))
                self._lost(f"{self.name} has a bad URL; an operator must fix it")
                raise
            except asyncio.CancelledError:
                raise
            except ConnectionClosed as exc:
                self.last_error = _closed_reason(exc)
                if self._stopping:
                    break
                if exc.rcvd is not None and exc.rcvd.code in _RESTART_CODES:
                    planned = True
                    self._quiet_until = time.monotonic() + STARTUP_GRACE_S
                    self.log.info("upstream_restarting", reason=self.last_error)
                else:
                    self.log.warning("upstream_disconnected", error=self.last_error)
            except (OSError, InvalidHandshake, TimeoutError, FrameError, _Retry) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self._starting(exc):
                    self.state = "starting"
                    self.log.info("upstream_not_ready", error=self.last_error)
                    await asyncio.sleep(STARTUP_RETRY_S)
                    continue
                if not self._stopping:
                    self.log.warning("upstream_disconnected", error=self.last_error)
            except Exception as exc:  # noqa: BLE001 - supervision: a bug ends this connection, never the task
                self.errors += 1
                self.metrics.inc("upstream_errors", upstream=self.name)
                self.last_error = f"unexpected {type(exc).__name__}: {exc}"
                self.log.exception("upstream_error", error=self.last_error)
            finally:
                self._ws = None
            if self._stopping:
                break
            self._lost(f"{self.name}: {self.last_error}" if was_up or self.feed.link_up else
                       f"cannot reach {self.name}: {self.last_error}", planned)
            self.state = "backoff"
            if time.monotonic() - started >= STABLE_AFTER_S:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self.log.info("upstream_reconnecting", in_s=round(delay, 3))
            await asyncio.sleep(delay)

    def _starting(self, exc: Exception) -> bool:
        """A refused connection to an upstream that has not answered since it (re)started, within the grace."""
        return isinstance(exc, ConnectionRefusedError) and time.monotonic() < self._quiet_until

    async def _session(self) -> None:
        self.state = "connecting"
        async with connect(
            self.url, open_timeout=self.open_timeout_s, max_size=None, compression=None, close_timeout=1,
            ping_interval=self.ping_interval_s, ping_timeout=self.ping_timeout_s,
        ) as ws:
            async with asyncio.timeout(self.open_timeout_s):
                await self._expect(ws, "connected")
                await ws.send(protocol.encode_client_message("auth", self._key), text=True)
                status, message = await self._first_status(ws)
            if status == "auth_failed":
                raise UpstreamAuthFailed(f"{self.url} rejected the key: {message}")
            if status != "auth_success":
                raise _Retry(f"upstream answered auth with {status}: {message}")
            self.connects += 1
            self._quiet_until = 0.0  # it answered: from now on a refusal is news
            if self.connects > 1:
                self.metrics.inc("upstream_reconnects", upstream=self.name)
            self._ws = ws
            self.state = "connected"
            self.log.info("upstream_connected", topics=len(self.demand.wanted))
            self._send("subscribe", sorted(self.demand.wanted))
            self.feed.link_established(monotonic_ms())
            self._schedule_settle()
            while True:
                self._on_message(await ws.recv(decode=False))

    # -- what arrives ------------------------------------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        self.frames += 1
        self.last_frame_at = time.monotonic()
        self._frames.n += 1
        try:
            if _STATUS_MARK in data:
                events = split_frame(data)
                for event in events:
                    if event.code == STATUS:
                        self._on_status(*decode_status(event.raw), bytes(event.raw))
                data_events = [e for e in events if e.code != STATUS]
                if not data_events:
                    return
                frame = Frame(data, data_events) if len(data_events) == len(events) else _rebuilt(data_events)
            else:
                frame = Frame(data)
            self._announce(self.feed.data(monotonic_ms()))
            self.on_frame(frame)
        except FrameError as exc:
            self.bad_frames += 1
            self.metrics.inc("upstream_bad_frames", upstream=self.name)
            self._log_bad("upstream_bad_frame", exc, data)
        except Exception as exc:  # noqa: BLE001 - supervision: bad data never ends the connection task
            self.bad_events += 1
            self.metrics.inc("upstream_bad_events", upstream=self.name)
            self._log_bad("upstream_bad_event", exc, data)

    def _log_bad(self, event: str, exc: Exception, data: bytes) -> None:
        held = self._throttle.allow(event, time.monotonic())
        if held is not None:
            self.log.warning(event, error=f"{type(exc).__name__}: {exc}"[:300], size=len(data),
                             sample=data[:SAMPLE_BYTES].decode("utf-8", "replace"), similar_since_last=held)

    def _on_status(self, status: str, message: str, raw: bytes) -> None:
        now = monotonic_ms()
        outage = status in (protocol.UPSTREAM_DOWN, protocol.UPSTREAM_RESTORED)
        if outage and protocol.outage_scope(message) is None:  # the whole feed above us: our feed state
            down = status == protocol.UPSTREAM_DOWN
            reason = protocol.upstream_down_reason(message) if down else ""
            self._announce(self.feed.relayed(now, down, reason), _planned(reason))
            return
        if status in _QUIET_STATUSES:
            self.log.debug("upstream_status", status=status, message=message)
            return
        (self.log.info if outage else self.log.warning)("upstream_status", status=status, message=message)
        if self.on_status is not None:
            self.on_status(status, message, raw)  # per-topic errors and outages of one code (PY) are passed on

    # -- announcements -----------------------------------------------------------------------------------------

    def _lost(self, reason: str, planned: bool = False) -> None:
        if self._stopping:
            return
        now = monotonic_ms()
        news = self.feed.link_lost(now, reason) if self.feed.link_up else self.feed.attempt_failed(now, reason)
        self._announce(news, planned)

    def _schedule_settle(self) -> None:
        due = self.feed.next_tick_ms()
        if due is None:
            return
        if self._settle is not None:
            self._settle.cancel()
        self._settle = asyncio.get_running_loop().call_later(max(0.0, (due - monotonic_ms()) / 1000), self._settled)

    def _settled(self) -> None:
        self._settle = None
        self._announce(self.feed.tick(monotonic_ms()))
        self._schedule_settle()

    def _announce(self, news: Announcement | None, planned: bool = False) -> None:
        if news is None or self._stopping:
            return
        if news.up:
            self.last_outage_ms = news.down_ms
            self.log.info("upstream_feed_restored", down_s=round(news.down_ms / 1000, 3))
        else:
            (self.log.info if planned else self.log.warning)("upstream_feed_down", reason=news.reason)
        if self.on_link is not None:
            try:
                self.on_link(news.up, news.reason)
            except Exception:  # noqa: BLE001 - a listener's bug must not end the connection task
                self.log.exception("upstream_link_listener_failed")

    # -- handshake ---------------------------------------------------------------------------------------------

    @staticmethod
    async def _first_status(ws: ClientConnection) -> tuple[str, str]:
        frame = await ws.recv(decode=False)
        for event in split_frame(frame):
            if event.code == STATUS:
                return decode_status(event.raw)
        raise _Retry("upstream sent data before answering auth")

    async def _expect(self, ws: ClientConnection, wanted: str) -> None:
        status, message = await self._first_status(ws)
        if status != wanted:
            raise _Retry(f"upstream greeted with {status}: {message}")

    def status(self) -> dict:
        since = None if self.last_frame_at is None else round(time.monotonic() - self.last_frame_at, 3)
        return {
            "url": self.url,
            "state": self.state,
            "feed": "up" if self.feed.up and self.feed.announced_down is None else "down",
            "down_reason": self.feed.announced_down,
            "connects": self.connects,
            "reconnects": max(0, self.connects - 1),
            "topics": len(self.demand.wanted),
            "last_error": self.last_error,
            "seconds_since_last_frame": since,
            "frames": self.frames,
            "bad_frames": self.bad_frames,
            "bad_events": self.bad_events,
            "errors": self.errors,
        }


def _planned(reason: str) -> bool:
    """A relayed outage whose cause is a tier above restarting on purpose (the reason :func:`_closed_reason` wrote)."""
    return any(f"closed with {code}" in reason for code in _RESTART_CODES)


def _closed_reason(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "connection lost without a close frame"
    return f"closed with {frame.code}" + (f" ({frame.reason})" if frame.reason else "")


def _rebuilt(events: list) -> Frame:
    """A frame of just these events (a status was taken out of a mixed frame)."""
    return Frame(b"[" + b",".join(e.raw for e in events) + b"]", events)


class _Retry(Exception):
    """An upstream answer that is worth a reconnect with backoff (max_connections, a garbled greeting)."""
