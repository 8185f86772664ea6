"""Per-second and per-minute aggregates built from the simulated market's own trades (SIP consolidated rules)."""

from __future__ import annotations

import numpy as np

from firehose_proxy.sources.market.engine import PendingAgg, wire_number
from firehose_proxy.sources.market.wire import EquityAgg, EquityAggM, encode

# A closed bar: (symbol index, start ms, end ms, trades, volume, sum of ticks*size, o, h, l, c (ticks),
# day open (ticks), day volume, day sum of ticks*size) — day figures run through the bar's end.
Bar = tuple[int, int, int, int, float, float, int, int, int, int, int, float, float]


class SecondMinuteBars:
    """Per-second and per-minute bars from a cluster's trades, with the SIP consolidated update rules.

    Volume counts every trade; open/high/low/close only trades flagged eligible. A bar whose trades are all
    ineligible repeats the symbol's last eligible close in o/h/l/c; before the first eligible trade of a symbol
    there is nothing to repeat and the bar is not emitted (its volume still counts in the day's volume).
    ``op`` is the first eligible price of the simulation. A second bar closes once ``hi >= e``; minutes likewise.
    """

    def __init__(self, n: int, minute_ms: int = 60_000) -> None:
        self.n = n
        self.minute_ms = minute_ms  # the "minute" of minute bars: shorter only to compress time in demos and tests
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.op = [-1] * n
        self.s_carry = [-1] * n
        self.s_av = [0.0] * n
        self.s_apv = [0.0] * n
        self.m_carry = [-1] * n
        self.m_av = [0.0] * n
        self.m_apv = [0.0] * n
        # (minute start, sym) -> [n, v, pv, o, h, l, c]; o == -1 until an eligible trade
        self.minutes: dict[tuple[int, int], list] = {}

    def add(self, sym: np.ndarray, t: np.ndarray, px: np.ndarray, size: np.ndarray, eligible: np.ndarray) -> None:
        """Trades in time order (non-decreasing t, later than every earlier call's)."""
        if len(t):
            self.pending.append((sym, t, px, size.astype(np.float64), eligible))

    def close(self, hi: int) -> tuple[list[Bar], list[Bar]]:
        """Second bars and minute bars whose end is <= hi, in (end, symbol) order."""
        boundary = hi - hi % 1000
        seconds: list[Bar] = []
        if self.pending and self.pending[0][1][0] < boundary:
            sym, t, px, size, elig = (np.concatenate(a) for a in zip(*self.pending))
            cut = int(np.searchsorted(t, boundary, side="left"))
            self.pending = [(sym[cut:], t[cut:], px[cut:], size[cut:], elig[cut:])] if cut < len(t) else []
            seconds = self._seconds(sym[:cut], t[:cut], px[:cut], size[:cut], elig[:cut])
        minutes: list[Bar] = []
        due = sorted(k for k in self.minutes if k[0] + self.minute_ms <= hi)
        for key in due:
            m, s = key
            cnt, v, pv, o, h, lo, c = self.minutes.pop(key)
            self.m_av[s] += v
            self.m_apv[s] += pv
            if o >= 0:
                self.m_carry[s] = c
            elif self.m_carry[s] >= 0:
                o = h = lo = c = self.m_carry[s]
            else:
                continue
            minutes.append((s, m, m + self.minute_ms, cnt, v, pv, o, h, lo, c, self.op[s], self.m_av[s], self.m_apv[s]))
        return seconds, minutes

    def _seconds(self, sym: np.ndarray, t: np.ndarray, px: np.ndarray, size: np.ndarray,
                 elig: np.ndarray) -> list[Bar]:
        sec = t // 1000
        key = sec * self.n + sym
        o_ = np.argsort(key, kind="stable")  # stable: time order survives inside a bar
        key, px, size, elig = key[o_], px[o_], size[o_], elig[o_]
        first = np.empty(len(key), bool)
        first[0] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        gkey = key[starts]
        cnt = np.diff(np.append(starts, len(key)))
        vol = np.add.reduceat(size, starts)
        pv = np.add.reduceat(px * size, starts)
        ng = len(starts)
        o = np.full(ng, -1, np.int64)
        h = o.copy()
        lo = o.copy()
        c = o.copy()
        if elig.any():
            ekey, epx = key[elig], px[elig]
            ef = np.empty(len(ekey), bool)
            ef[0] = True
            np.not_equal(ekey[1:], ekey[:-1], out=ef[1:])
            es = np.flatnonzero(ef)
            at = np.searchsorted(gkey, ekey[es])
            o[at] = epx[es]
            c[at] = epx[np.append(es[1:] - 1, len(epx) - 1)]
            h[at] = np.maximum.reduceat(epx, es)
            lo[at] = np.minimum.reduceat(epx, es)
        out: list[Bar] = []
        minutes = self.minutes
        for g, cn, v, p, go, gh, gl, gc in zip(gkey.tolist(), cnt.tolist(), vol.tolist(), pv.tolist(), o.tolist(),
                                               h.tolist(), lo.tolist(), c.tolist()):
            s, second = g % self.n, g // self.n
            start = second * 1000
            mk = (start - start % self.minute_ms, s)
            acc = minutes.get(mk)
            if acc is None:
                acc = minutes[mk] = [0, 0.0, 0.0, -1, -1, -1, -1]
            acc[0] += cn
            acc[1] += v
            acc[2] += p
            self.s_av[s] += v
            self.s_apv[s] += p
            if go >= 0:
                if self.op[s] < 0:
                    self.op[s] = go
                self.s_carry[s] = gc
                if acc[3] < 0:
                    acc[3], acc[4], acc[5] = go, gh, gl
                else:
                    acc[4], acc[5] = max(acc[4], gh), min(acc[5], gl)
                acc[6] = gc
            elif self.s_carry[s] >= 0:
                go = gh = gl = gc = self.s_carry[s]
            else:
                continue
            out.append((s, start, start + 1000, cn, v, p, go, gh, gl, gc, self.op[s], self.s_av[s], self.s_apv[s]))
        return out


def equity_aggs(bars: SecondMinuteBars, hi: int, syms: list[str], scale: np.ndarray, aggs: list[PendingAgg]) -> None:
    secs, mins = bars.close(hi)
    for kind, cls, rows in ((0, EquityAgg, secs), (1, EquityAggM, mins)):
        for s, start, end, cnt, v, pv, o, h, lo, c, op, av, apv in rows:
            sc = float(scale[s])
            aggs.append((end, kind, s, encode(cls(
                syms[s], int(v), int(av), wire_number(op / sc), wire_number(round(pv / v / sc, 4)), wire_number(o / sc), wire_number(c / sc),
                wire_number(h / sc), wire_number(lo / sc), wire_number(round(apv / av / sc, 4)), int(v) // cnt, start, end))))
