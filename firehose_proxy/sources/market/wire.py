"""Polygon event shapes the simulated market writes. Tagged Structs put ``"ev"`` first; field order is the order of
the spec's example payloads."""

from __future__ import annotations

import msgspec


class StockTrade(msgspec.Struct, tag_field="ev", tag="T"):
    sym: str
    x: int
    i: str
    z: int
    p: float
    s: int
    t: int
    q: int


class StockTradeC(msgspec.Struct, tag_field="ev", tag="T"):
    sym: str
    x: int
    i: str
    z: int
    p: float
    s: int
    c: list[int]
    t: int
    q: int


class StockQuote(msgspec.Struct, tag_field="ev", tag="Q"):
    sym: str
    bx: int
    bp: float
    bs: int
    ax: int
    ap: float
    as_: int = msgspec.field(name="as")
    c: int = 0
    i: list[int] = msgspec.field(default_factory=list)
    t: int = 0
    q: int = 0
    z: int = 0


class EquityAgg(msgspec.Struct, tag_field="ev", tag="A"):
    sym: str
    v: int
    av: int
    op: float
    vw: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741  # the wire name
    a: float
    z: int
    s: int
    e: int


class EquityAggM(EquityAgg, tag="AM"):
    pass


class OptionTrade(msgspec.Struct, tag_field="ev", tag="T"):
    sym: str
    x: int
    p: float
    s: int
    c: list[int]
    t: int
    q: int


class OptionQuote(msgspec.Struct, tag_field="ev", tag="Q"):
    sym: str
    bx: int
    ax: int
    bp: float
    ap: float
    bs: int
    as_: int = msgspec.field(name="as")
    t: int = 0
    q: int = 0


class CryptoTrade(msgspec.Struct, tag_field="ev", tag="XT"):
    pair: str
    p: float
    t: int
    s: float
    c: list[int]
    i: int
    x: int
    r: int


class CryptoQuote(msgspec.Struct, tag_field="ev", tag="XQ"):
    pair: str
    bp: float
    bs: float
    ap: float
    as_: float = msgspec.field(name="as")
    t: int = 0
    x: int = 0
    r: int = 0


class CryptoAgg(msgspec.Struct, tag_field="ev", tag="XA"):
    pair: str
    v: float
    vw: float
    z: int
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    s: int
    e: int


class CryptoAggS(CryptoAgg, tag="XAS"):
    pass


class CryptoBook(msgspec.Struct, tag_field="ev", tag="XL2"):
    pair: str
    t: int
    r: int
    x: int
    b: list[list[float]]
    a: list[list[float]]


class ForexQuote(msgspec.Struct, tag_field="ev", tag="C"):
    p: str
    x: int
    a: float
    b: float
    t: int


class ForexAgg(msgspec.Struct, tag_field="ev", tag="CA"):
    pair: str
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    v: int
    s: int


class ForexAggS(ForexAgg, tag="CAS"):
    pass


class PriceBand(msgspec.Struct, tag_field="ev", tag="LULD"):
    T: str
    h: float
    l: float  # noqa: E741
    i: list[int]
    z: int
    t: int
    q: int


class Imbalance(msgspec.Struct, tag_field="ev", tag="NOI"):
    T: str
    t: int
    at: int
    a: str
    i: int
    x: int
    o: int
    p: int
    b: float


class FairValue(msgspec.Struct, tag_field="ev", tag="FMV"):
    fmv: float
    sym: str
    t: int


class LaunchpadValue(msgspec.Struct, tag_field="ev", tag="LV"):
    val: float
    sym: str
    t: int


class IndexValue(msgspec.Struct, tag_field="ev", tag="V"):
    val: float
    T: str
    t: int


class IndexAgg(msgspec.Struct, tag_field="ev", tag="A"):
    sym: str
    op: float
    o: float
    c: float
    h: float
    l: float  # noqa: E741
    s: int
    e: int


class IndexAggM(IndexAgg, tag="AM"):
    pass


encode = msgspec.json.Encoder().encode
