"""Hermes price updates (one SSE ``data`` payload of ``/v2/updates/price/stream?parsed=true``) to ``PY`` events. Pure.

Each parsed update becomes ``{"ev":"PY","sym":…,"p":…,"conf":…,"ema":…,"t":…,"id":…}``: price, confidence and EMA
price are Hermes' integer strings scaled by ``expo`` and written as exact decimals (no float rounding; whole values
as integers, as Polygon writes prices), ``t`` is the publish time in Unix ms, ``id`` the feed id. An update whose
slot is not newer than the last one published for its feed is dropped: two overlapping streams (a restream opens
the new one before closing the old) then never publish the same update twice.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from common.clusters import PYTH_CODE
from common.frames import Event
from firehose_proxy.sources.pyth.feeds import FeedCatalog, normalize_id


class _Price(msgspec.Struct):
    price: str
    conf: str
    expo: int
    publish_time: int


class _Metadata(msgspec.Struct):
    slot: int | None = None


class _Parsed(msgspec.Struct):
    id: str
    price: _Price
    ema_price: _Price
    metadata: _Metadata | None = None


class _Update(msgspec.Struct):
    parsed: list[_Parsed] | None = None  # "binary" (the signed update) is skipped, never decoded


class PriceEvent(msgspec.Struct, tag_field="ev", tag=PYTH_CODE):
    sym: str
    p: msgspec.Raw
    conf: msgspec.Raw
    ema: msgspec.Raw
    t: int
    id: str


_update_decoder = msgspec.json.Decoder(_Update)
_encode = msgspec.json.Encoder().encode


class UpdateError(ValueError):
    """A payload that is not a Hermes price update."""


def scaled(mantissa: int, expo: int) -> bytes:
    """``mantissa * 10**expo`` as an exact JSON number: ``scaled(9700012345678, -8) == b"97000.12345678"``."""
    digits = str(abs(mantissa))
    if digits == "0":
        return b"0"
    if expo >= 0:
        text = digits + "0" * expo
    else:
        k = -expo
        digits = digits.rjust(k + 1, "0")
        whole, frac = digits[:-k], digits[-k:].rstrip("0")
        text = whole + ("." + frac if frac else "")
    return (("-" if mantissa < 0 else "") + text).encode()


class Published(NamedTuple):
    cluster: str
    event: Event


class UpdateDecoder:
    """Turns payloads into events for the feeds of ``catalog``; remembers each feed's last published slot."""

    def __init__(self, catalog: FeedCatalog) -> None:
        self.catalog = catalog
        self.last_slot: dict[str, int] = {}
        self.unknown = 0  # updates for ids not in the catalog (skipped)
        self.repeated = 0  # updates already published (skipped)

    def decode(self, data: bytes | str) -> list[Published]:
        """The events of one payload, in payload order. Raises :class:`UpdateError`."""
        try:
            update = _update_decoder.decode(data)
            out = []
            for parsed in update.parsed or ():
                feed_id = normalize_id(parsed.id)
                feed = self.catalog.by_id.get(feed_id)
                if feed is None:
                    self.unknown += 1
                    continue
                slot = parsed.metadata.slot if parsed.metadata is not None else None
                if slot is not None:
                    if slot <= self.last_slot.get(feed_id, -1):
                        self.repeated += 1
                        continue
                    self.last_slot[feed_id] = slot
                price, ema = parsed.price, parsed.ema_price
                raw = _encode(PriceEvent(
                    feed.ticker, msgspec.Raw(scaled(int(price.price), price.expo)),
                    msgspec.Raw(scaled(int(price.conf), price.expo)), msgspec.Raw(scaled(int(ema.price), ema.expo)),
                    price.publish_time * 1000, feed_id))
                out.append(Published(feed.cluster, Event(PYTH_CODE, feed.ticker, raw)))
            return out
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise UpdateError(f"not a Hermes price update: {exc}") from None
