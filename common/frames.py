"""Splitting upstream frames into routable events, and packing events back into frames.

An upstream frame is a JSON array of event objects. :func:`split_frame` returns one :class:`Event` per object
with the object's **original bytes** (a zero-copy ``msgspec.Raw`` slice of the frame), so forwarding never
re-formats a number. A :class:`Frame` decodes only what is asked of it: its routing keys (one C-level pass), and
the objects' bytes only when some receiver wants part of it; a receiver that wants all of it gets
:attr:`Frame.body`, the frame's own bytes. :func:`pack_frames` joins pending events into as few frames as fit under
the size limit. Nothing here touches a socket or a clock.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import msgspec

from common.clusters import BAR_EVENT, FAIR_VALUE, TICKER_FIELD, fair_value_ticker
from common.topics import bar_code

MAX_FRAME_BYTES = 1 << 20  # every frame stays under 1 MiB (DESIGN §2)

STATUS = "status"


class FrameError(ValueError):
    """Bytes that are not a JSON array of event objects."""


class Event(NamedTuple):
    """One event: its routing ``code`` and ``ticker`` and its exact bytes (bytes-like)."""

    code: str
    ticker: str
    raw: bytes | msgspec.Raw


class _EventKey(msgspec.Struct, gc=False):  # no cycles possible: untracked by the GC, cheaper to build
    """The few fields routing needs; every other field is skipped, not decoded."""

    ev: str
    sym: str | None = None
    pair: str | None = None
    T: str | None = None
    p: msgspec.Raw = None  # type: ignore[assignment]  # price on trades, the pair on forex "C" quotes
    interval: int | None = None
    status: str | None = None
    message: str | None = None


_raw_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_keys_decoder = msgspec.json.Decoder(list[_EventKey])
_key_decoder = msgspec.json.Decoder(_EventKey)
_str_decoder = msgspec.json.Decoder(str)

_SPECIAL = frozenset((BAR_EVENT, STATUS, "C", FAIR_VALUE))


def _route(key: _EventKey) -> tuple[str, str]:
    ev = key.ev
    if ev == BAR_EVENT:
        return bar_code(key.interval or 0), key.sym or ""
    if ev == STATUS:
        return ev, key.status or ""
    if ev == "C":
        return ev, _pair_of(key.p)
    if ev == FAIR_VALUE:
        return ev, fair_value_ticker(key.sym or "")
    attr = TICKER_FIELD.get(ev)
    return ev, (getattr(key, attr) if attr else key.sym) or ""


def _pair_of(p: msgspec.Raw | None) -> str:
    """The pair of a forex quote; a ``p`` of the wrong type routes by its text (forwarded as sent, never fatal)."""
    if p is None:
        return ""
    try:
        return _str_decoder.decode(p)
    except msgspec.ValidationError:
        return bytes(p).decode("utf-8", "replace")


def frame_routes(data: bytes | str) -> list[tuple[str, str]]:
    """The ``(code, ticker)`` of each event of one frame, in order. Raises :class:`FrameError`."""
    try:
        keys = _keys_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"not a frame of events: {exc}") from None
    out = []
    field = TICKER_FIELD.get
    for key in keys:
        ev = key.ev
        if ev in _SPECIAL:
            out.append(_route(key))
        else:
            out.append((ev, getattr(key, field(ev, "sym")) or ""))
    return out


def frame_raws(data: bytes | str) -> list[msgspec.Raw]:
    """The original bytes of each event object of one frame, in order. Raises :class:`FrameError`."""
    try:
        return _raw_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"not a frame of events: {exc}") from None


def split_frame(data: bytes | str) -> list[Event]:
    """Events of one frame, in order, each with its original bytes. Raises :class:`FrameError`.

    Status objects come out with code ``"status"`` and their status as ticker, so callers can act on them.
    """
    # Two C-level passes (raw slices, then the key fields) beat one Python-level decode per object.
    routes = frame_routes(data)
    raws = frame_raws(data)
    new = tuple.__new__
    return [new(Event, (code, ticker, raw)) for (code, ticker), raw in zip(routes, raws)]


def event_from_object(raw: bytes | msgspec.Raw) -> Event:
    """The :class:`Event` of one JSON event object (not a frame)."""
    try:
        return Event(*_route(_key_decoder.decode(raw)), raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"not an event object: {exc}") from None


class Frame:
    """One upstream frame: its bytes, decoded only as far as someone asks (and each part only once).

    A tier that can use the bytes directly (the aggregator decodes trade frames straight into columns) skips the
    split entirely; the hub reads ``routes`` and needs ``raws`` only for receivers that want part of the frame.
    ``routes``, ``raws`` and ``events`` raise :class:`FrameError` for bytes that are not a frame of events.
    """

    __slots__ = ("data", "_events", "_routes", "_raws")

    def __init__(self, data: bytes, events: list[Event] | None = None) -> None:
        self.data = data
        self._events = events
        self._routes: list[tuple[str, str]] | None = None
        self._raws: list | None = None

    @property
    def routes(self) -> list[tuple[str, str]]:
        """``(code, ticker)`` of each event, in order."""
        if self._routes is None:
            if self._events is not None:
                self._routes = [(e[0], e[1]) for e in self._events]
            else:
                self._routes = frame_routes(self.data)
        return self._routes

    @property
    def raws(self) -> list:
        """The original bytes of each event object, in order."""
        if self._raws is None:
            self._raws = [e[2] for e in self._events] if self._events is not None else frame_raws(self.data)
        return self._raws

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            new = tuple.__new__
            self._events = [new(Event, (c, t, r)) for (c, t), r in zip(self.routes, self.raws)]
        return self._events

    @property
    def body(self) -> memoryview | None:
        """The frame's event objects, comma-joined, as they arrived (the bytes between ``[`` and ``]``), or None
        when the frame is not compact (whitespace around its objects) or too large to forward as one piece."""
        data = self.data
        if data[:2] == b"[{" and data[-2:] == b"}]" and len(data) <= MAX_FRAME_BYTES:
            return memoryview(data)[1:-1]
        return None


def decode_status(raw: bytes | msgspec.Raw) -> tuple[str, str]:
    """``(status, message)`` of a status object."""
    key = _key_decoder.decode(raw)
    return key.status or "", key.message or ""


def pack_frames(raws: Iterable[bytes | msgspec.Raw], max_bytes: int = MAX_FRAME_BYTES) -> list[bytes]:
    """Join event objects into JSON-array frames, in order, each at most ``max_bytes`` long.

    A single object larger than the limit is sent alone in its own frame (it cannot be split).
    """
    frames: list[bytes] = []
    batch: list = []
    size = 2  # "[" and "]"
    for raw in raws:
        n = len(raw) + 1  # the object and its comma
        if batch and size + n > max_bytes:
            frames.append(b"[" + b",".join(batch) + b"]")
            batch, size = [], 2
        batch.append(raw)
        size += n
    if batch:
        frames.append(b"[" + b",".join(batch) + b"]")
    return frames
