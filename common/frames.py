"""Splitting upstream frames into routable events, and packing events back into frames.

An upstream frame is a JSON array of event objects. :func:`split_frame` returns one :class:`Event` per object
with the object's **original bytes** (a zero-copy ``msgspec.Raw`` slice of the frame), so forwarding never
re-formats a number. :func:`pack_frames` joins pending events into as few frames as fit under the size limit.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import msgspec

from common.clusters import BAR_EVENT, TICKER_FIELD
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


class _EventKey(msgspec.Struct):
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

_SPECIAL = frozenset((BAR_EVENT, STATUS, "C"))


def _route(key: _EventKey) -> tuple[str, str]:
    ev = key.ev
    if ev == BAR_EVENT:
        return bar_code(key.interval or 0), key.sym or ""
    if ev == STATUS:
        return ev, key.status or ""
    if ev == "C":
        return ev, (_str_decoder.decode(key.p) if key.p is not None else "")
    attr = TICKER_FIELD.get(ev)
    return ev, (getattr(key, attr) if attr else key.sym) or ""


def split_frame(data: bytes | str) -> list[Event]:
    """Events of one frame, in order, each with its original bytes. Raises :class:`FrameError`.

    Status objects come out with code ``"status"`` and their status as ticker, so callers can act on them.
    """
    try:
        # Two C-level passes (raw slices, then the key fields) beat one Python-level decode per object.
        raws = _raw_decoder.decode(data)
        keys = _keys_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"not a frame of events: {exc}") from None
    new = tuple.__new__
    out = []
    for key, raw in zip(keys, raws):
        ev = key.ev
        if ev in _SPECIAL:
            out.append(new(Event, (*_route(key), raw)))
        else:
            out.append(new(Event, (ev, getattr(key, TICKER_FIELD.get(ev, "sym")) or "", raw)))
    return out


def event_from_object(raw: bytes | msgspec.Raw) -> Event:
    """The :class:`Event` of one JSON event object (not a frame)."""
    try:
        return Event(*_route(_key_decoder.decode(raw)), raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"not an event object: {exc}") from None


class Frame:
    """One upstream frame: its bytes, split into :class:`Event` s only when someone asks (and then only once).

    A tier that can use the bytes directly (the aggregator decodes trade frames straight into columns) skips the
    split entirely. ``events`` raises :class:`FrameError` for bytes that are not a frame of events.
    """

    __slots__ = ("data", "_events")

    def __init__(self, data: bytes, events: list[Event] | None = None) -> None:
        self.data = data
        self._events = events

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            self._events = split_frame(self.data)
        return self._events


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
