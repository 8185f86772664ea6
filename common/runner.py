"""Process entry plumbing shared by the tiers: settings, logging, uvloop, signals, clean shutdown (DESIGN §4).

It never holds tier logic: ``serve(settings, log, stop)`` does the work and returns once ``stop`` is set and it has
shut down. The runner enforces the shutdown deadline and turns start-up failures into one clear line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import signal
import sys
from typing import Awaitable, Callable, Sequence, TypeVar

from common.logs import configure_logging
from common.settings import SettingsError, load_settings

T = TypeVar("T")

SHUTDOWN_DEADLINE_S = 4.0  # DESIGN §4: exit within 5 s of SIGINT/SIGTERM, unresponsive peers included
CANCEL_GRACE_S = 0.3  # what a cancelled shutdown gets to unwind before the process exits anyway


def run_process(
    name: str,
    settings_cls: type[T],
    serve: Callable[[T, object, asyncio.Event], Awaitable[None]],
    argv: Sequence[str] | None = None,
) -> int:
    """Load settings, configure logs, run ``serve(settings, log, stop)`` on uvloop until SIGINT/SIGTERM.

    Exit codes: 0 after a clean or deadline-cut stop, 1 when the port is taken, 2 for settings that refuse to start.
    """
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
        serving = loop.create_task(serve(settings, log, stop))
        stopping = loop.create_task(stop.wait())
        await asyncio.wait((serving, stopping), return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            done, _ = await asyncio.wait((serving,), timeout=SHUTDOWN_DEADLINE_S)
            if not done:
                log.warning("shutdown_deadline", deadline_s=SHUTDOWN_DEADLINE_S,
                            message="shutdown took too long; exiting without waiting for unresponsive peers")
                serving.cancel()
                await asyncio.wait((serving,), timeout=CANCEL_GRACE_S)
                return
        stopping.cancel()
        serving.result()  # a start-up error surfaces here

    try:
        _run(main())
    except SettingsError as exc:
        log.error("refusing_to_start", error=str(exc))
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"{name}: {port_in_use_message(settings)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def port_in_use_message(settings: object) -> str:
    port_field = next((f for f in dataclasses.fields(settings) if f.name == "port"), None)  # type: ignore[arg-type]
    host = getattr(settings, "host", "127.0.0.1")
    if port_field is None:
        return "a port it needs is already in use"
    env = port_field.metadata["env"]
    return (f"cannot listen on {host}:{settings.port}: the port is already in use (is tickfan already running?); "  # type: ignore[attr-defined]
            f"choose another with {env}=... or --port")


def _run(coro) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        asyncio.run(coro)
    else:
        uvloop.run(coro)
