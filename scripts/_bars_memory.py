"""bench_bars section "memory": ``NMs.*`` on a million-contract options tape.

Every one of --contracts option contracts trades twice (OPRA conditions, a few exchanges), spread over the tape,
with 100, 250, 1000 and 60000 ms bars all subscribed through "*": at the peak every contract is live and holds an
open minute bar. Reported: the book's own estimate of its bytes, the process's resident memory, both at the peak
and after every contract has been idle for SERIES_IDLE_S (local time is driven forward; nothing sleeps).
"""

from __future__ import annotations

import gc
import random
import resource
import time

import msgspec

from ms_aggregator.book import BarBook

T0 = 1_700_000_000_000
INTERVALS = (100, 250, 1000, 60000)
CONDITIONS = [[209], [209], [209], [227], [232], [219], [201], [246]]  # mostly electronic prints
EXCHANGES = [302, 303, 308, 312, 313, 316, 322, 323]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def bench_options_memory(contracts: int, frame_size: int = 1000, rate: float = 200_000, idle_s: float = 60) -> dict:
    rng = random.Random(11)
    names = [f"O:SPY{250101 + i % 28:06d}{'CP'[i % 2]}{i:08d}" for i in range(contracts)]
    order = list(range(contracts)) * 2
    rng.shuffle(order)
    encode = msgspec.json.Encoder().encode
    gc.collect()
    rss0 = _rss_bytes()
    book = BarBook("options", idle_ms=int(idle_s * 1000), hold_ms=10_000)
    book.set_subscriptions([(iv, "*") for iv in INTERVALS])
    peak = {"book_bytes": 0}
    peak_rss = rss0
    cpu = 0.0
    local = T0
    for start in range(0, len(order), frame_size):
        local = T0 + int(start * 1000 / rate)
        frame = encode([{"ev": "T", "sym": names[k], "x": rng.choice(EXCHANGES), "p": 1.25, "s": 1 + k % 9,
                         "c": rng.choice(CONDITIONS), "t": local, "q": start + j, "i": str(start + j)}
                        for j, k in enumerate(order[start:start + frame_size])])
        t = time.process_time()
        book.add(book.decoder.decode_frame(frame), local)
        book.close_due(local)
        cpu += time.process_time() - t
        if start % (50 * frame_size) == 0 or start + frame_size >= len(order):
            mem = book.memory()
            if mem["book_bytes"] > peak["book_bytes"]:
                peak = mem
            peak_rss = max(peak_rss, _rss_bytes())
    tape_s = (local - T0) / 1000
    for tick in range(local, local + int((idle_s + 75) * 1000), 1000):  # the minute bars close, then idle
        book.close_due(tick)
    gc.collect()
    after = book.memory()
    return {"contracts": contracts, "trades": len(order), "tape_s": tape_s, "intervals": list(INTERVALS),
            "cpu_s": cpu, "trades_per_s": len(order) / cpu, "peak": peak,
            "peak_bytes_per_contract": peak["book_bytes"] / contracts,
            "peak_rss_growth_bytes": peak_rss - rss0, "series_idle_s": idle_s, "after_idle": after,
            "rss_after_idle_growth_bytes": _rss_bytes() - rss0, "evicted": book.evicted}
