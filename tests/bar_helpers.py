"""Helpers of the bar-engine tests: Polygon trade events, frames, and a book fed with them (no sockets, no clock)."""

from __future__ import annotations

import json

import msgspec

from ms_aggregator.book import DEFAULT_GRACE_MS, BarBook

T0 = 1_700_000_000_000  # a multiple of 1000 (not of 60000: the minute window holding it starts 20 s earlier)
G = DEFAULT_GRACE_MS
KEYS = ["ev", "sym", "interval", "o", "h", "l", "c", "v", "vw", "n", "s", "e"]
FAR = 10**15  # a close time after everything


def trade(sym, p, s, t, c=None, x=4, **extra):
    ev = {"ev": "T", "sym": sym, "x": x, "i": "1", "z": 3, "p": p, "s": s, "t": t, "q": 1}
    if c is not None:
        ev["c"] = c
    ev.update(extra)
    return ev


def xtrade(pair, p, s, t, c=None, x=1):
    ev = {"ev": "XT", "pair": pair, "p": p, "t": t, "s": s, "x": x, "i": "9", "r": t + 5}
    if c is not None:
        ev["c"] = c
    return ev


def frame(*events) -> bytes:
    return msgspec.json.encode(list(events))


def book_for(subs, cluster="stocks", warm=True, **kw) -> BarBook:
    """A book subscribed to ``subs``; ``warm``: its clock already runs (one tick at T0 - 1 s from a trade of an
    unsubscribed ticker), so windows from T0 on are covered from their start (not partial)."""
    book = BarBook(cluster, **kw)
    if warm:
        maker = xtrade if cluster == "crypto" else trade
        feed(book, maker("WARMUP", 1.0, 1, T0 - 1000))
        book.close_due(T0 - 1000)
    book.set_subscriptions(subs)
    return book


def feed(book: BarBook, *events, local: int | None = None) -> int:
    """Add one frame of events arriving at ``local`` (default: the newest trade time, i.e. no delay)."""
    if local is None:
        local = max((e["t"] for e in events if isinstance(e, dict) and isinstance(e.get("t"), int)), default=T0)
    return book.add(book.decoder.decode_frame(frame(*events)), local)


def bars(raw: list[bytes]) -> list[dict]:
    return [json.loads(b) for b in raw]


def close_all(book) -> list[dict]:
    return bars(book.close_due(FAR))
