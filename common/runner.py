"""Process entry plumbing shared by the tiers: settings, logging, uvloop, signals, clean shutdown (DESIGN §4)."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Awaitable, Callable, Sequence, TypeVar

from common.logs import configure_logging
from common.settings import SettingsError, load_settings

T = TypeVar("T")

SHUTDOWN_DEADLINE_S = 4.0  # DESIGN: exit 0 within 5 s of SIGINT/SIGTERM


def run_process(
    name: str,
    settings_cls: type[T],
    serve: Callable[[T, object, asyncio.Event], Awaitable[None]],
    argv: Sequence[str] | None = None,
) -> int:
    """Load settings, configure logs, run ``serve(settings, log, stop)`` on uvloop until SIGINT/SIGTERM."""
    try:
        settings = load_settings(settings_cls, argv)
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    log = configure_logging(getattr(settings, "log_level", "info"), name)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, log, stop)

    try:
        _run(main())
    except SettingsError as exc:
        log.error("refusing_to_start", error=str(exc))
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _run(coro) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        asyncio.run(coro)
    else:
        uvloop.run(coro)
