"""Level 2 crypto books for ``XL2``: a few price levels a side around each pair's NBBO, with sizes that evolve.

Pure: the caller passes the random generator and the NBBO at the snapshot's time. Levels are spaced by the pair's
base spread; between snapshots each level's size drifts (log-normal steps, occasionally replaced by a fresh order),
so consecutive snapshots of a pair look like one book moving, not independent draws.
"""

from __future__ import annotations

import numpy as np

SIZE_DECIMALS = 4  # sizes in 1e-4 units, as the simulated XQ sizes


class L2Books:
    def __init__(self, rng: np.random.Generator, prices: np.ndarray, depth: int, step_ticks: np.ndarray) -> None:
        n = len(prices)
        self.depth = depth
        self.step = np.maximum(1, step_ticks).astype(np.int64)
        # Resting size per level: around $5 000 of the pair, in 1e-4 units.
        self.base = np.maximum(1.0, 5000.0 / np.maximum(prices, 1e-9) * 1e4)
        self.bid = self._fresh(rng, n)
        self.ask = self._fresh(rng, n)

    def _fresh(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.base[:, None] * np.exp(rng.normal(0.0, 1.0, (n, self.depth)))

    def snapshot(self, rng: np.random.Generator, s: int, bid: int, ask: int, scale: float
                 ) -> tuple[list[list[float]], list[list[float]]]:
        """Evolve pair ``s``'s book one step and return its (bids, asks) as [[price, size], ...], best first."""
        for side in (self.bid, self.ask):
            row = side[s]
            row *= np.exp(rng.normal(0.0, 0.15, self.depth))
            fresh = rng.random(self.depth) < 0.05
            row[fresh] = self.base[s] * np.exp(rng.normal(0.0, 1.0, int(fresh.sum())))
        levels = np.arange(self.depth, dtype=np.int64) * self.step[s]
        unit = 10.0 ** SIZE_DECIMALS
        bids = [[_num(p / scale), _num(max(1.0, round(z)) / unit)]
                for p, z in zip((bid - levels).tolist(), self.bid[s].tolist()) if p > 0]
        asks = [[_num(p / scale), _num(max(1.0, round(z)) / unit)]
                for p, z in zip((ask + levels).tolist(), self.ask[s].tolist())]
        return bids, asks


def _num(x: float) -> float:
    return int(x) if x.is_integer() else x
