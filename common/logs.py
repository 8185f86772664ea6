"""structlog set-up: one event name per line with key=value fields; JSON when stderr is not a terminal."""

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
