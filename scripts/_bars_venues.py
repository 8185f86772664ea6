"""bench_bars sections "venues" and "venue latency": crypto trades from venues with different constant delays.

Pair i trades on venues 0..(i mod V): so a quarter of the pairs (with V = 4) have each venue as their slowest.
Every trade reaches the aggregator ``delay[venue] + U(0, jitter)`` ms after its timestamp; frames are cut in arrival
order and each arrives (local time) with its last trade. In-process, one core, the book driven exactly as the
service drives it (``add(batch, local)``, ``close_due(local)``). A venue the book has not yet heard from cannot hold
a window, so trades stamped in the first --warmup-ms are a warm-up: late trades are reported for both parts.
"""

from __future__ import annotations

import gc
import random
import time

import msgspec

from ms_aggregator.book import DEFAULT_GRACE_MS, BarBook

T0 = 1_700_000_000_000
INTERVALS = (100, 250, 1000, 60000)


def make_tape(trades: int, pairs: int, delays: list[int], rate: float, jitter_ms: int = 3, seed: int = 5):
    """[(arrival local ms, market t, pair index, venue)] in arrival order, and each pair's slowest delay."""
    rng = random.Random(seed)
    venues_of = [list(range(i % len(delays) + 1)) for i in range(pairs)]
    tape = []
    for j in range(trades):
        t = T0 + int(j * 1000 / rate)
        pair = rng.randrange(pairs)
        venue = rng.choice(venues_of[pair])
        tape.append((t + delays[venue] + rng.randint(0, jitter_ms), t, pair, venue))
    tape.sort()
    return tape, [delays[v[-1]] for v in venues_of]


def _frames(tape, frame_size: int | None, seed: int = 6):
    """Encoded XT frames: fixed size (throughput), or everything arriving in the same ms (latency)."""
    rng = random.Random(seed)
    encode = msgspec.json.Encoder().encode
    prices: dict[int, float] = {}
    out, chunk = [], []
    for k, (arrival, t, pair, venue) in enumerate(tape):
        price = prices[pair] = round(max(0.01, prices.get(pair, 100.0 + pair) + rng.choice((-0.01, 0.0, 0.01))), 2)
        chunk.append({"ev": "XT", "pair": f"P{pair:04d}-USD", "p": price, "t": t, "s": rng.choice((0.01, 0.5, 2.0)),
                      "c": [rng.choice((1, 2))], "i": str(k), "x": venue + 1, "r": t + 1})
        last = k + 1 == len(tape)
        if last or (len(chunk) == frame_size if frame_size else tape[k + 1][0] != arrival):
            out.append((encode(chunk), arrival))
            chunk = []
    return out


def bench_venues(trades: int, pairs: int, delays: list[int], rate: float, frame_size: int, warmup_ms: int) -> dict:
    """Throughput: decode + add + close_due per frame, at the frame's arrival time."""
    tape, _ = make_tape(trades, pairs, delays, rate)
    frames = _frames(tape, frame_size)
    warm_end = T0 + warmup_ms
    gc.collect()
    book = BarBook("crypto")
    book.set_subscriptions([(iv, "*") for iv in INTERVALS])
    decode, add, close = book.decoder.decode_frame, book.add, book.close_due
    bars = 0
    late_warm = None
    start = time.process_time()
    for frame, local in frames:
        add(decode(frame), local)
        bars += len(close(local))
        if late_warm is None and local >= warm_end + max(delays) + 100:
            late_warm = book.late_trades
    bars += len(close(tape[-1][0] + 10**6))
    cpu = time.process_time() - start
    return {"trades": trades, "pairs": pairs, "venue_delays_ms": delays, "frame_size": frame_size,
            "trades_per_s": trades / cpu, "bars": bars, "cpu_s": cpu,
            "late_trades_warmup": late_warm or 0, "late_trades_after_warmup": book.late_trades - (late_warm or 0)}


def bench_venue_latency(trades: int, pairs: int, delays: list[int], rate: float, warmup_ms: int,
                        grace_ms: int = DEFAULT_GRACE_MS) -> dict:
    """Emission latency (tick local time - e) per pair group (its slowest venue), with a tick every ms as the
    service does; frames are what arrives within one ms."""
    tape, slowest = make_tape(trades, pairs, delays, rate)
    frames = _frames(tape, None)
    book = BarBook("crypto", grace_ms=grace_ms)
    book.set_subscriptions([(iv, "*") for iv in INTERVALS[:3]])
    lat: dict[int, list[int]] = {d: [] for d in delays}
    decode = msgspec.json.Decoder(list[_Bar]).decode
    pos = 0
    late_warm = None
    for local in range(frames[0][1], tape[-1][0] + 2000):
        while pos < len(frames) and frames[pos][1] <= local:
            book.add(book.decoder.decode_frame(frames[pos][0]), local)
            pos += 1
        out = book.close_due(local)
        if out:
            for bar in decode(b"[" + b",".join(out) + b"]"):
                if bar.s >= T0 + warmup_ms:
                    lat[slowest[int(bar.sym[1:5])]].append(local - bar.e)
        if late_warm is None and local >= T0 + warmup_ms + max(delays) + 100:
            late_warm = book.late_trades
    groups = {}
    for d, values in lat.items():
        values.sort()
        if values:
            p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
            groups[str(d)] = {"bars": len(values), "p50_ms": values[len(values) // 2], "p99_ms": p99,
                              "max_ms": values[-1], "target_ms": d + grace_ms + 2, "within": p99 <= d + grace_ms + 2}
    return {"trades": trades, "rate_trades_per_s": rate, "grace_ms": grace_ms, "by_slowest_venue_delay": groups,
            "late_trades_warmup": late_warm or 0, "late_trades_after_warmup": book.late_trades - (late_warm or 0)}


class _Bar(msgspec.Struct):
    sym: str
    s: int
    e: int
