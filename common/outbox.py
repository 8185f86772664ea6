"""One client's outgoing buffer and the slow-consumer rule (DESIGN §2 "Slow consumers"), sans I/O.

An :class:`Outbox` holds what was routed to a client since its last write: event objects (original bytes) and
whole frame bodies (several objects, comma-joined, as they arrived). The hub writes an outbox out once per batch
of upstream input while the client's transport accepts data, and keeps it only while the transport is paused.
The rule: pending bytes plus the bytes already handed to the transport (in flight) never exceed ``limit``; a
client that would need more is a slow consumer, and everything pending is dropped and counted.

The hub's hot path appends to ``items`` and adds to ``nbytes`` directly (attribute access, no calls per event);
everything else goes through the methods here. This module never touches a socket or a clock.
"""

from __future__ import annotations

from common.frames import MAX_FRAME_BYTES, pack_frames


class Outbox:
    __slots__ = ("items", "nbytes", "extra_events", "limit", "paused", "closing")

    def __init__(self, limit: int) -> None:
        self.items: list = []  # bytes-like, each one event object or a frame body of several
        self.nbytes = 0  # bytes the pending items take on the wire (each item + its comma)
        self.extra_events = 0  # events pending beyond one per item (frame bodies hold several)
        self.limit = limit
        self.paused = False  # the transport asked us to stop writing
        self.closing = False  # cut off or closing: nothing more is queued

    def add(self, obj: bytes) -> None:
        self.items.append(obj)
        self.nbytes += len(obj) + 1

    def add_body(self, body, events: int) -> None:
        """A whole frame's objects (``events`` of them) as one piece."""
        self.items.append(body)
        self.nbytes += len(body) + 1
        self.extra_events += events - 1

    @property
    def pending_events(self) -> int:
        return len(self.items) + self.extra_events

    def fits(self, in_flight: int) -> bool:
        """Whether pending plus ``in_flight`` bytes stay within the bound."""
        return self.nbytes + in_flight <= self.limit

    def take(self) -> tuple[list[bytes], int]:
        """The pending items packed into frames (each < 1 MiB, in order) and how many events they hold."""
        events = len(self.items) + self.extra_events
        frames = pack_frames(self.items, MAX_FRAME_BYTES)
        self.items, self.nbytes, self.extra_events = [], 0, 0
        return frames, events

    def drop(self) -> int:
        """Forget everything pending; returns how many events were dropped."""
        dropped = len(self.items) + self.extra_events
        self.items, self.nbytes, self.extra_events = [], 0, 0
        return dropped
