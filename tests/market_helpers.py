"""Helpers of the simulated-market tests: run the market over irregular steps, keep what each call produced."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from common.clusters import TICKER_FIELD, fair_value_ticker
from firehose_proxy.sources.market import MarketConfig, SimulatedMarket

START = 1_700_000_000_123  # deliberately not on a second boundary
EXAMPLES = Path(__file__).resolve().parent / "data" / "polygon_examples.json"  # from the official clients' spec
# Conditions that update volume but not open/high/low/close (SIP consolidated rules): average price, form T, odd lot.
NO_OHLC = {2, 12, 37}

_decode = msgspec.json.decode


@dataclass
class Call:
    lo: int
    hi: int
    raw: dict[str, list[bytes]]
    events: dict[str, list[dict[str, Any]]]


def run(config: MarketConfig, times: list[int], start: int = START) -> list[Call]:
    market = SimulatedMarket(config, start)
    calls: list[Call] = []
    lo = start
    for hi in times:
        raw = market.advance(hi)
        calls.append(Call(lo, hi, raw, {c: [_decode(e) for e in evs] for c, evs in raw.items()}))
        lo = hi
    return calls


def step_times(seed: int, total_ms: int, start: int = START) -> list[int]:
    """Irregular advance times: mostly short steps, some repeats of the same time, some multi-second gaps."""
    r = random.Random(seed)
    times, now = [], start
    while now < start + total_ms:
        u = r.random()
        now += 0 if u < 0.05 else r.randint(2000, 3500) if u < 0.08 else r.randint(1, 400)
        times.append(now)
    return times


def ticker(e: dict[str, Any]) -> str:
    """The ticker ``e`` is routed by (what ``CODE.TICKER`` subscriptions match)."""
    sym = e[TICKER_FIELD.get(e["ev"], "sym")]
    return fair_value_ticker(sym) if e["ev"] == "FMV" else sym


def stream(calls: list[Call], cluster: str) -> list[tuple[Call, dict[str, Any]]]:
    return [(call, e) for call in calls for e in call.events[cluster]]
