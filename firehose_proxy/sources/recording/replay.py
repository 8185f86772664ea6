"""``REPLAY``: play a recording instead of a live source, with the original frame boundaries and order.

Each recorded frame is handed to the firehose exactly as the live upstream handed it (same bytes, same cluster),
so everything below — aggregator, proxies, bars — works on it unchanged. Pace: the original gaps between receive
times divided by ``speed`` (1 = original pace); ``0`` plays as fast as the firehose's clients take it (it waits
while any client has more than ``BACKLOG_BYTES`` pending, so nobody is cut off as a slow consumer). Playback starts
``SETTLE_S`` after the first subscription reaches the firehose, so the tiers below have subscribed too; a client
that comes later joins mid-recording, as on a live feed. Files are read and decompressed in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

from common import protocol
from common.frames import Frame, FrameError
from common.metrics import Metrics
from common.settings import SettingsError
from firehose_proxy.sources.recording.format import (
    FileReader,
    Record,
    RecordingError,
    recording_files,
)

SETTLE_S = 1.0
BACKLOG_BYTES = 1 << 20

Deliver = Callable[[str, Frame], None]


class Replayer:
    def __init__(self, path: str, speed: float, deliver: Deliver, log, metrics: Metrics,
                 backlog: Callable[[], int] = lambda: 0, announce: Callable[[bytes], None] | None = None) -> None:
        if speed < 0:
            raise SettingsError(f"REPLAY_SPEED must be 0 or more, not {speed}")
        self.files = recording_files(path)
        if not self.files:
            raise SettingsError(f"REPLAY: no recording at {path!r} (a .rec.gz file or a directory of them)")
        self.path = path
        self.speed = speed
        self.deliver = deliver
        self.log = log.bind(replay=path)
        self.metrics = metrics
        self.backlog = backlog
        self.announce = announce
        self.state = "waiting for the first subscription"
        self.frames = 0
        self.bad_frames = 0
        self.position_ns = 0
        self.file = ""
        self.problems: list[str] = []
        self._task: asyncio.Task | None = None
        metrics.describe("replayed_frames", "Recorded frames played.")

    def begin(self) -> None:
        """Start playing (once), after the settle delay."""
        if self._task is None:
            self.state = "starting"
            self._task = asyncio.get_running_loop().create_task(self._play(), name="replay")
            self._task.add_done_callback(self._ended)

    async def _play(self) -> None:
        await asyncio.sleep(SETTLE_S)
        self.state = "playing"
        self.log.info("replay_started", files=len(self.files), speed=self.speed)
        clock: tuple[int, int] | None = None  # (first receive ns, local monotonic ns at its play)
        for path in self.files:
            self.file = path.name
            reader = FileReader(Path(path))
            batches = reader.batches()
            try:
                while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                    clock = await self._play_batch(batch, clock)
            except RecordingError as exc:
                self._problem(f"{path.name}: {exc}; skipped the rest of the file")
            if not reader.complete:
                self._problem(f"{path.name} ends early (cut off by a crash?): {reader.cut_bytes} bytes after the "
                              "last complete frame ignored")
        self.state = "finished"
        self.log.info("replay_finished", frames=self.frames, bad_frames=self.bad_frames)
        if self.announce is not None:
            self.announce(protocol.status("replay_finished", f"the recording is over: {self.frames} frames played"))

    async def _play_batch(self, batch: list[Record], clock: tuple[int, int] | None) -> tuple[int, int]:
        for record in batch:
            if clock is None:
                clock = (record.recv_ns, time.monotonic_ns())
            if self.speed > 0:
                due = clock[1] + (record.recv_ns - clock[0]) / self.speed
                wait = (due - time.monotonic_ns()) / 1e9
                if wait > 0.0005:
                    await asyncio.sleep(wait)
            self.position_ns = record.recv_ns
            try:
                self.deliver(record.cluster, Frame(record.data))
            except (FrameError, KeyError) as exc:
                self.bad_frames += 1
                self.log.warning("replay_bad_frame", cluster=record.cluster, error=str(exc)[:200])
            self.frames += 1
            self.metrics.inc("replayed_frames")
        if self.speed == 0:
            while self.backlog() > BACKLOG_BYTES:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)  # let clients' writers run between batches
        return clock  # type: ignore[return-value]

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        self.log.warning("replay_problem", problem=message)

    def _ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.state = "failed"
            self.log.error("replay_failed", error=f"{type(task.exception()).__name__}: {task.exception()}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def status(self) -> dict:
        return {"path": self.path, "files": len(self.files), "speed": self.speed, "state": self.state,
                "file": self.file, "frames": self.frames, "bad_frames": self.bad_frames,
                "position_ns": self.position_ns, "problems": self.problems}
