"""Bounded memory of a bar book: idle tickers give their ids and state back; arrays shrink (pure, no I/O).

:func:`evict_idle` forgets tickers that have not traded for ``idle_ms`` (counted from the end of the hold epoch of
their last trade) and hold nothing (no open or kept window, no subscription by name), then compacts the ticker
arrays and the slot columns when few entries remain in use. :func:`footprint` reports what a book holds and an
estimate of its bytes. It never merges trades or closes windows.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ms_aggregator.book import BarBook

__all__ = ["evict_idle", "footprint"]

_COMPACT_ABOVE = 4096  # ticker capacity under which arrays are left alone


def evict_idle(book: BarBook, local_ms: int) -> tuple[int, bool]:
    """Give back idle tickers that hold nothing; returns how many, and whether ticker ids were renumbered."""
    T, names, slots = book.tickers, book.symbols.names, book.slots
    ids = T.idle(len(names), book.hold_ms, local_ms - book.idle_ms)
    if len(ids):
        c, open_slots = slots.cols, slots.open_slots()
        ids = ids[~np.isin(ids, c["tid"][open_slots]) & ~T.want[ids].any(axis=1)]
        if book.amends is not None and len(book.amends):
            held = book.amends.holds()
            ids = np.array([i for i in ids.tolist() if names[i] not in held], np.int64)
        if len(ids):
            book.symbols.release(ids.tolist())
            T.reset(ids)
    renumbered = T.tcap > _COMPACT_ABOVE and book.symbols.live * 4 < T.tcap
    if renumbered:
        mapping = book.symbols.compact()
        T.renumber(mapping, book.symbols.live)
        c, open_slots = slots.cols, slots.open_slots()
        c["tid"][open_slots] = mapping[c["tid"][open_slots]]
        slots.rekey(T.kcap)
    moved = slots.compact()
    if moved is not None:
        T.remap_slots(moved)
    return len(ids), renumbered


def footprint(book: BarBook) -> dict:
    """Live tickers and series, open and kept windows, and an estimate of the book's bytes."""
    T, table = book.tickers, book.symbols
    live = table.live
    wild = book.wildcard_columns
    named = int(T.want[: len(table)][:, ~wild].sum()) if len(wild) else 0
    nbytes = (book.slots.nbytes() + T.nbytes() + sys.getsizeof(table.names) + sys.getsizeof(table.ids)
              + 28 * len(table.ids) + table.name_bytes + (book.amends.nbytes() if book.amends is not None else 0))
    return {"symbols": live, "live_series": live * int(wild.sum()) + named, "open_bars": len(book.slots),
            "kept_bars": len(book.amends) if book.amends is not None else 0, "book_bytes": int(nbytes)}
