"""What a bar book keeps per ticker and per series, as numpy arrays indexed by ticker id (pure, no I/O).

Per ticker (``tid``): which sources traded it recently (a bit mask per hold epoch), the end of the newest window
of it that has been closed, when it last traded, and which intervals it is subscribed to by name. Per series
(``sid = tid * kcap + k``, ``k`` an interval column): the two newest open windows, a cache in front of the slot
index. Arrays grow with the symbol table, are reset when a ticker's id is given back, and are renumbered when
the table is compacted. It never merges trades or decides when a bar closes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NO_WINDOW", "Tickers"]

NO_WINDOW = int(np.iinfo(np.int64).min)  # "no open window" in the series cache; never a real window start
_NEVER_CLOSED = -(2**62)
_NOT_SEEN = int(np.iinfo(np.int64).max)  # last_seen of an id without trades (or given back): never idle

_TICKER_ARRAYS = {"src_cur": 0, "src_prev": 0, "src_epoch": -(2**62), "closed_end": _NEVER_CLOSED,
                  "last_seen": _NOT_SEEN}
_SERIES_ARRAYS = {"cur_s": NO_WINDOW, "cur_slot": 0, "prev_s": NO_WINDOW, "prev_slot": 0}


class Tickers:
    """Per-ticker and per-series arrays of one book. ``tcap`` tickers × ``kcap`` interval columns."""

    def __init__(self) -> None:
        self.tcap = 0
        self.kcap = 4
        for name in _TICKER_ARRAYS:
            setattr(self, name, np.empty(0, np.int64))
        for name in _SERIES_ARRAYS:
            setattr(self, name, np.empty(0, np.int64))
        self.want = np.zeros((0, self.kcap), bool)  # [tid, k]: subscribed by name

    # -- recent sources ------------------------------------------------------------------------------------------

    def touch(self, tid: np.ndarray, src: np.ndarray, epoch: int, local_ms: int) -> None:
        """Trades of these tickers from these sources arrived at ``local_ms`` (hold epoch ``epoch``)."""
        stale = self.src_epoch[tid] != epoch
        if stale.any():
            ids = np.unique(tid[stale])
            old = self.src_epoch[ids]
            self.src_prev[ids] = np.where(old == epoch - 1, self.src_cur[ids], 0)
            self.src_cur[ids] = 0
            self.src_epoch[ids] = epoch
        bits = np.left_shift(1, src)
        need = (self.src_cur[tid] & bits) == 0
        if need.any():
            np.bitwise_or.at(self.src_cur, tid[need], bits[need])
        self.last_seen[tid] = local_ms

    def recent(self, tid: np.ndarray, epoch: int) -> np.ndarray:
        """Source mask per ticker: sources that traded it in hold epoch ``epoch`` or the one before."""
        tag = self.src_epoch[tid]
        cur = self.src_cur[tid]
        return np.where(tag >= epoch, cur | self.src_prev[tid], np.where(tag == epoch - 1, cur, 0))

    # -- sizing --------------------------------------------------------------------------------------------------

    def grow(self, count: int) -> None:
        """Room for ticker ids below ``count``."""
        if count <= self.tcap:
            return
        tcap = max(count, 2 * self.tcap, 64)
        extra = tcap - self.tcap
        for name, fill in _TICKER_ARRAYS.items():
            setattr(self, name, np.concatenate([getattr(self, name), np.full(extra, fill, np.int64)]))
        for name, fill in _SERIES_ARRAYS.items():
            setattr(self, name, np.concatenate([getattr(self, name), np.full(extra * self.kcap, fill, np.int64)]))
        want = np.zeros((tcap, self.kcap), bool)
        want[: self.tcap] = self.want
        self.want = want
        self.tcap = tcap

    def widen(self, needed: int) -> bool:
        """Room for interval columns below ``needed``; True if series ids changed (kcap grew)."""
        if needed <= self.kcap:
            return False
        old, kcap = self.kcap, self.kcap
        while kcap < needed:
            kcap *= 2
        for name, fill in _SERIES_ARRAYS.items():
            wide = np.full((self.tcap, kcap), fill, np.int64)
            wide[:, :old] = getattr(self, name).reshape(self.tcap, old)
            setattr(self, name, wide.reshape(-1))
        want = np.zeros((self.tcap, kcap), bool)
        want[:, :old] = self.want
        self.want = want
        self.kcap = kcap
        return True

    def reset(self, ids: np.ndarray) -> None:
        """Forget tickers whose ids were given back (subscription rows are the caller's business)."""
        for name, fill in _TICKER_ARRAYS.items():
            getattr(self, name)[ids] = fill
        rows = (ids[:, None] * self.kcap + np.arange(self.kcap)).reshape(-1)
        for name, fill in _SERIES_ARRAYS.items():
            getattr(self, name)[rows] = fill

    def renumber(self, mapping: np.ndarray, live: int) -> None:
        """Keep the tickers with ``mapping[old] >= 0`` at their new ids and shrink to fit ``live`` of them."""
        old_ids = np.flatnonzero(mapping >= 0)
        new_ids = mapping[old_ids]
        tcap = max(64, 2 * live)
        for name, fill in _TICKER_ARRAYS.items():
            fresh = np.full(tcap, fill, np.int64)
            fresh[new_ids] = getattr(self, name)[old_ids]
            setattr(self, name, fresh)
        for name, fill in _SERIES_ARRAYS.items():
            fresh = np.full((tcap, self.kcap), fill, np.int64)
            fresh[new_ids] = getattr(self, name).reshape(self.tcap, self.kcap)[old_ids]
            setattr(self, name, fresh.reshape(-1))
        want = np.zeros((tcap, self.kcap), bool)
        want[new_ids] = self.want[old_ids]
        self.want = want
        self.tcap = tcap

    def remap_slots(self, mapping: np.ndarray) -> None:
        """Slots moved (see :meth:`ms_aggregator.slots.Slots.compact`): follow them in the series cache."""
        for s_name, slot_name in (("cur_s", "cur_slot"), ("prev_s", "prev_slot")):
            starts, slots = getattr(self, s_name), getattr(self, slot_name)
            used = starts != NO_WINDOW
            slots[used] = mapping[slots[used]]

    def nbytes(self) -> int:
        arrays = [getattr(self, name) for name in (*_TICKER_ARRAYS, *_SERIES_ARRAYS)]
        return sum(a.nbytes for a in arrays) + self.want.nbytes
