"""Whether a cluster's feed reaches this tier, as clients should hear it: a pure state machine (time is an argument).

A tier's feed for a cluster is *up* when its own upstream link is authenticated and the tier above does not report
that its own upstream for the cluster is down. :class:`FeedState` turns link and status events into at most one
``down`` and one ``restored`` announcement per outage, so clients are told once, and told again when it is over:

- ``down`` is announced at once: a lost link, a relayed ``upstream_down``, or a first connection that fails.
- ``restored`` is announced once data flows again: the first data frame after the link is back, a relayed
  ``upstream_restored``, or ``settle_ms`` of link-up with no new bad news (a quiet feed still gets its
  ``restored``; a tier above that is still down gets to say so first, so clients see no flicker).

It never reads a clock and never talks to a socket; the upstream client feeds it and acts on what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SETTLE_MS = 1000


@dataclass(frozen=True)
class Announcement:
    """What to tell clients: ``up`` False = the feed is interrupted (``reason`` says why); True = restored."""

    up: bool
    reason: str = ""
    down_ms: int = 0  # for a restore: how long the outage lasted


class FeedState:
    def __init__(self, settle_ms: int = DEFAULT_SETTLE_MS) -> None:
        self.settle_ms = settle_ms
        self.link_up = False
        self.relayed_down: str | None = None  # the tier above's reason while it reports its own upstream down
        self.announced_down: str | None = None  # the reason clients were told, while an outage is announced
        self._down_since = 0
        self._link_up_at: int | None = None

    @property
    def up(self) -> bool:
        """Data can flow: the link is up and nobody above reports an outage."""
        return self.link_up and self.relayed_down is None

    def link_established(self, now_ms: int) -> None:
        """Authenticated (and re-subscribed) again. Restored is announced later: on data, or after settling."""
        self.link_up = True
        self.relayed_down = None
        self._link_up_at = now_ms

    def link_lost(self, now_ms: int, reason: str) -> Announcement | None:
        self.link_up = False
        self._link_up_at = None
        return self._down(now_ms, reason)

    def attempt_failed(self, now_ms: int, reason: str) -> Announcement | None:
        """A connection attempt failed while the link was down (the first one included)."""
        return self._down(now_ms, reason)

    def relayed(self, now_ms: int, down: bool, reason: str = "") -> Announcement | None:
        """The tier above says its own upstream for this cluster went down (or came back)."""
        if down:
            self.relayed_down = reason or "the tier above lost its upstream"
            return self._down(now_ms, self.relayed_down)
        self.relayed_down = None
        return self._restore(now_ms) if self.link_up else None

    def data(self, now_ms: int) -> Announcement | None:
        """A data frame arrived: proof the feed flows."""
        if self.announced_down is None or not self.link_up:
            return None
        self.relayed_down = None  # data means the tier above is delivering again
        return self._restore(now_ms)

    def tick(self, now_ms: int) -> Announcement | None:
        """Call now and then: a link that stayed up for ``settle_ms`` with no bad news counts as restored."""
        if (self.announced_down is not None and self.up and self._link_up_at is not None
                and now_ms - self._link_up_at >= self.settle_ms):
            return self._restore(now_ms)
        return None

    def next_tick_ms(self) -> int | None:
        """When :meth:`tick` could next announce something, or None."""
        if self.announced_down is None or not self.up or self._link_up_at is None:
            return None
        return self._link_up_at + self.settle_ms

    def _down(self, now_ms: int, reason: str) -> Announcement | None:
        if self.announced_down is not None:
            return None  # one announcement per outage
        self.announced_down = reason
        self._down_since = now_ms
        return Announcement(False, reason)

    def _restore(self, now_ms: int) -> Announcement | None:
        if self.announced_down is None:
            return None
        self.announced_down = None
        return Announcement(True, down_ms=max(0, now_ms - self._down_since))
