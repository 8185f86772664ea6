"""Polygon trade frames to numpy columns: the aggregator's decoder (pure, no I/O).

:class:`TradeDecoder` turns one websocket frame of a cluster into a :class:`TradeBatch` (ticker id, price, size,
SIP timestamp, source and condition flag mask per trade, in arrival order). Only the cluster's trade events are
kept; everything else is counted and skipped. :class:`SymbolTable` maps tickers to dense ids that can be given
back and reused. It never builds bars and never reads a clock.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np

from common.clusters import CLUSTERS
from ms_aggregator.conditions import UPDATES_ALL, ConditionRules, default_rules

__all__ = ["MAX_SOURCES", "NO_SOURCE", "SourceTable", "SymbolTable", "TradeBatch", "TradeDecoder"]

#: Sources a table tells apart; a source mask is one int64 bit per source, so the 63rd and later share the last.
MAX_SOURCES = 63

_MASK_CACHE_LIMIT = 4096


class SymbolTable:
    """Ticker ↔ dense int id, assigned on first sight. :meth:`release` gives ids back (their ``names`` entry
    becomes None) and new tickers reuse them; :meth:`compact` renumbers the live ones densely.
    ``len()`` is one past the highest id ever handed out (what id-indexed arrays must cover)."""

    __slots__ = ("names", "ids", "free", "name_bytes", "__weakref__")

    def __init__(self) -> None:
        self.names: list[str | None] = []
        self.free: list[int] = []
        self.name_bytes = 0  # sizes of the live name strings, for memory accounting
        self.ids: dict[str, int] = _AutoIds(self)

    def id(self, name: str) -> int:
        """The id of ``name``, assigning one if new."""
        return self.ids[name]

    @property
    def live(self) -> int:
        return len(self.names) - len(self.free)

    def release(self, ids) -> None:
        """Forget these tickers; their ids are reused for tickers seen later."""
        for i in ids:
            name = self.names[i]
            if name is not None:
                del self.ids[name]
                self.name_bytes -= sys.getsizeof(name)
                self.names[i] = None
                self.free.append(i)

    def compact(self) -> np.ndarray:
        """Renumber the live tickers 0..live-1 in id order; returns old id -> new id (-1 for freed ids)."""
        mapping = np.full(len(self.names), -1, np.int64)
        live = [i for i, name in enumerate(self.names) if name is not None]
        mapping[live] = np.arange(len(live))
        names = [self.names[i] for i in live]
        self.names[:] = names
        self.free.clear()
        dict.clear(self.ids)
        self.ids.update((name, i) for i, name in enumerate(names))
        return mapping

    def __len__(self) -> int:
        return len(self.names)


class _AutoIds(dict):
    __slots__ = ("_table",)

    def __init__(self, table: SymbolTable) -> None:
        super().__init__()
        self._table = table

    def __missing__(self, name: str) -> int:
        table = self._table
        if table.free:
            i = table.free.pop()
            table.names[i] = name
        else:
            i = len(table.names)
            table.names.append(name)
        table.name_bytes += sys.getsizeof(name)
        self[name] = i
        return i


class SourceTable(dict):
    """A trade's source (its ``x``: exchange or venue id) -> dense source index, assigned in order of first sight;
    the :data:`MAX_SOURCES`-th and later share the last index. ``keys`` lists the x of each index."""

    __slots__ = ("keys", "__weakref__")

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[int] = []

    def __missing__(self, x: int) -> int:
        index = min(len(self.keys), MAX_SOURCES - 1)
        if index == len(self.keys):
            self.keys.append(x)
        self[x] = index
        return index

    def __len__(self) -> int:  # sources told apart, not x values seen
        return len(self.keys)


@dataclass(frozen=True, slots=True, eq=False)
class TradeBatch:
    """Trades as columns, in arrival order. ``tid`` indexes ``symbols.names``; ``src`` indexes ``sources.keys``
    (the trade's exchange or venue id ``x``, :data:`NO_SOURCE` when absent); ``flags`` holds
    :data:`~ms_aggregator.conditions.UPDATES_OPEN_CLOSE` (bit 0), ``UPDATES_HIGH_LOW`` (bit 1), ``UPDATES_VOLUME`` (bit 2).
    """

    symbols: SymbolTable
    tid: np.ndarray  # intp (numpy indexes fastest with it)
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    t: np.ndarray  # int64, SIP timestamp, Unix ms
    flags: np.ndarray  # uint8
    src: np.ndarray  # intp, source index
    sources: SourceTable

    def __len__(self) -> int:
        return len(self.t)

    @property
    def max_t(self) -> int | None:
        """The newest trade timestamp, or None for an empty batch (what :meth:`ClockSkew.observe` wants)."""
        return int(self.t.max()) if len(self.t) else None

    @classmethod
    def empty(cls, symbols: SymbolTable, sources: SourceTable) -> TradeBatch:
        return cls(
            symbols,
            np.empty(0, np.intp),
            np.empty(0, np.float64),
            np.empty(0, np.float64),
            np.empty(0, np.int64),
            np.empty(0, np.uint8),
            np.empty(0, np.intp),
            sources,
        )


# Wire shapes of the trade events. Tagged on "ev", so a frame holding anything else fails the fast decoder and
# takes the per-event path. Only the fields bars need are declared; msgspec skips the rest. The bounds keep every
# value representable in the numpy columns (and window arithmetic exact); a trade outside them is malformed.
_Size = Annotated[float, msgspec.Meta(ge=0)]
_Millis = Annotated[int, msgspec.Meta(ge=0, lt=2**53)]

#: The source of a trade without ``x``: its own source, like any other id.
NO_SOURCE = -1


class _StockTrade(msgspec.Struct, tag_field="ev", tag="T", gc=False):
    sym: str
    p: float
    s: _Size
    t: _Millis
    c: tuple[int, ...] | None = None  # a tuple is hashable: the condition-mask cache is keyed by it directly
    x: int = NO_SOURCE  # any int: it only keys the source table


class _CryptoTrade(msgspec.Struct, tag_field="ev", tag="XT", gc=False):
    pair: str
    p: float
    s: _Size
    t: _Millis  # conditions are not decoded: crypto trades are all eligible
    x: int = NO_SOURCE


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
_get_x = operator.attrgetter("x")


class TradeDecoder:
    """Decodes Polygon frames of one cluster into :class:`TradeBatch` es.

    Only the cluster's trade events (``T``; ``XT`` on crypto) are kept; every other event is skipped and counted in
    ``skipped``; trade events missing a field or with a field of the wrong type are skipped and counted in
    ``malformed``. Ticker ids come from ``symbols`` and source indices from ``sources`` (shared with a
:class:`BarBook`; new tables by default).
    """

    def __init__(self, cluster: str, rules: ConditionRules | None = None, symbols: SymbolTable | None = None,
                 sources: SourceTable | None = None) -> None:
        info = CLUSTERS.get(cluster)
        if info is None or not info.has_bars:
            raise ValueError(f"no trades to build bars from on cluster {cluster!r}")
        self.cluster = cluster
        self.trade_code: str = info.trade_code  # type: ignore[assignment]
        self.symbols = symbols if symbols is not None else SymbolTable()
        self.sources = sources if sources is not None else SourceTable()
        self.rules = rules if rules is not None else default_rules(cluster)
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
            return TradeBatch.empty(self.symbols, self.sources)
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
            return TradeBatch.empty(self.symbols, self.sources)
        # One C-level pass per column (map + attrgetter + fromiter): no per-trade Python bytecode.
        price = np.fromiter(map(_get_p, trades), np.float64, n)
        size = np.fromiter(map(_get_s, trades), np.float64, n)
        t = np.fromiter(map(_get_t, trades), np.int64, n)
        src = np.fromiter(map(self.sources.__getitem__, map(_get_x, trades)), np.intp, n)
        tid = np.fromiter(map(self.symbols.ids.__getitem__, map(self._get_sym, trades)), np.intp, n)
        if self._crypto:
            flags = np.full(n, UPDATES_ALL, np.uint8)
        else:
            flags = np.fromiter(map(self._masks.__getitem__, map(_get_c, trades)), np.uint8, n)
        return TradeBatch(self.symbols, tid, price, size, t, flags, src, self.sources)
