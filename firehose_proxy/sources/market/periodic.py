"""Events the simulated market publishes on a schedule (one per symbol per period: LULD bands, imbalances, fair
values, book snapshots) and the state they report: the last quote or trade of their symbol at their time.

Pure: arrays in, arrays out. Each cluster stream merges these into its time-ordered block with :func:`merge_into`,
so a scheduled event sorts after the quotes and trades of its own millisecond (it reports them).
"""

from __future__ import annotations

import numpy as np

from firehose_proxy.sources.market.engine import wire_number

_SPAN = np.int64(1) << 40  # a block is far shorter than 2**40 ms: (symbol, t - lo) packs into one int64 key


def schedule(lo: int, hi: int, period_ms: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times in (lo, hi] at which symbol ``k`` publishes (``t % period_ms == offsets[k]``), and the symbol of each,
    sorted by (t, symbol)."""
    n = len(offsets)
    if n == 0 or hi <= lo:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    first = lo + 1 + (offsets.astype(np.int64) - lo - 1) % period_ms
    counts = np.maximum(0, (hi - first) // period_ms + 1)
    total = int(counts.sum())
    sym = np.repeat(np.arange(n, dtype=np.int64), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    t = np.repeat(first, counts) + period_ms * (np.arange(total, dtype=np.int64) - starts)
    order = np.lexsort((sym, t))
    return t[order], sym[order]


def latest(ev_t: np.ndarray, ev_sym: np.ndarray, values: np.ndarray, carry: np.ndarray, lo: int,
           t: np.ndarray, sym: np.ndarray) -> np.ndarray:
    """For each (t, sym): ``values`` of the last event of that symbol with ``ev_t <= t`` in this block (events in
    time order, all in (lo, ...]), else ``carry[sym]`` (its value from before the block)."""
    out = carry[sym].copy()
    if len(ev_t) == 0 or len(t) == 0:
        return out
    key = ev_sym * _SPAN + (ev_t - lo)
    order = np.argsort(key, kind="stable")  # stable: the later of two same-ms events stays later
    key = key[order]
    idx = np.searchsorted(key, sym * _SPAN + (t - lo), side="right") - 1
    ok = idx >= 0
    ok[ok] = key[idx[ok]] // _SPAN == sym[ok]
    out[ok] = values[order[idx[ok]]]
    return out


def last_per_symbol(ev_sym: np.ndarray, values: np.ndarray, state: np.ndarray) -> None:
    """Set ``state[s]`` to the value of the last event of each symbol (events in time order)."""
    state[ev_sym] = values  # numpy assigns in order: the last write of a symbol wins


def merge_into(times: list[int], events: list[bytes], block_t: np.ndarray, block: list[bytes],
               extra_t: np.ndarray, extra: list[bytes]) -> None:
    """Append ``block`` (in time order) and ``extra`` to ``times``/``events``, merged in time order; on the same
    millisecond the block's events come first, then the extra ones in the order given."""
    if not extra:
        times.extend(block_t.tolist())
        events.extend(block)
        return
    all_t = np.concatenate((block_t, extra_t))
    order = np.argsort(all_t, kind="stable")
    both = block + extra
    times.extend(all_t[order].tolist())
    events.extend([both[k] for k in order.tolist()])


def fair_values(rng: np.random.Generator, bid: np.ndarray, ask: np.ndarray, scale: np.ndarray | float,
                digits: int | list[int]) -> list[float]:
    """Fair market values near the midpoint: the mid moved by up to a quarter of the spread, rounded to ``digits``
    decimals (per value when a list), as wire numbers."""
    n = len(bid)
    fv = ((bid + ask) / 2.0 + rng.uniform(-0.25, 0.25, n) * (ask - bid)) / scale
    ds = digits if isinstance(digits, list) else [digits] * n
    return [wire_number(round(x, d)) for x, d in zip(fv.tolist(), ds)]
