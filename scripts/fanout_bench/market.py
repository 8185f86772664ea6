"""The benchmark's market, pure: pre-built frames of trades with a sequence stamp, and who subscribes to what.

Every event of frame ``seq`` carries ``"q":seq`` as its last field, so a receiver knows each event's scheduled
send time (``t0 + (seq - seq0) / frames_per_s``) from the bytes alone. Frames are built from a few templates
(``seq % len(templates)`` picks one), so the expected deliveries of every client are known in advance.
"""

from __future__ import annotations

import random

EVENTS_PER_FRAME = 50
TICKERS = tuple(f"S{i:03d}" for i in range(500))
SHARE = 0.10  # each client subscribes to 10% of the tickers
TEMPLATES = 64


class Market:
    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.frames: list[list[bytes]] = []  # per template: the frame's bytes split around the sequence stamps
        self.tickers: list[list[str]] = []  # per template: the ticker of each event
        for t in range(TEMPLATES):
            syms = [rng.choice(TICKERS) for _ in range(EVENTS_PER_FRAME)]
            parts, text = [], "["
            for i, sym in enumerate(syms):
                price = f"{100 + rng.randrange(10000) / 100:.2f}"
                text += (f'{{"ev":"T","sym":"{sym}","x":4,"i":"{t * 100 + i}","z":3,"p":{price},"s":100,'
                         f'"c":[0,12],"t":1700000000000,"q":')
                parts.append(text.encode())
                text = "}," if i < EVENTS_PER_FRAME - 1 else "}]"
            parts.append(text.encode())
            self.frames.append(parts)
            self.tickers.append(syms)

    def frame(self, seq: int) -> bytes:
        return str(seq).encode().join(self.frames[seq % TEMPLATES])

    @staticmethod
    def subscriptions(clients: int, seed: int = 11) -> list[list[str]]:
        """Each client's tickers: 10% of them, different per client; the first ten clients cover every ticker."""
        rng = random.Random(seed)
        per = int(len(TICKERS) * SHARE)
        cover = list(TICKERS)
        rng.shuffle(cover)
        out = []
        for c in range(clients):
            if c * per < len(TICKERS):
                out.append(cover[c * per:(c + 1) * per])
            else:
                out.append(rng.sample(TICKERS, per))
        return out

    def expected(self, tickers: list[str]) -> list[int]:
        """Per template, how many of its events a client subscribed to ``tickers`` receives."""
        wanted = set(tickers)
        return [sum(1 for s in syms if s in wanted) for syms in self.tickers]


def scheduled(seq: int, seq0: int, t0: float, frames_per_s: float) -> float:
    return t0 + (seq - seq0) / frames_per_s


def stamp_of(payload: bytes) -> int:
    """The sequence stamp of the first (oldest) event in a frame."""
    i = payload.find(b'"q":')
    return int(payload[i + 4:payload.find(b"}", i)])
