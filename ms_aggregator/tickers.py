"""What a bar book keeps per ticker and per series, as numpy arrays indexed by ticker id (pure, no I/O).

Per ticker (``tid``): which sources traded it in the current and in the previous hold epoch (two bit masks; at an
epoch change the current masks become the previous ones, all tickers at once), the epoch it last traded in, the
end of the newest window of it that has been closed, and which intervals it is subscribed to by name. Per series
(``sid = tid * kcap + k``, ``k`` an interval column): the two newest open windows, a cache in front of the slot
index. Arrays grow with the symbol table, are reset when a ticker's id is given back, and are renumbered when
the table is compacted. It never merges trades or decides when a bar closes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NO_EPOCH", "NO_WINDOW", "Tickers"]

NO_WINDOW = int(np.iinfo(np.int64).min)  # "no open window" in the series cache; never a real window start
_NEVER_CLOSED = -(2**62)
NO_EPOCH = -1  # last_epoch of an id without trades (or given back): never idle

_TICKER_ARRAYS = {"src_cur": 0, "src_prev": 0, "last_epoch": NO_EPOCH, "closed_end": _NEVER_CLOSED}
_SERIES_ARRAYS = {"cur_s": NO_WINDOW, "cur_slot": 0, "prev_s": NO_WINDOW, "prev_slot": 0}
_BITS = np.left_shift(1, np.arange(64, dtype=np.int64))  # source index -> its bit in a source mask


class Tickers:
    """Per-ticker and per-series arrays of one book. ``tcap`` tickers × ``kcap`` interval columns."""

    def __init__(self) -> None:
        self.tcap = 0
        self.kcap = 4
        self.epoch = NO_EPOCH  # the hold epoch src_cur belongs to
        for name in _TICKER_ARRAYS:
            setattr(self, name, np.empty(0, np.int64))
        for name in _SERIES_ARRAYS:
            setattr(self, name, np.empty(0, np.int64))
        self.want = np.zeros((0, self.kcap), bool)  # [tid, k]: subscribed by name

    # -- recent sources ------------------------------------------------------------------------------------------

    def advance(self, epoch: int) -> None:
        """Move to hold epoch ``epoch`` (a later one; an earlier one is ignored): what traded in the current
        epoch becomes the previous epoch's, or nothing if more than one epoch passed."""
        if epoch <= self.epoch:
            return
        traded = self.src_cur != 0
        self.last_epoch[traded] = self.epoch
        if epoch == self.epoch + 1:
            self.src_prev, self.src_cur = self.src_cur, self.src_prev
            self.src_cur[:] = 0
        else:
            self.src_prev[:] = 0
            self.src_cur[:] = 0
        self.epoch = epoch

    def touch(self, tid: np.ndarray, src: np.ndarray, epoch: int) -> None:
        """Trades of these tickers from these sources arrived in hold epoch ``epoch``."""
        if epoch != self.epoch:
            self.advance(epoch)
        bits = _BITS[src]
        need = (self.src_cur[tid] & bits) == 0
        if need.any():
            np.bitwise_or.at(self.src_cur, tid[need], bits[need])

    def idle(self, count: int, epoch_ms: int, before_ms: int) -> np.ndarray:
        """Ids below ``count`` whose last trade's hold epoch ended at or before ``before_ms``."""
        last = np.where(self.src_cur[:count] != 0, self.epoch, self.last_epoch[:count])
        return ((last >= 0) & ((last + 1) * epoch_ms <= before_ms)).nonzero()[0]

    def recent(self, tid: np.ndarray, epoch: int) -> np.ndarray:
        """Source mask per ticker: sources that traded it in hold epoch ``epoch`` or the one before."""
        self.advance(epoch)
        return self.src_cur[tid] | self.src_prev[tid]

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
