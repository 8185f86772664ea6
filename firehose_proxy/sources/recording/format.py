"""The recording format: gzip files of length-framed records, each one upstream frame byte for byte. Pure.

A file starts with the line ``tickfan-recording 1``; then, per frame, a header line ``<cluster> <receive time, Unix
ns> <length>`` followed by exactly ``length`` bytes of the frame and a newline. The length framing keeps frames
byte-exact whatever they contain; the text header keeps a recording readable with ``zcat``. The writer flushes the
gzip stream with a sync flush every fraction of a second, so a file cut short by a crash still decompresses up
to its last flush: :class:`RecordParser` yields every complete record and reports the bytes of an incomplete one.

Files are named ``tickfan-<UTC start, to the microsecond>Z-<seq>.rec.gz``: in a directory, name order is time order.
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path
from typing import Iterator, NamedTuple

MAGIC = b"tickfan-recording 1\n"
SUFFIX = ".rec.gz"
GZIP_WBITS = 31  # zlib with a gzip header and trailer


class RecordingError(ValueError):
    """Bytes that are not a tickfan recording."""


class Record(NamedTuple):
    cluster: str
    recv_ns: int
    data: bytes


def encode_record(cluster: str, recv_ns: int, data: bytes) -> bytes:
    return b"%s %d %d\n%s\n" % (cluster.encode(), recv_ns, len(data), data)


def file_name(start_ns: int, seq: int) -> str:
    stamp = dt.datetime.fromtimestamp(start_ns / 1e9, dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    return f"tickfan-{stamp}Z-{seq:04d}{SUFFIX}"


def hour_of(ns: int) -> int:
    return ns // 3_600_000_000_000


class RecordParser:
    """Incremental: feed decompressed bytes, get complete records in order."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._started = False

    def feed(self, chunk: bytes) -> list[Record]:
        buf = self._buf
        buf += chunk
        if not self._started:
            if len(buf) < len(MAGIC):
                if not MAGIC.startswith(bytes(buf)):
                    raise RecordingError("not a tickfan recording (bad first line)")
                return []
            if not buf.startswith(MAGIC):
                raise RecordingError("not a tickfan recording (bad first line)")
            del buf[:len(MAGIC)]
            self._started = True
        out: list[Record] = []
        pos = 0
        while True:
            eol = buf.find(b"\n", pos, pos + 128)
            if eol < 0:
                if len(buf) - pos >= 128:
                    raise RecordingError(f"bad record header at byte {pos}")
                break
            try:
                cluster, recv, length = buf[pos:eol].decode().split(" ")
                recv_ns, start, end = int(recv), eol + 1, eol + 1 + int(length)
            except ValueError:
                raise RecordingError(f"bad record header {bytes(buf[pos:eol])[:80]!r}") from None
            if end + 1 > len(buf):
                break
            if buf[end:end + 1] != b"\n":
                raise RecordingError(f"record of {length} bytes not followed by a newline")
            out.append(Record(cluster, recv_ns, bytes(buf[start:end])))
            pos = end + 1
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record held back (at the end of a file: what a crash cut off)."""
        return len(self._buf)


def recording_files(path: str | Path) -> list[Path]:
    """The files of a recording: the file itself, or a directory's ``*.rec.gz`` in name (= time) order."""
    p = Path(path)
    if p.is_dir():
        return sorted(p.glob("*" + SUFFIX))
    return [p] if p.is_file() else []


class FileReader:
    """One recording file as batches of records, in order. A file cut short (a crash) ends at its last complete
    record; :attr:`complete` then says False and :attr:`cut_bytes` how much was lost after it."""

    def __init__(self, path: Path, chunk_bytes: int = 1 << 20) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.complete = True
        self.cut_bytes = 0

    def batches(self) -> Iterator[list[Record]]:
        parser = RecordParser()
        inflater = zlib.decompressobj(GZIP_WBITS)
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(self.chunk_bytes):
                    data = inflater.decompress(chunk)
                    while inflater.eof and inflater.unused_data:  # a second gzip member follows
                        rest = inflater.unused_data
                        inflater = zlib.decompressobj(GZIP_WBITS)
                        data += inflater.decompress(rest)
                    records = parser.feed(data)
                    if records:
                        yield records
        except zlib.error as exc:
            raise RecordingError(f"{self.path.name}: not gzip data: {exc}") from None
        self.cut_bytes = parser.pending
        self.complete = inflater.eof and not parser.pending
