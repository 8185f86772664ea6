"""Millisecond bars from trades (DESIGN §2, "Millisecond bars"): the pure, I/O-free core of ``ms_aggregator``.

Data flow: :class:`~ms_aggregator.decode.TradeDecoder` turns Polygon frames into a ``TradeBatch`` of numpy
columns; :meth:`BarBook.add` merges a batch into the open bars of every subscribed ``(ticker, interval)``;
:meth:`BarBook.close_due` emits the bars whose window has closed, as ``MB`` event JSON
(:mod:`ms_aggregator.bar_event`). :class:`~ms_aggregator.clock.ClockSkew` maps the local clock onto the trades'
clock so the shell can call ``book.close_due(skew.market_now(local_now))``.
Nothing here reads a clock or does I/O: time is always an argument, in Unix milliseconds.

Bar semantics, per window ``[s, e)`` with ``s = t - t % N`` on the trade's SIP timestamp ``t`` and ``e = s + N``.
Each trade has a flag mask from its conditions (:mod:`ms_aggregator.conditions`; crypto trades are always all-eligible):

- ``o``/``c``: price of the first/last trade, in arrival order, that updates open/close. A window with no such trade
  but with trades that update high/low takes ``o``/``c`` from the first/last of *those* instead.
- ``h``/``l``: max/min price of trades that update high/low; with none, ``max(o, c)``/``min(o, c)``.
- ``v``: summed size of trades that update volume; ``vw``: their volume-weighted price, ``sum(p*s)/sum(s)`` summed
  in arrival order; with ``v == 0``, ``vw = c``. ``v`` is an int on stocks/options when integral, a float on crypto.
- ``n``: trades that updated the bar in any way.
- A window emits a bar only if some trade in it updates open/close or high/low. A window whose trades only update
  volume (odd lots, average-price trades …) emits nothing, and its volume is not carried into any other window.

Windows close by time: ``close_due(now)`` emits every open bar with ``e + grace <= now``, ordered by
``(e, ticker, interval)``. A trade arriving while its window is open is always merged. A trade whose window already
closed (``e + grace <= `` the close horizon: the latest ``now`` given to ``close_due``) is *late*: not merged, dropped
and counted. ``close_due`` on a book without open bars closes nothing and leaves the horizon alone, so a wrong clock
before the first trade (e.g. :class:`ClockSkew` without observations) cannot make trades late; bars still come out
in ``e`` order across calls. Trades whose conditions update nothing never touch a bar, so they are never late.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from common.clusters import CLUSTERS
from common.topics import MAX_BAR_MS, MIN_BAR_MS
from ms_aggregator.bar_event import NO_SEQ, encode_bars
from ms_aggregator.conditions import (
    UPDATES_ALL,
    UPDATES_HIGH_LOW,
    UPDATES_OPEN_CLOSE,
    UPDATES_VOLUME,
    ConditionRules,
    default_rules,
)
from ms_aggregator.decode import SymbolTable, TradeBatch, TradeDecoder

__all__ = ["DEFAULT_GRACE_MS", "BarBook"]

#: How long after ``e`` (in market time) a window stays open. The :class:`ClockSkew` estimate already absorbs the
#: constant part of the local-vs-SIP offset and of transport latency, so grace only has to cover *jitter*: trades
#: from the two SIPs and the TRFs interleave out of timestamp order by a few ms, and Polygon batches events into
#: frames every few ms. 30 ms covers that with margin while keeping a 100 ms bar no more than ~a third of a
#: window late.
DEFAULT_GRACE_MS = 30

_I64_MAX = NO_SEQ
_NO_WINDOW = int(np.iinfo(np.int64).min)  # "no open window" in the per-series cache; never a real window start
_NEVER = -(2**62)  # "nothing closed yet"


def _nonzero(a: np.ndarray) -> np.ndarray:
    # np.flatnonzero without its Python-level wrapper, which shows in profiles at these array sizes
    return a.nonzero()[0]


class _FlagLut:
    """Per flag mask (0..7): the neutral-value tables BarBook.add uses instead of subsetting rows."""

    def __init__(self) -> None:
        masks = range(UPDATES_ALL + 1)
        self.hi_add = np.array([0.0 if f & UPDATES_HIGH_LOW else -np.inf for f in masks])
        self.lo_add = np.array([0.0 if f & UPDATES_HIGH_LOW else np.inf for f in masks])
        self.vol_mul = np.array([1.0 if f & UPDATES_VOLUME else 0.0 for f in masks])
        self.oc = np.array([bool(f & UPDATES_OPEN_CLOSE) for f in masks])
        self.hl_only = np.array([f & (UPDATES_OPEN_CLOSE | UPDATES_HIGH_LOW) == UPDATES_HIGH_LOW for f in masks])


_FLAG_LUT = _FlagLut()


# Per-bar columns and the value a free slot holds (slots are reset when freed, so allocation is cheap).
_FLOAT_COLS = {"o": 0.0, "c": 0.0, "h": -np.inf, "l": np.inf, "v": 0.0, "pv": 0.0, "xo": 0.0, "xc": 0.0}
_INT_COLS = {
    "n": 0,
    "first": _I64_MAX,  # arrival seq of the open (first open/close trade); MAX: none yet
    "last": -1,  # arrival seq of the close
    "xfirst": _I64_MAX,  # same over high/low-only trades, the o/c fallback
    "xlast": -1,
    "end": _I64_MAX,  # e; MAX marks a free slot
    "s": 0,
    "tid": 0,
    "k": 0,
    "ivl": 0,
}


class BarBook:
    """Open millisecond bars of one cluster for a set of ``(interval_ms, ticker)`` subscriptions.

    ``grace_ms`` is how long a window stays open after its end (see :data:`DEFAULT_GRACE_MS`). ``rules`` serve the
    book's own :attr:`decoder`; the book itself reads the flags already in each batch. Batches from any decoder are
    accepted: ids of a foreign :class:`SymbolTable` are mapped by name.

    Counters: ``trades_in`` (all trades added), ``late_trades`` (trades late for at least one of their windows; they
    still count in the windows that were open), ``bars_out``, ``volume_only_windows`` (closed without a bar),
    ``open_bars``.
    """

    def __init__(
        self,
        cluster: str,
        rules: ConditionRules | None = None,
        grace_ms: int = DEFAULT_GRACE_MS,
        symbols: SymbolTable | None = None,
    ) -> None:
        info = CLUSTERS.get(cluster)
        if info is None or not info.has_bars:
            raise ValueError(f"no trades to build bars from on cluster {cluster!r}")
        if int(grace_ms) < 0:
            raise ValueError("grace_ms must be >= 0")
        self.cluster = cluster
        self.grace_ms = int(grace_ms)
        self.rules = rules if rules is not None else default_rules(cluster)
        self.symbols = symbols if symbols is not None else SymbolTable()
        self._float_volume = cluster == "crypto"
        self._decoder: TradeDecoder | None = None

        self.trades_in = 0
        self.late_trades = 0
        self.bars_out = 0
        self.volume_only_windows = 0

        # Subscriptions. Each distinct interval has a column k; a series (ticker, interval) is sid = tid * kcap + k.
        self._subs: frozenset[tuple[int, str]] = frozenset()
        self._intervals: list[int] = []  # k -> interval ms; 0 = free column
        self._k_of: dict[int, int] = {}
        self._kcap = 4
        self._tcap = 0
        self._wild = np.zeros(self._kcap, bool)
        self._want = np.zeros((0, self._kcap), bool)  # [tid, k]: ticker subscribed by name
        self._plan: list[tuple[int, int, bool]] = []  # (k, interval, wildcard) for each interval in use
        self._all_wild = False
        self._wild_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see _rows
        self._arange_buf = np.arange(0, dtype=np.int64)
        # The two newest open windows per series (start, slot): nearly every trade hits one of them, so only
        # trades opening a window (or very late within grace) go through the dict below.
        self._cur_s = np.empty(0, np.int64)
        self._cur_slot = np.empty(0, np.int64)
        self._prev_s = np.empty(0, np.int64)
        self._prev_slot = np.empty(0, np.int64)

        # Open bars: one slot per (series, window), columns below; the dict finds a slot by (sid, s).
        self._index: dict[tuple[int, int], int] = {}
        self._cap = 0
        self._hw = 0  # slots ever used; scans stop here
        self._free: list[int] = []
        self._cols: dict[str, np.ndarray] = {}
        self._grow_slots(1024)
        self._closed_through = _NEVER
        self._next_end = _I64_MAX  # min e over open bars, so close_due can return at once
        self._foreign: tuple[SymbolTable, np.ndarray] | None = None

    # -- public ---------------------------------------------------------------------------------------------------

    @property
    def decoder(self) -> TradeDecoder:
        """A :class:`TradeDecoder` for this cluster sharing the book's symbol table and rules (no id remapping)."""
        if self._decoder is None:
            self._decoder = TradeDecoder(self.cluster, self.rules, self.symbols)
        return self._decoder

    @property
    def open_bars(self) -> int:
        return len(self._index)

    @property
    def subscriptions(self) -> frozenset[tuple[int, str]]:
        return self._subs

    def set_subscriptions(self, subs: Iterable[tuple[int, str]]) -> None:
        """Build bars for exactly these ``(interval_ms, ticker)`` pairs from now on; ticker ``"*"`` is every ticker.

        Open bars of pairs still wanted are kept; the others are dropped without being emitted.
        Raises :class:`ValueError` for an interval outside 1..60000 or an empty ticker.
        """
        wild: set[int] = set()
        named: dict[int, set[str]] = {}
        clean: set[tuple[int, str]] = set()
        for interval, ticker in subs:
            if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)):
                raise ValueError(f"interval must be an int, not {interval!r}")
            interval = int(interval)
            if not MIN_BAR_MS <= interval <= MAX_BAR_MS:
                raise ValueError(f"interval out of range {MIN_BAR_MS}..{MAX_BAR_MS} ms: {interval}")
            if not isinstance(ticker, str) or not ticker:
                raise ValueError(f"ticker must be a non-empty string, not {ticker!r}")
            clean.add((interval, ticker))
            if ticker == "*":
                wild.add(interval)
            else:
                named.setdefault(interval, set()).add(ticker)
        named_ids = {iv: np.array([self.symbols.id(t) for t in ts], np.int64) for iv, ts in named.items()}

        # Drop bars no longer wanted, while their columns still mean the old intervals.
        open_slots = self._open_slots()
        if len(open_slots):
            ivl = self._cols["ivl"][open_slots]
            tid = self._cols["tid"][open_slots]
            keep = np.isin(ivl, np.fromiter(wild, np.int64, len(wild)))
            for iv, ids in named_ids.items():
                keep |= (ivl == iv) & np.isin(tid, ids)
            self._release(open_slots[~keep])

        needed = wild | named.keys()
        for iv in [iv for iv in self._k_of if iv not in needed]:
            self._intervals[self._k_of.pop(iv)] = 0
        for iv in sorted(needed - self._k_of.keys()):
            k = self._intervals.index(0) if 0 in self._intervals else len(self._intervals)
            if k == len(self._intervals):
                self._intervals.append(0)
            if k >= self._kcap:
                self._grow_kcap(k + 1)
            self._intervals[k] = iv
            self._k_of[iv] = k

        self._grow_tickers(len(self.symbols))
        self._wild = np.zeros(self._kcap, bool)
        self._want = np.zeros((self._tcap, self._kcap), bool)
        for iv in wild:
            self._wild[self._k_of[iv]] = True
        for iv, ids in named_ids.items():
            self._want[ids, self._k_of[iv]] = True
        self._plan = sorted((k, iv, bool(self._wild[k])) for iv, k in self._k_of.items())
        self._all_wild = bool(self._plan) and all(w for _, _, w in self._plan)
        self._wild_rows = None
        self._subs = frozenset(clean)

    def add(self, batch: TradeBatch) -> int:
        """Merge a batch (trades in arrival order) into the open bars; returns how many of its trades were late."""
        n = len(batch)
        seq0 = self.trades_in
        self.trades_in += n
        if n == 0 or not self._plan:
            return 0
        tid = batch.tid if batch.symbols is self.symbols else self._remap(batch)
        if len(self.symbols) > self._tcap:
            self._grow_tickers(len(self.symbols))
        t, price, size, flags = batch.t, batch.price, batch.size, batch.flags
        if flags.min() == UPDATES_ALL:  # the common case: every trade updates everything
            fl = None
            seq = self._arange(n) + seq0
        else:
            keep = _nonzero(flags)  # trades updating nothing never touch a bar
            if len(keep) == 0:
                return 0
            if len(keep) < n:
                t, price, size, flags, tid = t[keep], price[keep], size[keep], flags[keep], tid[keep]
                seq = keep + seq0
            else:
                seq = self._arange(n) + seq0
            fl = flags
        m = len(t)

        # Rows: one per (trade, subscribed interval); ridx points at the trade.
        rows = self._rows(tid, m)
        if rows is None:
            return 0
        ridx, rivl, rk = rows
        tr = t[ridx]
        s = tr - tr % rivl
        late_count = 0
        threshold = self._closed_through - self.grace_ms
        if self._closed_through != _NEVER and int(t.min()) < threshold:  # e > t, so else nothing can be late
            late = s + rivl <= threshold
            if late.any():
                late_count = len(np.unique(ridx[late]))
                self.late_trades += late_count
                ok = _nonzero(~late)
                if len(ok) == 0:
                    return late_count
                ridx, rivl, rk, s = ridx[ok], rivl[ok], rk[ok], s[ok]

        sid = tid.astype(np.int64)[ridx] * self._kcap + rk
        slot = self._cur_slot[sid]
        miss = self._cur_s[sid] != s
        if miss.any():
            self._find_slots(slot, miss, sid, s, rivl)

        c = self._cols
        np.add.at(c["n"], slot, 1)
        if fl is None:
            pr = price[ridx]
            np.maximum.at(c["h"], slot, pr)
            np.minimum.at(c["l"], slot, pr)
            sz = size[ridx]
            np.add.at(c["v"], slot, sz)
            np.add.at(c["pv"], slot, pr * sz)
            self._first_last(slot, seq[ridx], pr, "first", "last", "o", "c", eligible=True)
            return late_count

        # Mixed conditions: instead of subsetting rows per flag, give ineligible trades a neutral value
        # (-inf/+inf for high/low, size 0 for volume, seq -1 for open/close), computed per trade, then per row.
        # Adding 0.0 leaves a float sum unchanged, so the arrival-order sums stay exact.
        lut = _FLAG_LUT
        np.maximum.at(c["h"], slot, (price + lut.hi_add[fl])[ridx])
        np.minimum.at(c["l"], slot, (price + lut.lo_add[fl])[ridx])
        sz_t = size * lut.vol_mul[fl]
        np.add.at(c["v"], slot, sz_t[ridx])
        np.add.at(c["pv"], slot, (price * sz_t)[ridx])
        pr = price[ridx]
        self._first_last(slot, np.where(lut.oc[fl], seq, -1)[ridx], pr, "first", "last", "o", "c")
        hl_only = lut.hl_only[fl]
        if hl_only.any():  # rare trades: work on their rows only
            sub = _nonzero(hl_only[ridx])
            self._first_last(slot[sub], seq[ridx[sub]], pr[sub], "xfirst", "xlast", "xo", "xc", eligible=True)
        return late_count

    def close_due(self, now_ms: int) -> list[bytes]:
        """Close every open bar with ``e + grace <= now_ms`` (market-clock time) and return its ``MB`` event JSON,
        one object per item, ordered by ``(e, ticker, interval)``. From now on trades for windows with
        ``e + grace <= now_ms`` are late. Without open bars this does nothing at all (see the module docstring).
        """
        if not self._index:
            return []
        now = int(now_ms)
        if now > self._closed_through:
            self._closed_through = now
        limit = now - self.grace_ms
        if self._next_end > limit:
            return []
        end = self._cols["end"][: self._hw]
        due = _nonzero(end <= limit)
        out = self._emit(due)
        self._release(due)
        return out

    # -- merging --------------------------------------------------------------------------------------------------

    def _arange(self, m: int) -> np.ndarray:
        if len(self._arange_buf) < m:
            self._arange_buf = np.arange(max(m, 2 * len(self._arange_buf), 1024), dtype=np.int64)
            self._arange_buf.flags.writeable = False
        return self._arange_buf[:m]

    def _rows(self, tid: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(trade index, interval, interval column) per row. Rows of one slot are always in arrival order."""
        if self._all_wild:
            # Every trade feeds every interval: trade-major rows, sliced from one template for any batch size.
            count = len(self._plan)
            tpl = self._wild_rows
            if tpl is None or len(tpl[0]) < m * count:
                cap = max(m, 2 * (len(tpl[0]) // count if tpl is not None else 0), 1024)
                ks = np.array([k for k, _, _ in self._plan], np.int64)
                ivls = np.array([iv for _, iv, _ in self._plan], np.int64)
                tpl = (np.repeat(np.arange(cap, dtype=np.int64), count), np.tile(ivls, cap), np.tile(ks, cap))
                for a in tpl:
                    a.flags.writeable = False
                self._wild_rows = tpl
            rows = m * count
            return tpl[0][:rows], tpl[1][:rows], tpl[2][:rows]
        everyone = self._arange(m)
        parts, ivls, ks, counts = [], [], [], []
        for k, interval, wildcard in self._plan:
            part = everyone if wildcard else _nonzero(self._want[tid, k])
            if len(part):
                parts.append(part)
                ivls.append(interval)
                ks.append(k)
                counts.append(len(part))
        if not parts:
            return None
        return (
            np.concatenate(parts),
            np.repeat(np.array(ivls, np.int64), counts),
            np.repeat(np.array(ks, np.int64), counts),
        )

    def _first_last(
        self,
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
        no eligible trade yet: that price is never read (the slot's first stays MAX) and a real trade replaces it.
        """
        c = self._cols
        first = c[first_col]
        need = _nonzero(first[slot] == _I64_MAX)  # only bars without an open yet can get one
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

    def _find_slots(self, slot: np.ndarray, miss: np.ndarray, sid: np.ndarray, s: np.ndarray, ivl: np.ndarray) -> None:
        """Fill ``slot`` where the newest-window cache missed: the previous window, an older one, or a new one."""
        rows = _nonzero(miss)
        msid = sid[rows]
        prev = _nonzero(self._prev_s[msid] == s[rows])
        if len(prev):
            slot[rows[prev]] = self._prev_slot[msid[prev]]
            if len(prev) == len(rows):
                return
            rows = np.delete(rows, prev)
        index = self._index
        found: list[int] = []
        new_slots: list[int] = []
        new_rows: list[int] = []
        for row, key in zip(rows.tolist(), zip(sid[rows].tolist(), s[rows].tolist())):
            sl = index.get(key)
            if sl is None:
                sl = self._free.pop() if self._free else self._new_slot()
                index[key] = sl
                new_slots.append(sl)
                new_rows.append(row)
            found.append(sl)
        slot[rows] = found
        if not new_slots:
            return
        cols = self._cols
        ns = np.array(new_slots, np.int64)
        nr = np.array(new_rows, np.int64)
        nsid, nstart, nivl = sid[nr], s[nr], ivl[nr]
        cols["tid"][ns] = nsid // self._kcap
        cols["k"][ns] = nsid % self._kcap
        cols["ivl"][ns] = nivl
        cols["s"][ns] = nstart
        nend = nstart + nivl
        cols["end"][ns] = nend
        self._next_end = min(self._next_end, int(nend.min()))
        # Keep each series' cache on its two newest windows.
        cur_s, cur_slot, prev_s, prev_slot = self._cur_s, self._cur_slot, self._prev_s, self._prev_slot
        if len(np.unique(nsid)) == len(nsid):  # the usual case: vectorised
            newest = nstart > cur_s[nsid]
            up = nsid[newest]
            prev_s[up] = cur_s[up]
            prev_slot[up] = cur_slot[up]
            cur_s[up] = nstart[newest]
            cur_slot[up] = ns[newest]
            older = ~newest
            older[older] = nstart[older] > prev_s[nsid[older]]
            prev_s[nsid[older]] = nstart[older]
            prev_slot[nsid[older]] = ns[older]
            return
        # A batch opened several windows of one series: one at a time.
        for sd, st, sl in zip(nsid.tolist(), nstart.tolist(), new_slots):
            if st > cur_s[sd]:
                prev_s[sd] = cur_s[sd]
                prev_slot[sd] = cur_slot[sd]
                cur_s[sd] = st
                cur_slot[sd] = sl
            elif st > prev_s[sd]:
                prev_s[sd] = st
                prev_slot[sd] = sl

    # -- closing --------------------------------------------------------------------------------------------------

    def _emit(self, due: np.ndarray) -> list[bytes]:
        out, volume_only = encode_bars(self._cols, due, self.symbols.names, self._float_volume)
        self.volume_only_windows += volume_only
        self.bars_out += len(out)
        return out

    def _release(self, slots: np.ndarray) -> None:
        """Free slots: forget their keys, invalidate the series cache, reset columns to the empty-bar values."""
        if len(slots) == 0:
            return
        c = self._cols
        sid = c["tid"][slots] * self._kcap + c["k"][slots]
        index = self._index
        for key in zip(sid.tolist(), c["s"][slots].tolist()):
            del index[key]
        m = self._cur_slot[sid] == slots
        self._cur_s[sid[m]] = _NO_WINDOW
        m = self._prev_slot[sid] == slots
        self._prev_s[sid[m]] = _NO_WINDOW
        for name, value in _FLOAT_COLS.items():
            c[name][slots] = value
        for name in ("n", "first", "last", "xfirst", "xlast", "end"):
            c[name][slots] = _INT_COLS[name]
        self._free.extend(slots.tolist())
        if index:
            self._next_end = int(c["end"][: self._hw].min())
        else:
            self._next_end = _I64_MAX

    def _open_slots(self) -> np.ndarray:
        return _nonzero(self._cols["end"][: self._hw] != _I64_MAX)

    # -- storage --------------------------------------------------------------------------------------------------

    def _new_slot(self) -> int:
        if self._hw == self._cap:
            self._grow_slots(self._cap * 2)
        self._hw += 1
        return self._hw - 1

    def _grow_slots(self, cap: int) -> None:
        old = self._cap
        for name, value in _FLOAT_COLS.items():
            col = np.full(cap, value, np.float64)
            if old:
                col[:old] = self._cols[name]
            self._cols[name] = col
        for name, value in _INT_COLS.items():
            col = np.full(cap, value, np.int64)
            if old:
                col[:old] = self._cols[name]
            self._cols[name] = col
        self._cap = cap

    def _grow_tickers(self, count: int) -> None:
        if count <= self._tcap:
            return
        tcap = max(count, 2 * self._tcap, 64)
        want = np.zeros((tcap, self._kcap), bool)
        want[: self._tcap] = self._want
        self._want = want
        extra = (tcap - self._tcap) * self._kcap
        for name in ("_cur_s", "_prev_s"):
            setattr(self, name, np.concatenate([getattr(self, name), np.full(extra, _NO_WINDOW, np.int64)]))
        for name in ("_cur_slot", "_prev_slot"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra, np.int64)]))
        self._tcap = tcap

    def _grow_kcap(self, needed: int) -> None:
        """Widen the interval columns; sids change, so re-key the cache and the index."""
        old = self._kcap
        kcap = old
        while kcap < needed:
            kcap *= 2
        for name in ("_cur_s", "_cur_slot", "_prev_s", "_prev_slot"):
            arr = getattr(self, name)
            fill = _NO_WINDOW if name.endswith("_s") else 0
            wide = np.full((self._tcap, kcap), fill, np.int64)
            wide[:, :old] = arr.reshape(self._tcap, old)
            setattr(self, name, wide.reshape(-1))
        want = np.zeros((self._tcap, kcap), bool)
        want[:, :old] = self._want
        self._want = want
        wild = np.zeros(kcap, bool)
        wild[:old] = self._wild
        self._wild = wild
        self._kcap = kcap
        slots = self._open_slots()
        sid = self._cols["tid"][slots] * kcap + self._cols["k"][slots]
        self._index = dict(zip(zip(sid.tolist(), self._cols["s"][slots].tolist()), slots.tolist()))

    def _remap(self, batch: TradeBatch) -> np.ndarray:
        table = batch.symbols
        if self._foreign is None or self._foreign[0] is not table:
            self._foreign = (table, np.empty(0, np.int32))
        mapping = self._foreign[1]
        if len(mapping) < len(table):
            more = [self.symbols.id(name) for name in table.names[len(mapping) :]]
            mapping = np.concatenate([mapping, np.array(more, np.int32)])
            self._foreign = (table, mapping)
        return mapping[batch.tid]
