"""Finding the slot of an open window: each series' two-window cache in front of the slot index (pure, no I/O).

Every open window ``(sid, s)`` is in exactly one place: its series' cache (``cur`` / ``prev`` in
:class:`~ms_aggregator.tickers.Tickers`, which nearly every trade hits) or the index of
:class:`~ms_aggregator.slots.Slots` (older windows, e.g. a slow source's). :func:`find` looks rows up and opens slots
for new windows, :func:`place` files new slots, :func:`forget` takes released slots out, :func:`is_open` answers
membership. It never initialises bar columns or decides when a window closes.
"""

from __future__ import annotations

import numpy as np

from ms_aggregator.slots import Slots
from ms_aggregator.tickers import NO_WINDOW, Tickers

__all__ = ["find", "forget", "is_open", "place"]


def find(T: Tickers, slots: Slots, slot: np.ndarray, miss: np.ndarray, sid: np.ndarray,
         s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``slot`` where the ``cur`` cache missed: ``prev``, the index, or a new slot. Returns the new slots and
    the rows that opened them (one row per new window; other rows of the batch for it share its slot)."""
    rows = miss.nonzero()[0]
    msid = sid[rows]
    prev = (T.prev_s[msid] == s[rows]).nonzero()[0]
    if len(prev):
        slot[rows[prev]] = T.prev_slot[msid[prev]]
        if len(prev) == len(rows):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        rows = np.delete(rows, prev)
    index = slots.index
    found: list[int] = []
    new_slots: list[int] = []
    new_rows: list[int] = []
    opened: dict[tuple[int, int], int] = {}  # windows opened by this batch, not yet placed
    for row, key in zip(rows.tolist(), zip(sid[rows].tolist(), s[rows].tolist())):
        sl = index.get(key)
        if sl is None:
            sl = opened.get(key)
            if sl is None:
                sl = opened[key] = slots.new()
                new_slots.append(sl)
                new_rows.append(row)
        found.append(sl)
    slot[rows] = found
    return np.array(new_slots, np.int64), np.array(new_rows, np.int64)


def place(T: Tickers, slots: Slots, ns: np.ndarray, nsid: np.ndarray, nstart: np.ndarray) -> None:
    """File new slots: a series' cache keeps its two newest windows; a window pushed out goes to the index."""
    cur_s, cur_slot, prev_s, prev_slot = T.cur_s, T.cur_slot, T.prev_s, T.prev_slot
    index = slots.index

    def to_index(sids, starts, sl) -> None:
        valid = starts != NO_WINDOW
        index.update(zip(zip(sids[valid].tolist(), starts[valid].tolist()), sl[valid].tolist()))

    if len(np.unique(nsid)) == len(nsid):  # the usual case: vectorised
        newest = nstart > cur_s[nsid]
        up = nsid[newest]
        to_index(up, prev_s[up], prev_slot[up])
        prev_s[up], prev_slot[up] = cur_s[up], cur_slot[up]
        cur_s[up], cur_slot[up] = nstart[newest], ns[newest]
        older = ~newest
        o_sid, o_start, o_slot = nsid[older], nstart[older], ns[older]
        second = o_start > prev_s[o_sid]
        p_sid = o_sid[second]
        to_index(p_sid, prev_s[p_sid], prev_slot[p_sid])
        prev_s[p_sid], prev_slot[p_sid] = o_start[second], o_slot[second]
        to_index(o_sid[~second], o_start[~second], o_slot[~second])
        return
    for sd, st, sl in zip(nsid.tolist(), nstart.tolist(), ns.tolist()):  # several windows of one series
        if st > cur_s[sd]:
            if prev_s[sd] != NO_WINDOW:
                index[(sd, int(prev_s[sd]))] = int(prev_slot[sd])
            prev_s[sd], prev_slot[sd] = cur_s[sd], cur_slot[sd]
            cur_s[sd], cur_slot[sd] = st, sl
        elif st > prev_s[sd]:
            if prev_s[sd] != NO_WINDOW:
                index[(sd, int(prev_s[sd]))] = int(prev_slot[sd])
            prev_s[sd], prev_slot[sd] = st, sl
        else:
            index[(sd, st)] = sl


def forget(T: Tickers, slots: Slots, released: np.ndarray) -> None:
    """Free slots: out of their series' cache or the index, columns back to the empty-bar values."""
    if len(released) == 0:
        return
    c = slots.cols
    sid, start = c["tid"][released] * T.kcap + c["k"][released], c["s"][released]
    in_cur = (T.cur_slot[sid] == released) & (T.cur_s[sid] == start)
    in_prev = (T.prev_slot[sid] == released) & (T.prev_s[sid] == start)
    T.cur_s[sid[in_cur]] = NO_WINDOW
    T.prev_s[sid[in_prev]] = NO_WINDOW
    slots.release(released, sid, ~(in_cur | in_prev))


def is_open(T: Tickers, slots: Slots, sid: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per row: whether window ``(sid, s)`` is open."""
    out = (T.cur_s[sid] == s) | (T.prev_s[sid] == s)
    index = slots.index
    for i in (~out).nonzero()[0].tolist():
        out[i] = (int(sid[i]), int(s[i])) in index
    return out
