"""Storage of open bars: one *slot* per open (series, window), as numpy columns (pure, no I/O).

:class:`Slots` hands out slot numbers, resets a freed slot to the empty-bar values (so allocation is cheap), and
gives memory back: :meth:`Slots.compact` moves the open slots to the front and shrinks the columns when few are
in use. Its ``index`` finds a slot by ``(series id, window start)`` for the windows its owner does not keep
elsewhere (the book keeps each series' two newest windows in a cache and only the rest here: a dict entry costs
more than the slot itself). It never merges trades or decides when a bar closes.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["FREE", "NO_SEQ", "Slots"]

NO_SEQ = int(np.iinfo(np.int64).max)  # "no such trade yet" in the first/xfirst columns
FREE = NO_SEQ  # the "end" of a free slot

# Per-bar columns and the value a free slot holds.
FLOAT_COLS = {"o": 0.0, "c": 0.0, "h": -np.inf, "l": np.inf, "v": 0.0, "pv": 0.0, "xo": 0.0, "xc": 0.0}
INT_COLS = {
    "n": 0,
    "first": NO_SEQ,  # arrival seq of the open (first open/close trade); NO_SEQ: none yet
    "last": -1,  # arrival seq of the close
    "xfirst": NO_SEQ,  # same over high/low-only trades, the o/c fallback
    "xlast": -1,
    "end": FREE,  # e; FREE marks a free slot
    "s": 0,
    "tid": 0,
    "k": 0,
    "ivl": 0,
    "partial": 0,  # 1: the window may be missing trades
}
_RESET = [*FLOAT_COLS, "n", "first", "last", "xfirst", "xlast", "end", "partial"]
_MIN_CAP = 1024


class Slots:
    """Columns of open bars, a ``(sid, s) -> slot`` index and a free list. ``hw``: slots ever used since the last
    compaction; scans stop there. ``len()``: open slots."""

    def __init__(self, cap: int = _MIN_CAP) -> None:
        self.cols: dict[str, np.ndarray] = {}
        self.index: dict[tuple[int, int], int] = {}
        self.free: list[int] = []
        self.cap = 0
        self.hw = 0
        self.live = 0
        self._grow(cap)

    def __len__(self) -> int:
        return self.live

    def new(self) -> int:
        self.live += 1
        if self.free:
            return self.free.pop()
        if self.hw == self.cap:
            self._grow(self.cap * 2)
        self.hw += 1
        return self.hw - 1

    def open_slots(self) -> np.ndarray:
        return (self.cols["end"][: self.hw] != FREE).nonzero()[0]

    def release(self, slots: np.ndarray, sids: np.ndarray, indexed: np.ndarray) -> None:
        """Free slots (their series ids given): forget the keys of those in the index (``indexed``) and reset
        their columns."""
        if len(slots) == 0:
            return
        c = self.cols
        index = self.index
        for key in zip(sids[indexed].tolist(), c["s"][slots[indexed]].tolist()):
            del index[key]
        for name in _RESET:
            c[name][slots] = FLOAT_COLS[name] if name in FLOAT_COLS else INT_COLS[name]
        self.free.extend(slots.tolist())
        self.live -= len(slots)

    def rekey(self, kcap: int) -> None:
        """Rebuild the index keys after series ids changed (``sid = tid * kcap + k`` from the columns)."""
        c = self.cols
        slots = np.fromiter(self.index.values(), np.int64, len(self.index))
        sids = c["tid"][slots] * kcap + c["k"][slots]
        self.index = dict(zip(zip(sids.tolist(), c["s"][slots].tolist()), slots.tolist()))

    def compact(self) -> np.ndarray | None:
        """If few slots are open, move them to the front and shrink the columns. Returns old slot -> new slot
        (-1 for free ones) when slots moved, else None."""
        live = self.live
        if self.cap <= _MIN_CAP or live * 8 > self.cap:
            return None
        slots = self.open_slots()
        mapping = np.full(self.cap, -1, np.int64)
        mapping[slots] = np.arange(live)
        cap = max(_MIN_CAP, 2 * live)
        for name, col in self.cols.items():
            fresh = np.full(cap, FLOAT_COLS[name] if name in FLOAT_COLS else INT_COLS[name], col.dtype)
            fresh[:live] = col[slots]
            self.cols[name] = fresh
        self.cap, self.hw = cap, live
        self.free.clear()
        self.index = {key: int(mapping[slot]) for key, slot in self.index.items()}
        return mapping

    def nbytes(self) -> int:
        # the index's key tuples and ints live outside the dict's own table: about 120 bytes each
        return (sum(col.nbytes for col in self.cols.values()) + sys.getsizeof(self.index) + 120 * len(self.index)
                + 8 * len(self.free))

    def _grow(self, cap: int) -> None:
        old = self.cap
        for name, value in (*FLOAT_COLS.items(), *INT_COLS.items()):
            col = np.full(cap, value, np.float64 if name in FLOAT_COLS else np.int64)
            if old:
                col[:old] = self.cols[name]
            self.cols[name] = col
        self.cap = cap
