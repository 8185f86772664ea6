"""A deliberately plain reference for :mod:`ms_aggregator.book`: dicts, lists and loops, no numpy, stdlib ``json``.

Same contract as :class:`ms_aggregator.book.BarBook` (see that module's docstring), written the obvious way: each open
window keeps its trades in arrival order and the bar is computed from that list when the window closes. It is slow on
purpose; tests check the fast book against it, and ``scripts/bench_bars`` measures both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from common.clusters import BAR_EVENT, CLUSTERS, TICKER_FIELD
from common.topics import MAX_BAR_MS, MIN_BAR_MS
from ms_aggregator.book import DEFAULT_GRACE_MS
from ms_aggregator.conditions import ConditionRules, default_rules

__all__ = ["ReferenceBook", "Trade"]

# (ticker, price, size, SIP timestamp ms, condition ids or None)
Trade = tuple[str, float, float, int, "list[int] | None"]


class ReferenceBook:
    """Bars of one cluster for ``(interval_ms, ticker)`` subscriptions (``"*"`` = every ticker)."""

    def __init__(self, cluster: str, rules: ConditionRules | None = None, grace_ms: int = DEFAULT_GRACE_MS) -> None:
        info = CLUSTERS[cluster]
        if not info.has_bars:
            raise ValueError(f"no bars on cluster {cluster!r}")
        self.cluster = cluster
        self.trade_code = info.trade_code
        self.ticker_field = TICKER_FIELD.get(info.trade_code, "sym")
        self.rules = rules if rules is not None else default_rules(cluster)
        self.grace_ms = grace_ms
        self.wildcard: set[int] = set()
        self.named: dict[str, set[int]] = {}
        self.windows: dict[tuple[str, int, int], list[tuple[float, float, bool, bool, bool]]] = {}
        self.closed_through: int | None = None
        self.trades_in = 0
        self.late_trades = 0
        self.bars_out = 0
        self.volume_only_windows = 0

    @property
    def open_bars(self) -> int:
        return len(self.windows)

    def set_subscriptions(self, subs: Iterable[tuple[int, str]]) -> None:
        self.wildcard = set()
        self.named = {}
        for interval, ticker in subs:
            if not MIN_BAR_MS <= interval <= MAX_BAR_MS:
                raise ValueError(f"interval out of range: {interval}")
            if ticker == "*":
                self.wildcard.add(interval)
            else:
                self.named.setdefault(ticker, set()).add(interval)
        for key in list(self.windows):
            ticker, interval, _ = key
            if interval not in self.intervals_for(ticker):
                del self.windows[key]

    def intervals_for(self, ticker: str) -> set[int]:
        return self.wildcard | self.named.get(ticker, set())

    def flags(self, conditions: list[int] | None) -> tuple[bool, bool, bool]:
        """(updates open/close, updates high/low, updates volume) for a trade with these conditions."""
        if self.cluster == "crypto" or not conditions:
            return True, True, True
        oc = hl = vol = True
        for c in conditions:
            if c in self.rules:
                mask = self.rules.rule(c)
                oc = oc and bool(mask & 1)
                hl = hl and bool(mask & 2)
                vol = vol and bool(mask & 4)
        return oc, hl, vol

    def add_frame(self, frame: bytes | str) -> int:
        """Add the trade events of a websocket frame (other events are ignored); returns the late count."""
        events = json.loads(frame)
        if isinstance(events, dict):
            events = [events]
        trades = []
        for ev in events:
            if isinstance(ev, dict) and ev.get("ev") == self.trade_code and self.valid(ev):
                trades.append((ev[self.ticker_field], float(ev["p"]), float(ev["s"]), ev["t"], ev.get("c")))
        return self.add_trades(trades)

    def valid(self, ev: dict) -> bool:
        """The trade events the decoder accepts: ticker a string, p a number, s a number >= 0, t an int in
        [0, 2**53), c (stocks/options) absent, null or a list of ints."""

        def number(x: object) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool)

        ticker, p, s, t = ev.get(self.ticker_field), ev.get("p"), ev.get("s"), ev.get("t")
        if not (isinstance(ticker, str) and number(p) and number(s) and s >= 0):
            return False
        if not (isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**53):
            return False
        c = ev.get("c")
        if self.cluster != "crypto" and c is not None:
            return isinstance(c, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in c)
        return True

    def add_trades(self, trades: Iterable[Trade]) -> int:
        late_count = 0
        for trade in trades:
            if self.add_trade(*trade):
                late_count += 1
        return late_count

    def add_trade(self, ticker: str, price: float, size: float, t: int, conditions: list[int] | None) -> bool:
        """Add one trade; True if it was late for at least one of its windows."""
        self.trades_in += 1
        oc, hl, vol = self.flags(conditions)
        if not (oc or hl or vol):
            return False
        late = False
        for interval in self.intervals_for(ticker):
            start = t - t % interval
            end = start + interval
            if self.closed_through is not None and end + self.grace_ms <= self.closed_through:
                late = True
                continue
            self.windows.setdefault((ticker, interval, start), []).append((price, size, oc, hl, vol))
        if late:
            self.late_trades += 1
        return late

    def close_due(self, now_ms: int) -> list[bytes]:
        if not self.windows:  # nothing open: the close horizon does not move
            return []
        if self.closed_through is None or now_ms > self.closed_through:
            self.closed_through = now_ms
        due = [key for key in self.windows if key[2] + key[1] + self.grace_ms <= now_ms]
        due.sort(key=lambda key: (key[2] + key[1], key[0], key[1]))
        out = []
        for key in due:
            bar = self.bar(key, self.windows.pop(key))
            if bar is None:
                self.volume_only_windows += 1
            else:
                out.append(json.dumps(bar, separators=(",", ":")).encode())
        self.bars_out += len(out)
        return out

    def bar(self, key: tuple[str, int, int], trades: list[tuple[float, float, bool, bool, bool]]) -> dict | None:
        ticker, interval, start = key
        oc_prices = [p for p, _, oc, _, _ in trades if oc]
        hl_prices = [p for p, _, _, hl, _ in trades if hl]
        if oc_prices:
            o, c = oc_prices[0], oc_prices[-1]
        elif hl_prices:
            o, c = hl_prices[0], hl_prices[-1]
        else:
            return None
        h = max(hl_prices) if hl_prices else max(o, c)
        low = min(hl_prices) if hl_prices else min(o, c)
        v = 0.0
        pv = 0.0
        for p, s, _, _, vol in trades:
            if vol:
                v += s
                pv += p * s
        vw = pv / v if v else c
        volume: int | float = v
        if self.cluster != "crypto" and v.is_integer():
            volume = int(v)
        return {
            "ev": BAR_EVENT,
            "sym": ticker,
            "interval": interval,
            "o": o,
            "h": h,
            "l": low,
            "c": c,
            "v": volume,
            "vw": vw,
            "n": len(trades),
            "s": start,
            "e": start + interval,
        }
