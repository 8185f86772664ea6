"""Recording format, writer and player in process: byte-exact round trips, truncated files, rotation, pacing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.metrics import Metrics
from common.settings import SettingsError
from firehose_proxy.sources.recording import replay as replay_mod
from firehose_proxy.sources.recording.format import (
    MAGIC,
    FileReader,
    RecordingError,
    RecordParser,
    encode_record,
    recording_files,
)
from firehose_proxy.sources.recording.recorder import Recorder
from firehose_proxy.sources.recording.replay import Replayer
from tests.helpers import Log, async_wait_for, read_all

HOUR_NS = 3_600_000_000_000
T0 = 1_700_000_000 * 10**9

records_st = st.lists(st.tuples(st.sampled_from(["stocks", "crypto", "forex"]), st.integers(0, 2**63 - 1),
                                st.binary(max_size=300)), max_size=20)


@settings(max_examples=60, deadline=None)
@given(records=records_st, cuts=st.lists(st.integers(0, 5000), max_size=6))
def test_any_frames_round_trip_byte_for_byte_however_the_bytes_are_cut(records, cuts):
    blob = MAGIC + b"".join(encode_record(*r) for r in records)
    parser = RecordParser()
    got = []
    last = 0
    for cut in sorted(min(c, len(blob)) for c in cuts) + [len(blob)]:
        got += parser.feed(blob[last:cut])
        last = cut
    assert [tuple(r) for r in got] == records and parser.pending == 0


def test_not_a_recording_is_refused():
    with pytest.raises(RecordingError):
        RecordParser().feed(b"[{\"ev\":\"T\"}]\n")
    with pytest.raises(RecordingError):
        RecordParser().feed(MAGIC + b"stocks notanumber 3\nabc\n")


def record_all(tmp_path: Path, frames, rotate_bytes: int = 1 << 30) -> Recorder:
    rec = Recorder(tmp_path, rotate_bytes, Log(), Metrics("t"), flush_s=0.05)
    for cluster, ns, data in frames:
        rec.write(cluster, data, ns)
    rec.close()
    return rec


def test_recorder_rotates_by_hour_and_size_and_a_directory_plays_in_order(tmp_path):
    frames = [("stocks", T0 + k * HOUR_NS // 4, b'[{"ev":"T","sym":"A","q":%d}]' % k) for k in range(10)]
    rec = record_all(tmp_path / "hourly", frames)
    assert len(rec.files) == 3  # 10 frames a quarter hour apart from T0 (hh:13:20) span three clock hours
    assert read_all(tmp_path / "hourly") == frames
    rec = record_all(tmp_path / "small", frames, rotate_bytes=1)
    assert len(rec.files) == 10 and read_all(tmp_path / "small") == frames
    assert recording_files(tmp_path / "small" / rec.files[3]) == [tmp_path / "small" / rec.files[3]]


def test_a_file_cut_short_plays_up_to_its_last_flush(tmp_path):
    frames = [("crypto", T0 + k, b"[%d]" % k) for k in range(200)]
    rec = record_all(tmp_path, frames)
    path = tmp_path / rec.files[0]
    whole = path.read_bytes()
    path.write_bytes(whole[:-40])  # the gzip trailer and the end of the last block are gone
    reader = FileReader(path)
    got = [tuple(r) for batch in reader.batches() for r in batch]
    assert not reader.complete
    assert got == frames[:len(got)] and len(got) >= 150


async def test_replay_keeps_frames_order_and_pace(tmp_path, monkeypatch):
    monkeypatch.setattr(replay_mod, "SETTLE_S", 0.0)
    gap_ns = 100_000_000
    frames = [("stocks" if k % 2 else "crypto", T0 + k * gap_ns, b'[{"ev":"XT","pair":"B","i":%d}]' % k)
              for k in range(6)]
    record_all(tmp_path, frames)
    for speed, at_least in ((2.0, 5 * gap_ns / 2e9), (0.0, 0.0)):
        played: list[tuple[str, bytes, float]] = []
        announced: list[bytes] = []
        replayer = Replayer(str(tmp_path), speed, lambda c, f: played.append((c, f.data, time.monotonic())),
                            Log(), Metrics("t"), announce=announced.append)
        replayer.begin()
        await async_wait_for(lambda: replayer.state == "finished", what="replay over")
        assert [(c, d) for c, d, _ in played] == [(c, d) for c, _, d in frames]
        assert played[-1][2] - played[0][2] >= at_least * 0.95
        assert b'"replay_finished"' in announced[0]
    with pytest.raises(SettingsError):
        Replayer(str(tmp_path / "nothing"), 1.0, lambda c, f: None, Log(), Metrics("t"))


async def test_replay_reports_a_truncated_file_and_a_bad_frame(tmp_path, monkeypatch):
    monkeypatch.setattr(replay_mod, "SETTLE_S", 0.0)
    rec = record_all(tmp_path, [("stocks", T0, b"not json"), ("stocks", T0 + 1, b'[{"ev":"T","sym":"A"}]')])
    path = tmp_path / rec.files[0]
    path.write_bytes(path.read_bytes()[:-8])  # only the gzip trailer is gone: every frame survives

    def deliver(cluster, frame):
        frame.events  # what the hub does first: split the frame

    replayer = Replayer(str(path), 0.0, deliver, Log(), Metrics("t"))
    replayer.begin()
    await async_wait_for(lambda: replayer.state == "finished", what="replay over")
    assert (replayer.frames, replayer.bad_frames) == (2, 1)
    assert "ends early" in replayer.problems[0]
