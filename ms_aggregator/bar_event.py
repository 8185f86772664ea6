"""The ``MB`` millisecond-bar event: closed bar columns to wire JSON (DESIGN §2, "Millisecond bars").

Pure: takes bar columns and the rows to emit, returns compact JSON objects in ``(e, ticker, interval)`` order.
``"partial": true`` is written only for a bar that may be missing trades, ``"rev": n`` only for the n-th
correction of a bar; complete first editions carry neither. It never decides *which* bars close; that is
:class:`ms_aggregator.book.BarBook`'s job.
"""

from __future__ import annotations

import msgspec
import numpy as np

from common.clusters import BAR_EVENT
from ms_aggregator.slots import NO_SEQ

__all__ = ["encode_bars"]


class _MB(msgspec.Struct, tag_field="ev", tag=BAR_EVENT, omit_defaults=True, gc=False):
    # Field order is the wire order; "ev" (the tag) goes first. Defaults are left out of the JSON.
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
    partial: bool = False
    rev: int = 0


_encode = msgspec.json.Encoder().encode


def encode_bars(
    c: dict[str, np.ndarray], due: np.ndarray, names: list, float_volume: bool, rev: list[int] | None = None
) -> tuple[list[bytes], int]:
    """The ``MB`` JSON of the bars in rows ``due``, and how many of them were volume-only (no bar, not returned).
    ``rev``: the revision of each row (corrections only)."""
    if len(due) == 0:
        return [], 0
    has_oc = c["first"][due] != NO_SEQ
    priced = has_oc | (c["xfirst"][due] != NO_SEQ)
    volume_only = 0
    if not priced.all():  # volume-only windows: no bar
        volume_only = int(len(due) - priced.sum())
        if rev is not None:
            rev = [r for r, p in zip(rev, priced.tolist()) if p]
        due, has_oc = due[priced], has_oc[priced]
        if len(due) == 0:
            return [], volume_only
    o = np.where(has_oc, c["o"][due], c["xo"][due])
    cl = np.where(has_oc, c["c"][due], c["xc"][due])
    h, lo = c["h"][due], c["l"][due]
    h = np.where(h == -np.inf, np.maximum(o, cl), h)
    lo = np.where(lo == np.inf, np.minimum(o, cl), lo)
    v = c["v"][due]
    vw = cl.copy()
    np.divide(c["pv"][due], v, out=vw, where=v != 0)  # IEEE division: the same float as pv / v in Python
    if float_volume:
        vol: list = v.tolist()
    elif (v == np.floor(v)).all():
        vol = v.astype(np.int64).tolist()
    else:
        vol = [int(x) if x.is_integer() else x for x in v.tolist()]
    syms = [names[i] for i in c["tid"][due].tolist()]
    end, ivl = c["end"][due].tolist(), c["ivl"][due].tolist()
    o_, h_, l_, c_, v_, vw_, n_ = (o.tolist(), h.tolist(), lo.tolist(), cl.tolist(), vol, vw.tolist(),
                                   c["n"][due].tolist())
    start, partial = c["s"][due].tolist(), c["partial"][due].astype(bool).tolist()
    revs = rev if rev is not None else [0] * len(end)
    mb, enc = _MB, _encode
    out = [
        enc(mb(sym, iv, o_[i], h_[i], l_[i], c_[i], v_[i], vw_[i], n_[i], start[i], e, partial[i], revs[i]))
        for e, sym, iv, i in sorted(zip(end, syms, ivl, range(len(end))))
    ]
    return out, volume_only
