"""Millisecond bars from trades (DESIGN §2, "Millisecond bars"): the pure, I/O-free core of ``ms_aggregator``.

Data flow: :class:`TradeDecoder` turns Polygon frames into a :class:`TradeBatch` of numpy columns;
:meth:`BarBook.add` merges a batch into the open bars of every subscribed ``(ticker, interval)``;
:meth:`BarBook.close_due` emits the bars whose window has closed, as ``MB`` event JSON. :class:`ClockSkew` maps the
local clock onto the trades' clock so the shell can call ``book.close_due(skew.market_now(local_now))``.
Nothing here reads a clock or does I/O: time is always an argument, in Unix milliseconds.

Bar semantics, per window ``[s, e)`` with ``s = t - t % N`` on the trade's SIP timestamp ``t`` and ``e = s + N``.
Each trade has a flag mask from its conditions (:mod:`common.conditions`; crypto trades are always all-eligible):

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

import operator
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np

from common.clusters import BAR_EVENT, CLUSTERS
from common.conditions import (
    UPDATES_ALL,
    UPDATES_HIGH_LOW,
    UPDATES_OPEN_CLOSE,
    UPDATES_VOLUME,
    ConditionRules,
    default_rules,
)

__all__ = [
    "DEFAULT_GRACE_MS",
    "MIN_INTERVAL_MS",
    "MAX_INTERVAL_MS",
    "SymbolTable",
    "TradeBatch",
    "TradeDecoder",
    "BarBook",
    "ClockSkew",
]

#: How long after ``e`` (in market time) a window stays open. The :class:`ClockSkew` estimate already absorbs the
#: constant part of the local-vs-SIP offset and of transport latency, so grace only has to cover *jitter*: trades
#: from the two SIPs and the TRFs interleave out of timestamp order by a few ms, and Polygon batches events into
#: frames every few ms. 30 ms covers that with margin while keeping a 100 ms bar no more than ~a third of a
#: window late.
DEFAULT_GRACE_MS = 30
MIN_INTERVAL_MS = 1
MAX_INTERVAL_MS = 60_000

_I64_MAX = int(np.iinfo(np.int64).max)
_NO_WINDOW = int(np.iinfo(np.int64).min)  # "no open window" in the per-series cache; never a real window start
_NEVER = -(2**62)  # "nothing closed yet"
_MASK_CACHE_LIMIT = 4096

_CLUSTER_ASSET_CLASS = {"stocks": "stocks", "options": "options", "crypto": "crypto"}


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


class SymbolTable:
    """Ticker ↔ dense int id. Ids are assigned on first sight and never reused."""

    __slots__ = ("names", "ids", "__weakref__")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ids: dict[str, int] = _AutoIds(self.names)

    def id(self, name: str) -> int:
        """The id of ``name``, assigning the next one if new."""
        return self.ids[name]

    def __len__(self) -> int:
        return len(self.names)


class _AutoIds(dict):
    __slots__ = ("_names",)

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self._names = names

    def __missing__(self, name: str) -> int:
        i = len(self._names)
        self._names.append(name)
        self[name] = i
        return i


@dataclass(frozen=True, slots=True, eq=False)
class TradeBatch:
    """Trades as columns, in arrival order. ``tid`` indexes ``symbols.names``; ``flags`` holds
    :data:`~common.conditions.UPDATES_OPEN_CLOSE` (bit 0), ``UPDATES_HIGH_LOW`` (bit 1), ``UPDATES_VOLUME`` (bit 2).
    """

    symbols: SymbolTable
    tid: np.ndarray  # int32
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    t: np.ndarray  # int64, SIP timestamp, Unix ms
    flags: np.ndarray  # uint8

    def __len__(self) -> int:
        return len(self.t)

    @property
    def max_t(self) -> int | None:
        """The newest trade timestamp, or None for an empty batch (what :meth:`ClockSkew.observe` wants)."""
        return int(self.t.max()) if len(self.t) else None

    @classmethod
    def empty(cls, symbols: SymbolTable) -> TradeBatch:
        return cls(
            symbols,
            np.empty(0, np.int32),
            np.empty(0, np.float64),
            np.empty(0, np.float64),
            np.empty(0, np.int64),
            np.empty(0, np.uint8),
        )


# Wire shapes of the trade events. Tagged on "ev", so a frame holding anything else fails the fast decoder and
# takes the per-event path. Only the fields bars need are declared; msgspec skips the rest. The bounds keep every
# value representable in the numpy columns (and window arithmetic exact); a trade outside them is malformed.
_Size = Annotated[float, msgspec.Meta(ge=0)]
_Millis = Annotated[int, msgspec.Meta(ge=0, lt=2**53)]


class _StockTrade(msgspec.Struct, tag_field="ev", tag="T", gc=False):
    sym: str
    p: float
    s: _Size
    t: _Millis
    c: tuple[int, ...] | None = None  # a tuple is hashable: the condition-mask cache is keyed by it directly


class _CryptoTrade(msgspec.Struct, tag_field="ev", tag="XT", gc=False):
    pair: str
    p: float
    s: _Size
    t: _Millis  # conditions are not decoded: crypto trades are all eligible


class _AnyEvent(msgspec.Struct):
    ev: str = ""


class _MaskCache(dict):
    """Condition tuple → flag mask, filled on demand from the rules."""

    __slots__ = ("_rules",)

    def __init__(self, rules: ConditionRules) -> None:
        super().__init__()
        self._rules = rules

    def __missing__(self, conditions: tuple[int, ...] | None) -> int:
        if len(self) >= _MASK_CACHE_LIMIT:  # hostile input could otherwise grow it without bound
            self.clear()
        mask = self[conditions] = self._rules.mask(conditions)
        return mask


_get_p = operator.attrgetter("p")
_get_s = operator.attrgetter("s")
_get_t = operator.attrgetter("t")
_get_c = operator.attrgetter("c")


class TradeDecoder:
    """Decodes Polygon frames of one cluster into :class:`TradeBatch` es.

    Only the cluster's trade events (``T``; ``XT`` on crypto) are kept; every other event is skipped and counted in
    ``skipped``; trade events missing a field or with a field of the wrong type are skipped and counted in
    ``malformed``. Ticker ids come from ``symbols`` (shared with a :class:`BarBook`; a new table by default).
    """

    def __init__(self, cluster: str, rules: ConditionRules | None = None, symbols: SymbolTable | None = None) -> None:
        info = CLUSTERS.get(cluster)
        if info is None or not info.has_bars:
            raise ValueError(f"no trades to build bars from on cluster {cluster!r}")
        self.cluster = cluster
        self.trade_code: str = info.trade_code  # type: ignore[assignment]
        self.symbols = symbols if symbols is not None else SymbolTable()
        self.rules = rules if rules is not None else default_rules(_CLUSTER_ASSET_CLASS[cluster])
        self.skipped = 0
        self.malformed = 0
        self._crypto = cluster == "crypto"
        trade_type = _CryptoTrade if self._crypto else _StockTrade
        self._fast = msgspec.json.Decoder(list[trade_type])
        self._one = msgspec.json.Decoder(trade_type)
        self._raws = msgspec.json.Decoder(list[msgspec.Raw])
        self._kind = msgspec.json.Decoder(_AnyEvent)
        self._get_sym = operator.attrgetter("pair" if self._crypto else "sym")
        self._masks = _MaskCache(self.rules)

    def decode_frame(self, frame: bytes | str) -> TradeBatch:
        """Decode one websocket text frame (a JSON array of event objects; a lone object is accepted too).

        Raises :class:`msgspec.DecodeError` if the frame is not JSON.
        """
        try:
            trades = self._fast.decode(frame)
        except msgspec.ValidationError:
            trades = self._decode_mixed(frame)
        return self._columns(trades)

    def decode(self, events: Sequence[bytes]) -> TradeBatch:
        """Decode events given one JSON object each (e.g. the items a frame splitter yields)."""
        if not events:
            return TradeBatch.empty(self.symbols)
        return self.decode_frame(b"[" + b",".join(events) + b"]")

    def _decode_mixed(self, frame: bytes | str) -> list:
        try:
            raws: list = self._raws.decode(frame)
        except msgspec.ValidationError:  # valid JSON but not an array: take it as a single event
            raws = [frame]
        trades = []
        for raw in raws:
            try:
                trades.append(self._one.decode(raw))
            except msgspec.ValidationError:
                try:
                    ev = self._kind.decode(raw).ev
                except msgspec.ValidationError:
                    ev = ""
                if ev == self.trade_code:
                    self.malformed += 1
                else:
                    self.skipped += 1
        return trades

    def _columns(self, trades: list) -> TradeBatch:
        n = len(trades)
        if n == 0:
            return TradeBatch.empty(self.symbols)
        # One C-level pass per column (map + attrgetter + fromiter): no per-trade Python bytecode.
        price = np.fromiter(map(_get_p, trades), np.float64, n)
        size = np.fromiter(map(_get_s, trades), np.float64, n)
        t = np.fromiter(map(_get_t, trades), np.int64, n)
        tid = np.fromiter(map(self.symbols.ids.__getitem__, map(self._get_sym, trades)), np.int32, n)
        if self._crypto:
            flags = np.full(n, UPDATES_ALL, np.uint8)
        else:
            flags = np.fromiter(map(self._masks.__getitem__, map(_get_c, trades)), np.uint8, n)
        return TradeBatch(self.symbols, tid, price, size, t, flags)


class _MB(msgspec.Struct, tag_field="ev", tag=BAR_EVENT, gc=False):
    # Field order is the wire order; "ev" (the tag) goes first.
    sym: str
    interval: int
    o: float
    h: float
    l: float  # noqa: E741 - the wire name
    c: float
    v: int | float
    vw: float
    n: int
    s: int
    e: int


_encode = msgspec.json.Encoder().encode

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
        self.rules = rules if rules is not None else default_rules(_CLUSTER_ASSET_CLASS[cluster])
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
            if not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
                raise ValueError(f"interval out of range {MIN_INTERVAL_MS}..{MAX_INTERVAL_MS} ms: {interval}")
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
        if len(due) == 0:
            return []
        c = self._cols
        has_oc = c["first"][due] != _I64_MAX
        priced = has_oc | (c["xfirst"][due] != _I64_MAX)
        if not priced.all():  # volume-only windows: no bar
            self.volume_only_windows += int(len(due) - priced.sum())
            due, has_oc = due[priced], has_oc[priced]
            if len(due) == 0:
                return []
        o = np.where(has_oc, c["o"][due], c["xo"][due])
        cl = np.where(has_oc, c["c"][due], c["xc"][due])
        h, lo = c["h"][due], c["l"][due]
        h = np.where(h == -np.inf, np.maximum(o, cl), h)
        lo = np.where(lo == np.inf, np.minimum(o, cl), lo)
        v = c["v"][due]
        vw = cl.copy()
        np.divide(c["pv"][due], v, out=vw, where=v != 0)  # IEEE division: the same float as pv / v in Python
        if self._float_volume:
            vol: list = v.tolist()
        elif (v == np.floor(v)).all():
            vol = v.astype(np.int64).tolist()
        else:
            vol = [int(x) if x.is_integer() else x for x in v.tolist()]
        names = self.symbols.names
        syms = [names[i] for i in c["tid"][due].tolist()]
        end, ivl = c["end"][due].tolist(), c["ivl"][due].tolist()
        cols = (o.tolist(), h.tolist(), lo.tolist(), cl.tolist(), vol, vw.tolist(), c["n"][due].tolist())
        o_, h_, l_, c_, v_, vw_, n_ = cols
        start = c["s"][due].tolist()
        mb, enc = _MB, _encode
        out = [
            enc(mb(sym, iv, o_[i], h_[i], l_[i], c_[i], v_[i], vw_[i], n_[i], start[i], e))
            for e, sym, iv, i in sorted(zip(end, syms, ivl, range(len(end))))
        ]
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


class ClockSkew:
    """Estimates ``offset = local clock - trade clock`` so that ``market_now(local) = local - offset`` tracks the
    timestamps of the trades arriving now.

    Each observation is ``d = local_now - trade_t``: the clock offset plus that trade's transport latency. The
    estimate is the lower median of per-bucket minima (``bucket_ms`` buckets over the last ``buckets`` of them,
    the current one included). A bucket's minimum is its least-delayed trade, so delayed trades do not inflate it;
    the median over buckets ignores a bucket with a bogus early timestamp. The estimate therefore includes the
    minimal transport latency, and grace only has to absorb jitter above it. A step of the local clock is followed
    within about half the window; until then a forward step can close windows early. No observations: offset 0.
    """

    def __init__(self, bucket_ms: int = 1000, buckets: int = 10) -> None:
        if bucket_ms <= 0 or buckets <= 0:
            raise ValueError("bucket_ms and buckets must be positive")
        self.bucket_ms = int(bucket_ms)
        self.buckets = int(buckets)
        self._done: deque[tuple[int, int]] = deque()  # (bucket number, min d) of completed buckets
        self._bucket: int | None = None
        self._min = 0
        self._offset = 0

    @property
    def offset(self) -> int:
        return self._offset

    def observe(self, local_now_ms: int, trade_t_ms: int | None) -> None:
        """Record that a trade stamped ``trade_t_ms`` arrived at ``local_now_ms``. For a batch, pass its newest
        timestamp (:attr:`TradeBatch.max_t`): the least-delayed trade of the batch. None is ignored."""
        if trade_t_ms is None:
            return
        local = int(local_now_ms)
        d = local - int(trade_t_ms)
        bucket = local // self.bucket_ms
        if bucket == self._bucket:
            if d >= self._min:
                return
            self._min = d
        else:
            if self._bucket is not None:
                self._done.append((self._bucket, self._min))
            self._bucket, self._min = bucket, d
            while self._done and self._done[0][0] <= bucket - self.buckets:
                self._done.popleft()
        mins = sorted([m for _, m in self._done] + [self._min])
        self._offset = mins[(len(mins) - 1) // 2]

    def market_now(self, local_now_ms: int) -> int:
        """The local time mapped onto the trades' clock: what to pass to :meth:`BarBook.close_due`."""
        return int(local_now_ms) - self._offset
