"""Merging trades into open bars: the vectorised core of :meth:`ms_aggregator.book.BarBook.add` (pure, no I/O).

Given the slot of every row (one row per trade and subscribed interval, rows of one slot in arrival order), it
updates the bar columns by the SIP consolidated update rules of each trade's flags: o/c from the first/last
trade that may set them (arrival order), h/l, volume and VWAP sums, and the trade count. It never finds slots or
decides lateness.
"""

from __future__ import annotations

import numpy as np

from ms_aggregator.conditions import (
    UPDATES_ALL,
    UPDATES_HIGH_LOW,
    UPDATES_OPEN_CLOSE,
    UPDATES_VOLUME,
)
from ms_aggregator.slots import NO_SEQ

__all__ = ["merge_rows"]


def _nonzero(a: np.ndarray) -> np.ndarray:
    # np.flatnonzero without its Python-level wrapper, which shows in profiles at these array sizes
    return a.nonzero()[0]


class _FlagLut:
    """Per flag mask (0..7): the neutral-value tables used instead of subsetting rows."""

    def __init__(self) -> None:
        masks = range(UPDATES_ALL + 1)
        self.hi_add = np.array([0.0 if f & UPDATES_HIGH_LOW else -np.inf for f in masks])
        self.lo_add = np.array([0.0 if f & UPDATES_HIGH_LOW else np.inf for f in masks])
        self.vol_mul = np.array([1.0 if f & UPDATES_VOLUME else 0.0 for f in masks])
        self.oc = np.array([bool(f & UPDATES_OPEN_CLOSE) for f in masks])
        self.hl_only = np.array([f & (UPDATES_OPEN_CLOSE | UPDATES_HIGH_LOW) == UPDATES_HIGH_LOW for f in masks])


_LUT = _FlagLut()


def merge_rows(
    c: dict[str, np.ndarray],
    slot: np.ndarray,
    ridx: np.ndarray,
    seq: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    flags: np.ndarray | None,
) -> None:
    """Merge rows into their slots. ``ridx`` points each row at its trade; ``seq``, ``price``, ``size`` and
    ``flags`` are per trade (``flags`` None: every trade updates everything)."""
    np.add.at(c["n"], slot, 1)
    if flags is None:
        pr = price[ridx]
        np.maximum.at(c["h"], slot, pr)
        np.minimum.at(c["l"], slot, pr)
        sz = size[ridx]
        np.add.at(c["v"], slot, sz)
        np.add.at(c["pv"], slot, pr * sz)
        _first_last(c, slot, seq[ridx], pr, "first", "last", "o", "c", eligible=True)
        return
    # Mixed conditions: instead of subsetting rows per flag, give ineligible trades a neutral value
    # (-inf/+inf for high/low, size 0 for volume, seq -1 for open/close), computed per trade, then per row.
    # Adding 0.0 leaves a float sum unchanged, so the arrival-order sums stay exact.
    lut = _LUT
    np.maximum.at(c["h"], slot, (price + lut.hi_add[flags])[ridx])
    np.minimum.at(c["l"], slot, (price + lut.lo_add[flags])[ridx])
    sz_t = size * lut.vol_mul[flags]
    np.add.at(c["v"], slot, sz_t[ridx])
    np.add.at(c["pv"], slot, (price * sz_t)[ridx])
    pr = price[ridx]
    _first_last(c, slot, np.where(lut.oc[flags], seq, -1)[ridx], pr, "first", "last", "o", "c")
    hl_only = lut.hl_only[flags]
    if hl_only.any():  # rare trades: work on their rows only
        sub = _nonzero(hl_only[ridx])
        _first_last(c, slot[sub], seq[ridx[sub]], pr[sub], "xfirst", "xlast", "xo", "xc", eligible=True)


def _first_last(
    c: dict[str, np.ndarray],
    slot: np.ndarray,
    seq: np.ndarray,
    price: np.ndarray,
    first_col: str,
    last_col: str,
    open_col: str,
    close_col: str,
    eligible: bool = False,
) -> None:
    """Open/close by arrival seq; ``seq`` is -1 on rows not eligible (unless ``eligible``: all are).

    The extreme seq per slot comes from ufunc.at (deterministic, unlike fancy assignment with repeated
    indices); then the row holding it writes its price. A row with seq -1 may "win" the close of a slot with
    no eligible trade yet: that price is never read (the slot's first stays NO_SEQ) and a real trade replaces it.
    """
    first = c[first_col]
    need = _nonzero(first[slot] == NO_SEQ)  # only bars without an open yet can get one
    if len(need):
        nseq = seq[need]
        if not eligible:
            ok = _nonzero(nseq >= 0)
            need, nseq = need[ok], nseq[ok]
        if len(need):
            nslot = slot[need]
            np.minimum.at(first, nslot, nseq)
            hit = _nonzero(first[nslot] == nseq)
            c[open_col][nslot[hit]] = price[need[hit]]
    last = c[last_col]
    np.maximum.at(last, slot, seq)
    hit = _nonzero(last[slot] == seq)
    c[close_col][slot[hit]] = price[hit]
