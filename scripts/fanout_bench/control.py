"""Line commands on stdin for the benchmark's helper processes (flood, relay), replies on stdout."""

from __future__ import annotations

import asyncio
import sys


async def stdin_lines():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line.decode().split()


def reply(*words) -> None:
    print(*words, flush=True)


def run(main) -> None:
    try:
        import uvloop
        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())
