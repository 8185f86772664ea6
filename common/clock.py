"""The clocks the process shells read, in one place, so the pure cores can take time as an argument instead.

Nothing in a tier's core calls these; ``__main__`` modules and asyncio shells pass their readings in.
"""

from __future__ import annotations

import time


def wall_ms() -> int:
    """Unix time in milliseconds: the clock trade timestamps are compared with."""
    return int(time.time() * 1000)


def wall_ns() -> int:
    """Unix time in nanoseconds: receive times of recorded frames."""
    return time.time_ns()


def monotonic_ms() -> int:
    """A clock that never steps, in milliseconds: for timers and grace periods."""
    return int(time.monotonic() * 1000)
