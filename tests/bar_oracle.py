"""A deliberately plain reference for :mod:`ms_aggregator.book`: dicts, lists and loops, no numpy, stdlib ``json``.

Same contract as :class:`ms_aggregator.book.BarBook` (see that module's docstring), written the obvious way and
sharing none of its code: each window keeps its trades in arrival order and the bar is computed from that list;
each source's clock is a list of per-second minima; which trade may update what comes from the hand-written
tables below, not from the project's parser or data file. Tests check the fast book against it, and
``scripts/bench_bars`` measures both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from common.clusters import BAR_EVENT, CLUSTERS, TICKER_FIELD

__all__ = ["OPTION_RULES", "STOCK_RULES", "ReferenceBook", "Trade"]

# (updates open/close, updates high/low, updates volume), written by hand from Polygon's published consolidated
# update rules (GET /v3/reference/conditions, update_rules.consolidated; the options rows as that endpoint lists
# them for asset_class=options). Ids not listed count as regular.
STOCK_RULES: dict[int, tuple[bool, bool, bool]] = {
    0: (True, True, True),  # Regular Trade
    1: (True, True, True),  # Acquisition
    2: (False, False, True),  # Average Price Trade
    7: (False, False, True),  # Cash Sale
    10: (False, True, True),  # Derivatively Priced
    12: (False, False, True),  # Form T (extended hours)
    13: (False, False, True),  # Extended Trading Hours (Sold Out Of Sequence)
    14: (True, True, True),  # Intermarket Sweep
    15: (False, False, False),  # Market Center Official Close
    16: (False, False, False),  # Market Center Official Open
    20: (False, False, True),  # Next Day
    21: (False, False, True),  # Price Variation Trade
    22: (False, True, True),  # Prior Reference Price
    29: (False, False, True),  # Seller
    30: (True, True, True),  # Sold Last
    32: (False, True, True),  # Sold (Out Of Sequence)
    37: (False, False, True),  # Odd Lot Trade
    38: (True, True, False),  # Corrected Consolidated Close
    41: (True, True, True),  # Trade Thru Exempt
    52: (False, False, True),  # Contingent Trade
    53: (False, False, True),  # Qualified Contingent Trade
}
OPTION_RULES: dict[int, tuple[bool, bool, bool]] = {
    201: (False, False, False),  # Canceled
    202: (False, False, False),  # Late and Out Of Sequence
    203: (False, False, False),  # Last and Canceled
    204: (False, False, False),  # Late
    206: (False, False, False),  # Opening Trade, Late, and Out Of Sequence
    208: (True, True, True),  # Opening Trade and Late
    209: (True, True, True),  # Automatic Execution
    210: (True, True, True),  # Reopening Trade
    219: (True, True, True),  # Intermarket Sweep Order
    227: (True, True, True),  # Single Leg Auction Non ISO
    229: (True, True, True),  # Single Leg Cross Non ISO
    231: (True, True, True),  # Single Leg Floor Trade
    232: (True, True, True),  # Multi Leg auto-electronic trade
    233: (True, True, True),  # Multi Leg Auction
    236: (True, True, True),  # Multi Leg auto-electronic trade against single leg(s)
    240: (True, True, True),  # Stock Options auto-electronic trade
    246: (False, False, True),  # Multi Leg Floor Trade of Proprietary Products
    247: (False, False, True),  # Multilateral Compression Trade of Proprietary Products
    248: (False, False, True),  # Extended Hours Trade
}
RULES = {"stocks": STOCK_RULES, "options": OPTION_RULES}

# (ticker, price, size, SIP timestamp ms, condition ids or None, source x or None)
Trade = tuple[str, float, float, int, "list[int] | None", "int | None"]
INF = float("inf")


class _Clock:
    """One source's clock: the lower median of per-second minima of (local - t) over the last 10 seconds."""

    def __init__(self) -> None:
        self.buckets: list[list[int]] = []  # [second, min d]
        self.offset = 0

    def observe(self, local: int, t: int) -> None:
        d, second = local - t, local // 1000
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] = min(self.buckets[-1][1], d)
        else:
            self.buckets = [b for b in self.buckets if b[0] > second - 10] + [[second, d]]
        mins = sorted(m for _, m in self.buckets)
        self.offset = mins[(len(mins) - 1) // 2]


class ReferenceBook:
    """Bars of one cluster for ``(interval_ms, ticker)`` subscriptions (``"*"`` = every ticker)."""

    def __init__(self, cluster: str, grace_ms: int = 30, late: str = "drop", amend_window_ms: int = 60_000,
                 hold_ms: int = 60_000, idle_ms: int = 600_000) -> None:
        info = CLUSTERS[cluster]
        if not info.has_bars:
            raise ValueError(f"no bars on cluster {cluster!r}")
        self.cluster, self.trade_code = cluster, info.trade_code
        self.ticker_field = TICKER_FIELD.get(info.trade_code, "sym")
        self.rules = RULES.get(cluster, {})
        self.grace, self.late, self.amend_window, self.hold, self.idle = grace_ms, late, amend_window_ms, hold_ms, idle_ms
        self.wildcard: set[int] = set()
        self.named: dict[str, set[int]] = {}
        self.windows: dict[tuple[str, int, int], dict] = {}  # open windows: {"trades": [...], "partial": bool}
        self.kept: dict[tuple[str, int, int], dict] = {}  # closed windows kept for amend, plus "rev", "dirty"
        self.sources: dict[int | None, int] = {}
        self.clocks: dict[int, _Clock] = {}
        self.horizon: dict[int, int] = {}
        self.recent: dict[str, dict[int, int]] = {}  # ticker -> source -> hold epoch of its newest trade there
        self.closed_end: dict[str, int] = {}
        self.last_epoch: dict[str, int] = {}
        self.starts: dict[tuple[int, str], float] = {}  # (interval, ticker or "*") -> market ms covered from
        self.gaps: list[list[float]] = []
        self.down = False
        self.next_evict = -INF
        self.trades_in = self.late_trades = self.late_amended = self.bars_out = self.volume_only_windows = 0

    @property
    def clock(self) -> float:
        return max(self.horizon.values()) if self.horizon else -INF

    @property
    def open_bars(self) -> int:
        return len(self.windows)

    # -- subscriptions and gaps -----------------------------------------------------------------------------------

    def set_subscriptions(self, subs: Iterable[tuple[int, str]]) -> None:
        subs = set(subs)
        self.wildcard = {iv for iv, t in subs if t == "*"}
        self.named = {}
        for iv, t in subs:
            if t != "*":
                self.named.setdefault(t, set()).add(iv)
        start = self.clock if self.horizon else INF
        self.starts = {key: self.starts.get(key, start) for key in subs}
        for store in (self.windows, self.kept):
            for key in [k for k in store if k[1] not in self.intervals_for(k[0])]:
                del store[key]

    def intervals_for(self, ticker: str) -> set[int]:
        return self.wildcard | self.named.get(ticker, set())

    def link_down(self) -> None:
        if self.down:
            return
        self.down = True
        g0 = min(self.horizon.values()) - self.grace if self.horizon else -INF
        self.gaps = (self.gaps + [[g0, INF, False]])[-64:]  # [g0, g1, g1 still to be set from the clock]
        for (_, iv, s), w in self.windows.items():
            if s + iv > g0:
                w["partial"] = True

    def link_up(self) -> None:
        if self.down:
            self.down = False
            self.gaps[-1][1:] = [self.clock, False] if self.horizon else [INF, True]

    def resolve(self, clock: float) -> None:
        """Starts and gap ends taken before any clock was known become the first known market time."""
        for key in self.starts:
            if self.starts[key] == INF:
                self.starts[key] = clock
        for gap in self.gaps:
            if gap[2]:
                gap[1:] = [clock, False]

    def partial(self, ticker: str, iv: int, s: int) -> bool:
        start = min(self.starts.get((iv, "*"), INF) if iv in self.wildcard else INF,
                    self.starts.get((iv, ticker), INF) if iv in self.named.get(ticker, ()) else INF)
        return s < start or any(s + iv > g[0] and s < g[1] for g in self.gaps)

    # -- trades ---------------------------------------------------------------------------------------------------

    def flags(self, conditions: list[int] | None) -> tuple[bool, bool, bool]:
        oc = hl = vol = True
        if self.cluster != "crypto":
            for c in conditions or ():
                rule = self.rules.get(c, (True, True, True))
                oc, hl, vol = oc and rule[0], hl and rule[1], vol and rule[2]
        return oc, hl, vol

    def valid(self, ev: dict) -> bool:
        """The trade events the decoder accepts: ticker a string, p a number, s a number >= 0, t an int in
        [0, 2**53), x absent or an int, c (stocks/options) absent, null or a list of ints."""

        def number(x: object) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool)

        def integer(x: object, lo: int, hi: int) -> bool:
            return isinstance(x, int) and not isinstance(x, bool) and lo <= x < hi

        ticker, p, s, t = ev.get(self.ticker_field), ev.get("p"), ev.get("s"), ev.get("t")
        if not (isinstance(ticker, str) and number(p) and number(s) and s >= 0 and integer(t, 0, 2**53)):
            return False
        if "x" in ev and not (isinstance(ev["x"], int) and not isinstance(ev["x"], bool)):
            return False
        c = ev.get("c")
        if self.cluster != "crypto" and c is not None:
            return isinstance(c, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in c)
        return True

    def add_frame(self, frame: bytes | str, local_ms: int) -> int:
        """Add the trade events of a websocket frame that arrived at ``local_ms``; returns the late count."""
        events = json.loads(frame)
        trades = []
        for ev in events if isinstance(events, list) else [events]:
            if isinstance(ev, dict) and ev.get("ev") == self.trade_code and self.valid(ev):
                trades.append((ev[self.ticker_field], float(ev["p"]), float(ev["s"]), ev["t"], ev.get("c"), ev.get("x")))
        return self.add_trades(trades, local_ms)

    def source(self, x: int | None) -> int:
        if x not in self.sources:
            self.sources[x] = min(len(set(self.sources.values())), 62)
            self.clocks.setdefault(self.sources[x], _Clock())
        return self.sources[x]

    def add_trades(self, trades: list[Trade], local: int) -> int:
        if not trades:
            return 0
        self.trades_in += len(trades)
        newest: dict[int, int] = {}
        for ticker, _, _, t, _, x in trades:
            src = self.source(-1 if x is None else x)
            newest[src] = max(newest.get(src, t), t)
            self.recent.setdefault(ticker, {})[src] = local // self.hold
            self.last_epoch[ticker] = local // self.hold
        for src, t in newest.items():
            self.clocks[src].observe(local, t)
        if self.clocks:
            self.resolve(max(local - clock.offset for clock in self.clocks.values()))
        late = amended = 0
        for ticker, price, size, t, conditions, _ in trades:
            is_late, was_amended = self.add_trade(ticker, price, size, t, self.flags(conditions), local)
            late += is_late
            amended += was_amended
        self.late_trades += late
        self.late_amended += amended
        return late

    def ticker_horizon(self, ticker: str, local: int, default: float) -> float:
        epoch = local // self.hold
        mine = [self.horizon[src] for src, ep in self.recent.get(ticker, {}).items()
                if ep >= epoch - 1 and src in self.horizon]
        return min(mine) if mine else default

    def add_trade(self, ticker, price, size, t, flags, local) -> tuple[bool, bool]:
        if not any(flags):
            return False, False
        late = amended = False
        for iv in sorted(self.intervals_for(ticker)):
            s = t - t % iv
            key = (ticker, iv, s)
            if key in self.windows:
                self.windows[key]["trades"].append((price, size, *flags))
            elif s + iv <= self.closed_end.get(ticker, -INF) or \
                    s + iv + self.grace <= self.ticker_horizon(ticker, local, -INF):
                late = True
                self.closed_end[ticker] = max(self.closed_end.get(ticker, -INF), s + iv)
                if self.late == "amend" and self.clock - (s + iv) <= self.amend_window:
                    kept = self.kept.setdefault(key, {"trades": [], "partial": self.partial(ticker, iv, s), "rev": 0})
                    kept["trades"].append((price, size, *flags))
                    kept["dirty"] = amended = True
            else:
                self.windows[key] = {"trades": [(price, size, *flags)], "partial": self.partial(ticker, iv, s)}
        return late, amended

    # -- ticks ----------------------------------------------------------------------------------------------------

    def close_due(self, local_ms: int) -> list[bytes]:
        for src, clock in self.clocks.items():
            self.horizon[src] = max(self.horizon.get(src, -INF), local_ms - clock.offset)
        if self.horizon:
            self.resolve(self.clock)
        horizons: dict[str, float] = {}
        for ticker in {key[0] for key in self.windows}:
            horizons[ticker] = self.ticker_horizon(ticker, local_ms, self.clock)
        due = [key for key in self.windows if key[2] + key[1] + self.grace <= horizons[key[0]]]
        out = []
        for key in sorted(due, key=lambda k: (k[2] + k[1], k[0], k[1])):
            window = self.windows.pop(key)
            self.closed_end[key[0]] = max(self.closed_end.get(key[0], -INF), key[2] + key[1])
            bar = self.bar(key, window["trades"], window["partial"], 0)
            if bar is None:
                self.volume_only_windows += 1
            else:
                out.append(bar)
            if self.late == "amend":
                self.kept[key] = {"trades": window["trades"], "partial": window["partial"], "rev": 0}
        self.bars_out += len(out)
        corrected = []
        for key in sorted((k for k, w in self.kept.items() if w.pop("dirty", False)),
                          key=lambda k: (k[2] + k[1], k[0], k[1])):
            kept = self.kept[key]
            bar = self.bar(key, kept["trades"], kept["partial"], kept["rev"] + 1)
            if bar is not None:
                kept["rev"] += 1
                corrected.append(bar)
        for key in [k for k in self.kept if self.clock - (k[2] + k[1]) > self.amend_window]:
            del self.kept[key]
        if local_ms >= self.next_evict:
            self.next_evict = local_ms + 1000
            self.evict(local_ms)
        return out + corrected

    def evict(self, local: int) -> None:
        """Tickers holding nothing whose last trade's hold epoch ended ``idle`` ago forget what closed and which
        sources traded them."""
        busy = {k[0] for k in self.windows} | {k[0] for k in self.kept} | set(self.named)
        for ticker in [tk for tk, ep in self.last_epoch.items()
                       if (ep + 1) * self.hold + self.idle <= local and tk not in busy]:
            del self.last_epoch[ticker]
            self.closed_end.pop(ticker, None)
            self.recent.pop(ticker, None)

    def bar(self, key: tuple[str, int, int], trades: list, partial: bool, rev: int) -> bytes | None:
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
        v = pv = 0.0
        for p, s, _, _, vol in trades:
            if vol:
                v += s
                pv += p * s
        volume: int | float = int(v) if self.cluster != "crypto" and v.is_integer() else v
        bar = {"ev": BAR_EVENT, "sym": ticker, "interval": interval, "o": o, "h": h, "l": low, "c": c, "v": volume,
               "vw": pv / v if v else c, "n": len(trades), "s": start, "e": start + interval}
        if partial:
            bar["partial"] = True
        if rev:
            bar["rev"] = rev
        return json.dumps(bar, separators=(",", ":")).encode()
