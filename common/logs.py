"""structlog set-up: one event name per line with key=value fields; JSON when stderr is not a terminal.

Also :class:`LogThrottle`, so that a flood of bad input costs one log line a second, not one per message.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info", process: str = "") -> structlog.stdlib.BoundLogger:
    renderer = structlog.dev.ConsoleRenderer(colors=False) if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()
    return log.bind(process=process) if process else log


class LogThrottle:
    """At most one line per key per ``interval_s``; says how many it held back in between. Time is an argument."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str, now_s: float) -> int | None:
        """None: stay quiet. Otherwise log now; the value is how many were held back since the last line."""
        last = self._last.get(key)
        if last is not None and now_s - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now_s
        return self._held.pop(key, 0)
