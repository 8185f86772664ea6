"""Millisecond bars from trades (DESIGN §2, "Millisecond bars"): the pure, I/O-free core of ``ms_aggregator``.

:class:`BarBook` merges :class:`~ms_aggregator.decode.TradeBatch` es into the open bars of every subscribed
``(ticker, interval)`` and closes them on ticks, as ``MB`` JSON. Time is always an argument (Unix ms of the
*local* clock); nothing here reads a clock or does I/O. Bar values follow :mod:`ms_aggregator.merge`.

**Clocks.** Every trade's source (its ``x``) has its own market clock (:mod:`ms_aggregator.clock`): a tick at
local time ``L`` moves source S's horizon ``H_S`` to ``L - offset_S`` (never back). A source is *recent* for a
ticker if it traded the ticker in the current or the previous hold epoch (``local // hold_ms``). A ticker's
horizon is the oldest ``H_S`` of its recent sources (the cluster's newest horizon if none is recent).

**Closing.** At each tick, an open window ``[s, e)`` closes when ``e + grace <= `` its ticker's horizon: every
source that trades the ticker has passed it. Bars come out ordered by ``(e, ticker, interval)``.

**Lateness.** A trade for a window that is open is merged. Otherwise its window is *late* if its ticker already
closed a window ending at or after ``e``, or if ``e + grace`` is at or before the oldest horizon (as of the last
tick) of the ticker's recent sources, the trade's own included: the same trade is late or not whatever other
tickers do, and a slow source is judged by its own clock. Late windows are dropped and counted, or with
``late="amend"`` corrected (:mod:`ms_aggregator.amend`). Trades whose conditions update nothing never touch a bar.

**Partial bars** follow :mod:`ms_aggregator.coverage`. **Memory**: a ticker that has not traded for ``idle_ms``
(counted from the end of the hold epoch of its last trade), with no open or kept window and no subscription by
name, gives its id and per-ticker state back; arrays shrink when few ids or slots are in use.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from common.clusters import CLUSTERS
from common.topics import MAX_BAR_MS, MIN_BAR_MS
from ms_aggregator import lookup
from ms_aggregator.amend import DEFAULT_AMEND_MAX_BARS, LATE_POLICIES, Amendments
from ms_aggregator.bar_event import encode_bars
from ms_aggregator.clock import NEVER, SourceClocks
from ms_aggregator.conditions import UPDATES_ALL, ConditionRules, default_rules
from ms_aggregator.coverage import PENDING, Coverage
from ms_aggregator.decode import SourceTable, SymbolTable, TradeBatch, TradeDecoder
from ms_aggregator.memory import evict_idle, footprint
from ms_aggregator.merge import merge_rows
from ms_aggregator.plan import Plan
from ms_aggregator.slots import Slots
from ms_aggregator.tickers import Tickers

__all__ = ["DEFAULT_AMEND_MAX_BARS", "DEFAULT_AMEND_WINDOW_MS", "DEFAULT_GRACE_MS", "DEFAULT_HOLD_MS", "DEFAULT_IDLE_MS", "BarBook"]

#: How long after ``e`` (on the clocks of the ticker's sources) a window stays open. Each source's clock already
#: absorbs the constant part of its offset and transport latency, so grace only has to cover *jitter*: trades
#: interleave out of timestamp order by a few ms and upstream frames are batched every few ms.
DEFAULT_GRACE_MS = 30
DEFAULT_HOLD_MS = 60_000  # a source stays recent for a ticker 1-2 of these after its last trade of it
DEFAULT_IDLE_MS = 600_000
DEFAULT_AMEND_WINDOW_MS = 60_000
EVICT_EVERY_MS = 1000
_INF = PENDING
_NO_END = int(np.iinfo(np.int64).max)


def _nonzero(a: np.ndarray) -> np.ndarray:
    return a.nonzero()[0]


class BarBook:
    """Open millisecond bars of one cluster for a set of ``(interval_ms, ticker)`` subscriptions.

    Counters: ``trades_in``, ``late_trades`` (trades late for at least one of their windows; they still count in
    the windows that were open), ``late_amended`` (of those, trades that corrected a bar), ``bars_out``,
    ``volume_only_windows`` (closed without a bar), ``evicted`` (tickers given back).
    """

    def __init__(self, cluster: str, rules: ConditionRules | None = None, grace_ms: int = DEFAULT_GRACE_MS,
                 symbols: SymbolTable | None = None, *, sources: SourceTable | None = None, late: str = "drop",
                 amend_window_ms: int = DEFAULT_AMEND_WINDOW_MS, amend_max_bars: int = DEFAULT_AMEND_MAX_BARS,
                 hold_ms: int = DEFAULT_HOLD_MS, idle_ms: int = DEFAULT_IDLE_MS) -> None:
        info = CLUSTERS.get(cluster)
        if info is None or not info.has_bars:
            raise ValueError(f"no trades to build bars from on cluster {cluster!r}")
        if int(grace_ms) < 0 or int(amend_window_ms) < 0 or int(hold_ms) <= 0 or int(idle_ms) <= 0:
            raise ValueError("grace_ms and amend_window_ms must be >= 0, hold_ms and idle_ms > 0")
        if late not in LATE_POLICIES:
            raise ValueError(f"late must be one of {', '.join(LATE_POLICIES)}, not {late!r}")
        self.cluster = cluster
        self.grace_ms, self.hold_ms, self.idle_ms = int(grace_ms), int(hold_ms), int(idle_ms)
        self.late = late
        self.rules = rules if rules is not None else default_rules(cluster)
        self.symbols = symbols if symbols is not None else SymbolTable()
        self.sources = sources if sources is not None else SourceTable()
        self._float_volume = cluster == "crypto"
        self._decoder: TradeDecoder | None = None
        self.clocks = SourceClocks(self.sources)
        self.slots = Slots()
        self.tickers = Tickers()
        self.coverage = Coverage()
        self.amends = Amendments(amend_window_ms, self._float_volume, amend_max_bars) if late == "amend" else None
        self.trades_in = self.late_trades = self.late_amended = self.bars_out = 0
        self.volume_only_windows = self.evicted = 0
        self._subs: frozenset[tuple[int, str]] = frozenset()
        self.plan = Plan()  # interval columns: a series (ticker, interval) is sid = tid * kcap + k
        self._foreign: tuple[SymbolTable, np.ndarray] | None = None
        self._next_evict = NEVER
        # When the next tick needs to look at the open windows at all (see _worth_a_scan).
        self._fresh_end = self._rescan_at = NEVER
        self._scan_epoch = NEVER

    # -- public ---------------------------------------------------------------------------------------------------

    @property
    def decoder(self) -> TradeDecoder:
        """A :class:`TradeDecoder` for this cluster sharing the book's symbol and source tables and rules (no id
        remapping)."""
        if self._decoder is None:
            self._decoder = TradeDecoder(self.cluster, self.rules, self.symbols, self.sources)
        return self._decoder

    @property
    def open_bars(self) -> int:
        return len(self.slots)

    @property
    def subscriptions(self) -> frozenset[tuple[int, str]]:
        return self._subs

    @property
    def market_ms(self) -> int | None:
        """The cluster's market clock (its newest source horizon) as of the last tick; None before any."""
        return None if self.clocks.market_ms == NEVER else self.clocks.market_ms

    def set_subscriptions(self, subs: Iterable[tuple[int, str]]) -> None:
        """Build bars for exactly these ``(interval_ms, ticker)`` pairs from now on; ticker ``"*"`` is every ticker.

        Open bars of pairs still wanted are kept; the others are dropped without being emitted. A pair new to
        the book is covered from the cluster's market clock on: its windows that began earlier are partial.
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
            (wild.add(interval) if ticker == "*" else named.setdefault(interval, set()).add(ticker))
        named_ids = {iv: np.array([self.symbols.id(t) for t in ts], np.int64) for iv, ts in named.items()}
        self.tickers.grow(len(self.symbols))
        T, c = self.tickers, self.slots.cols

        # Drop bars no longer wanted, while their columns still mean the old intervals.
        open_slots = self.slots.open_slots()
        if len(open_slots):
            ivl, tid = c["ivl"][open_slots], c["tid"][open_slots]
            keep = np.isin(ivl, np.fromiter(wild, np.int64, len(wild)))
            for iv, ids in named_ids.items():
                keep |= (ivl == iv) & np.isin(tid, ids)
            self._release(open_slots[~keep])

        def widen(columns: int) -> int:
            if T.widen(columns):
                self._rekey()
            return T.kcap

        self.plan.assign(wild, set(named), widen)
        T.want[:] = False
        for iv, ids in named_ids.items():
            T.want[ids, self.plan.k_of[iv]] = True
        self._subs = frozenset(clean)
        self.coverage.subscribe(clean, self.clocks.market_ms)
        if self.amends is not None:
            self.amends.retain_only(lambda iv, ticker: iv in wild or ticker in named.get(iv, ()))

    def link_down(self) -> None:
        """The upstream went away: open windows, and windows ending after the slowest source's horizon (less
        grace), may be missing trades."""
        slowest = self.clocks.slowest()
        g0 = slowest - self.grace_ms if slowest != NEVER else NEVER
        if self.coverage.link_down(g0):
            open_slots = self.slots.open_slots()
            c = self.slots.cols
            c["partial"][open_slots[c["end"][open_slots] > g0]] = 1

    def link_up(self) -> None:
        """The upstream is back: windows that began before the cluster's market clock may be missing trades."""
        self.coverage.link_up(self.clocks.market_ms)

    def add(self, batch: TradeBatch, local_ms: int) -> int:
        """Merge a batch (trades in arrival order) that arrived at ``local_ms``; returns how many trades were late."""
        n = len(batch)
        seq0 = self.trades_in
        self.trades_in += n
        if n == 0:
            return 0
        local = int(local_ms)
        tid = batch.tid if batch.symbols is self.symbols else self._remap(batch)
        T = self.tickers
        T.grow(len(self.symbols))
        src = batch.src if batch.sources is self.sources else self._remap_sources(batch)
        self.clocks.observe(local, src, batch.t)
        if self.coverage.pending:
            self.coverage.resolve(self.clocks.market_at(local))
        epoch = local // self.hold_ms
        T.touch(tid, src, epoch)
        if not self.plan:
            return 0
        t, price, size, flags = batch.t, batch.price, batch.size, batch.flags
        if flags.min() == UPDATES_ALL:  # the common case: every trade updates everything
            fl = None
            seq = self.plan.arange(n) + seq0
        else:
            keep = _nonzero(flags)  # trades updating nothing never touch a bar
            if len(keep) == 0:
                return 0
            if len(keep) < n:
                t, price, size, flags, tid = t[keep], price[keep], size[keep], flags[keep], tid[keep]
                seq = keep + seq0
            else:
                seq = self.plan.arange(n) + seq0
            fl = flags
        rows = self.plan.rows(tid, T.want)
        if rows is None:
            return 0
        ridx, rivl, rk = rows
        tr = t[ridx]
        s = tr - tr % rivl
        tid_r = tid[ridx]
        sid = tid_r * T.kcap + rk
        late_count = 0
        clock = self.clocks.market_ms
        if clock != NEVER and int(t.min()) + 1 + self.grace_ms <= clock:  # e > t: else nothing can be late
            late = self._late_rows(sid, s, rivl, tid_r, epoch, clock)
            if len(late):
                late_count = self._on_late(late, ridx, rivl, rk, s, tid_r, seq, price, size, fl, clock)
                ok = np.ones(len(ridx), bool)
                ok[late] = False
                ok = _nonzero(ok)
                if len(ok) == 0:
                    return late_count
                ridx, rivl, rk, s, sid = ridx[ok], rivl[ok], rk[ok], s[ok], sid[ok]
        slot = T.cur_slot[sid]
        miss = T.cur_s[sid] != s
        if miss.any():
            new_slots, new_rows = lookup.find(T, self.slots, slot, miss, sid, s)
            if len(new_slots):
                self._open(new_slots, sid[new_rows], s[new_rows], rivl[new_rows])
        merge_rows(self.slots.cols, slot, ridx, seq, price, size, fl)
        return late_count

    def close_due(self, local_ms: int) -> list[bytes]:
        """Tick at local time ``local_ms``: move the clocks, then close every open window whose ticker's horizon
        passed ``e + grace`` and return the ``MB`` JSON of the bars, ordered by ``(e, ticker, interval)``,
        followed by corrected bars (``amend``). Also gives idle tickers back, at most once a second."""
        local = int(local_ms)
        clocks = self.clocks
        clocks.tick(local)
        clock = clocks.market_ms
        self.coverage.resolve(clock)
        out: list[bytes] = []
        if len(self.slots) and clock != NEVER and self._worth_a_scan(local, clock - self.grace_ms):
            out = self._scan(local, clock)
        if self.amends is not None:
            out += self.amends.flush()
            self.amends.expire(clock)
        if local >= self._next_evict:
            self._next_evict = local + EVICT_EVERY_MS
            evicted, renumbered = evict_idle(self, local)
            self.evicted += evicted
            if evicted or renumbered:
                self._foreign = None  # ids of a foreign table are mapped to ours afresh
        return out

    def _worth_a_scan(self, local: int, limit: int) -> bool:
        """Whether a window may have become due since the last scan: a window not examined then now ends at or
        before ``limit``, a window held for a slow source may have been released by now (a horizon moves at most
        1 ms per ms while no estimate changes), an estimate changed, or the hold epoch moved on."""
        return (self._fresh_end <= limit or local >= self._rescan_at or self.clocks.changed
                or local // self.hold_ms != self._scan_epoch)

    def _scan(self, local: int, clock: int) -> list[bytes]:
        """Close the windows whose ticker's horizon passed ``e + grace``; note when to look again."""
        self.clocks.changed = False
        self._scan_epoch = local // self.hold_ms
        grace = self.grace_ms
        end = self.slots.cols["end"][: self.slots.hw]
        limit = clock - grace
        cand = (end <= limit).nonzero()[0]  # no ticker's horizon is newer than the cluster's clock
        later = end[end > limit]  # free slots hold FREE, which is later than everything
        self._fresh_end = int(later.min()) if len(later) else _NO_END
        self._rescan_at = _NO_END
        if len(cand) == 0:
            return []
        c = self.slots.cols
        masks = self.tickers.recent(c["tid"][cand], self._scan_epoch)
        horizon = self.clocks.min_horizon(masks, empty=clock)
        wait = end[cand] + grace - horizon  # > 0: held for a source that has not passed it yet
        held = wait > 0
        if held.any():
            self._rescan_at = local + int(wait[held].min())
        due = cand[~held]
        return self._close(due) if len(due) else []

    # -- lateness -------------------------------------------------------------------------------------------------

    def _late_rows(self, sid, s, ivl, tid_r, epoch: int, clock: int) -> np.ndarray:
        """Rows whose window is not open and is over (see the module docstring)."""
        e = s + ivl
        cand = _nonzero(e <= clock - self.grace_ms)  # no ticker horizon is newer than the cluster's clock
        if len(cand) == 0:
            return cand
        T = self.tickers
        is_open = lookup.is_open(T, self.slots, sid[cand], s[cand])
        ctid, ce = tid_r[cand], e[cand]
        horizon = self.clocks.min_horizon(T.recent(ctid, epoch), empty=NEVER)  # no clock known: not over
        late = ~is_open & ((ce <= T.closed_end[ctid]) | (ce <= horizon - self.grace_ms))
        return cand[late]

    def _on_late(self, late, ridx, rivl, rk, s, tid_r, seq, price, size, fl, clock: int) -> int:
        trades = np.unique(ridx[late])
        self.late_trades += len(trades)
        e = s[late] + rivl[late]
        np.maximum.at(self.tickers.closed_end, tid_r[late], e)  # a window judged over stays over
        if self.amends is None:
            return len(trades)
        amended = set()
        names, window = self.symbols.names, self.amends.window_ms
        for row, end in zip(late.tolist(), e.tolist()):
            if clock - end > window:
                continue
            trade = int(ridx[row])
            iv, start, tid = int(rivl[row]), int(s[row]), int(tid_r[row])
            ticker = names[tid]
            series_start = self.coverage.start(iv, ticker, bool(self.plan.wild[rk[row]]),
                                               bool(self.tickers.want[tid, rk[row]]))
            partial = bool(self.coverage.partial(np.array([start]), np.array([end]), np.array([series_start]))[0])
            flags = UPDATES_ALL if fl is None else int(fl[trade])
            if self.amends.amend((ticker, iv, start), float(price[trade]), float(size[trade]), flags, int(seq[trade]),
                                 partial):
                amended.add(trade)
        self.late_amended += len(amended)
        return len(trades)

    # -- merging --------------------------------------------------------------------------------------------------

    def _open(self, ns: np.ndarray, nsid: np.ndarray, nstart: np.ndarray, nivl: np.ndarray) -> None:
        """Initialise new slots, partial or not (:mod:`ms_aggregator.coverage`), and file them."""
        T, cols = self.tickers, self.slots.cols
        ntid, nk = nsid // T.kcap, nsid % T.kcap
        cols["tid"][ns], cols["k"][ns], cols["ivl"][ns], cols["s"][ns] = ntid, nk, nivl, nstart
        nend = nstart + nivl
        cols["end"][ns] = nend
        self._fresh_end = min(self._fresh_end, int(nend.min()))
        cover = self.coverage
        plan = self.plan
        wild_start = np.array([cover.wild.get(iv, _INF) if plan.wild[k] else _INF
                               for k, iv in enumerate(plan.intervals)] or [_INF], np.int64)
        start = wild_start[nk]
        for i in _nonzero(T.want[ntid, nk]).tolist():  # named series: their own start counts too
            start[i] = min(int(start[i]), cover.named.get((int(nivl[i]), self.symbols.names[ntid[i]]), _INF))
        cols["partial"][ns] = cover.partial(nstart, nend, start)
        lookup.place(T, self.slots, ns, nsid, nstart)

    # -- closing and memory ---------------------------------------------------------------------------------------

    def _close(self, due: np.ndarray) -> list[bytes]:
        c = self.slots.cols
        out, volume_only = encode_bars(c, due, self.symbols.names, self._float_volume)
        self.volume_only_windows += volume_only
        self.bars_out += len(out)
        np.maximum.at(self.tickers.closed_end, c["tid"][due], c["end"][due])
        if self.amends is not None:
            self.amends.keep(c, due, self.symbols.names)
        self._release(due)
        return out

    def _release(self, slots: np.ndarray) -> None:
        lookup.forget(self.tickers, self.slots, slots)

    def _rekey(self) -> None:
        self.slots.rekey(self.tickers.kcap)

    @property
    def wildcard_columns(self) -> np.ndarray:
        """Per interval column: subscribed through ``*``."""
        return self.plan.wild[: self.tickers.kcap]

    def memory(self) -> dict:
        """Live tickers and series, open and kept windows, and an estimate of the book's bytes."""
        return footprint(self)

    def _remap_sources(self, batch: TradeBatch) -> np.ndarray:
        mapping = np.array([self.sources[x] for x in batch.sources.keys] or [0], np.intp)
        return mapping[batch.src]

    def _remap(self, batch: TradeBatch) -> np.ndarray:
        table = batch.symbols
        if self._foreign is None or self._foreign[0] is not table:
            self._foreign = (table, np.empty(0, np.intp))
        mapping = self._foreign[1]
        if len(mapping) < len(table):
            more = [self.symbols.id(name) for name in table.names[len(mapping):]]
            mapping = np.concatenate([mapping, np.array(more, np.intp)])
            self._foreign = (table, mapping)
        return mapping[batch.tid]
