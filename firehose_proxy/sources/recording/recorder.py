"""``RECORD_DIR``: every upstream frame, byte for byte, with its cluster and receive time, written off the event loop.

:meth:`Recorder.write` only appends to a queue (the event loop never touches the disk or the compressor); a writer
thread compresses and writes. Every ``FLUSH_S`` it ends the gzip block with a sync flush and ``fsync``\\ s, so a
crash (even ``kill -9``) loses at most the frames of the last flush interval plus what the thread had not yet
taken. Files rotate when they reach ``rotate_bytes`` (compressed) and when the UTC hour of the receive time
changes. If the disk cannot keep up, the queue is bounded: frames beyond it are dropped, counted and logged,
never blocking the feed.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections import deque
from pathlib import Path

from common.metrics import Metrics
from firehose_proxy.sources.recording.format import (
    GZIP_WBITS,
    MAGIC,
    encode_record,
    file_name,
    hour_of,
)

FLUSH_S = 0.5
COMPRESS_LEVEL = 1  # fast: the recorder must keep up with a full feed on one core; JSON still shrinks ~5x
MAX_QUEUE_BYTES = 256 << 20


class _File:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "wb")
        self.z = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, GZIP_WBITS)
        self.written = 0
        self.hour = -1
        self.write(MAGIC)

    def write(self, data: bytes) -> None:
        out = self.z.compress(data)
        if out:
            self.f.write(out)
            self.written += len(out)

    def flush(self) -> None:
        out = self.z.flush(zlib.Z_SYNC_FLUSH)
        self.f.write(out)
        self.written += len(out)
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.write(self.z.flush(zlib.Z_FINISH))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


class Recorder:
    def __init__(self, directory: str | Path, rotate_bytes: int, log, metrics: Metrics, flush_s: float = FLUSH_S
                 ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes = max(1, int(rotate_bytes))
        self.flush_s = flush_s
        self.log = log.bind(recorder=str(self.dir))
        self.metrics = metrics
        self.files: list[str] = []
        self.frames = 0
        self.dropped = 0
        self.last_error = ""
        self._queue: deque[tuple[str, int, bytes]] = deque()
        self._queued_bytes = 0
        self._wake = threading.Condition()
        self._closing = False
        self._seq = 0
        self._file: _File | None = None
        metrics.describe("recorded_frames", "Upstream frames written to RECORD_DIR.")
        metrics.describe("recording_dropped_frames", "Frames not recorded because the disk fell behind.")
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def write(self, cluster: str, data: bytes, recv_ns: int) -> None:
        """Queue one frame (called on the event loop; never blocks on the disk)."""
        if self._queued_bytes + len(data) > MAX_QUEUE_BYTES:
            self.dropped += 1
            self.metrics.inc("recording_dropped_frames")
            if self.dropped in (1, 10, 100) or self.dropped % 10_000 == 0:
                self.log.warning("recording_behind", dropped=self.dropped, hint="the disk cannot keep up")
            return
        self._queue.append((cluster, recv_ns, bytes(data)))
        self._queued_bytes += len(data)
        if len(self._queue) == 1:
            with self._wake:
                self._wake.notify()

    def close(self) -> None:
        """Write what is queued, end the file cleanly, stop the thread (blocking: call it off the loop)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    # -- the writer thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            with self._wake:
                if not self._queue and not self._closing:
                    self._wake.wait(self.flush_s)
                closing = self._closing
            try:
                self._drain()
                now = time.monotonic()
                if self._file is not None and (closing or now - last_flush >= self.flush_s):
                    self._file.flush()
                    last_flush = now
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.log.error("recording_failed", error=self.last_error)
                self._file = None  # the next frame opens a new file
            if closing and not self._queue:
                break
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self.log.error("recording_failed", error=f"{type(exc).__name__}: {exc}")

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            cluster, recv_ns, data = queue.popleft()
            self._queued_bytes -= len(data)
            f = self._file
            if f is None or f.written >= self.rotate_bytes or f.hour != hour_of(recv_ns):
                f = self._rotate(recv_ns)
            f.write(encode_record(cluster, recv_ns, data))
            self.frames += 1
            self.metrics.inc("recorded_frames")

    def _rotate(self, recv_ns: int) -> _File:
        if self._file is not None:
            self._file.close()
        self._seq += 1
        path = self.dir / file_name(recv_ns, self._seq)
        self._file = _File(path)
        self._file.hour = hour_of(recv_ns)
        self.files.append(path.name)
        self.log.info("recording_file", file=path.name)
        return self._file

    def status(self) -> dict:
        return {"dir": str(self.dir), "files": len(self.files), "current": self.files[-1] if self.files else None,
                "frames": self.frames, "queued": len(self._queue), "dropped": self.dropped,
                "last_error": self.last_error}
