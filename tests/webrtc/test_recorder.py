"""Ogg Opus recording from packets: durations, gaps, and files that survive a killed process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_support import decode_recording, dominant_frequency, rms

from kefu.webrtc.opus import packet_samples
from kefu.webrtc.recorder import OggOpusRecorder


def opus_packets(frequency: float, seconds: float) -> list[av.Packet]:
    """Real Opus packets of a tone, 20 ms each, pts in 48 kHz samples."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48_000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    t = np.arange(int(48_000 * seconds)) / 48_000
    signal = (10_000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    payloads: list[bytes] = []
    for start in range(0, len(signal), 960):
        frame = av.AudioFrame.from_ndarray(signal[start : start + 960].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = start
        payloads += [bytes(p) for p in encoder.encode(frame)]
    packets = []
    for index, payload in enumerate(payloads):
        packet = av.Packet(payload)
        packet.pts = index * 960
        packet.time_base = Fraction(1, 48_000)
        packet.duration = packet_samples(payload)
        packets.append(packet)
    return packets


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opus_packet_durations_come_from_the_toc_byte() -> None:
    assert packet_samples(b"\xf8") == 960  # CELT fullband 20 ms, one frame
    assert packet_samples(b"\xfc\x00") == 960  # stereo flag does not change duration
    assert packet_samples(b"\x09") == 1920  # SILK NB 20 ms, two frames (code 1)
    assert packet_samples(b"\x0b\x03") == 2880  # SILK NB 20 ms, code 3 with three frames
    assert packet_samples(b"") == 0


def test_a_gap_in_the_packets_is_recorded_as_silence_of_the_same_length(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = OggOpusRecorder(tmp_path / "caller.ogg", clock=clock)
    packets = opus_packets(440, 2.0)
    source = object()
    for packet in packets[:50] + packets[75:]:  # half a second lost
        recorder.deliver(source, packet)
    recorder.close()

    assert recorder.duration_ms == 2000
    samples = decode_recording(tmp_path / "caller.ogg")
    assert len(samples) == pytest.approx(2 * 48_000, abs=960)
    assert dominant_frequency(samples[9_600:38_400]) == pytest.approx(440, abs=2)
    assert rms(samples[50 * 960 + 2_400 : 75 * 960 - 2_400]) < 0.01 * rms(samples[9_600:38_400])
    assert dominant_frequency(samples[-38_400:]) == pytest.approx(440, abs=2)


def test_a_leg_replaced_later_resumes_at_the_wall_clock_position(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = OggOpusRecorder(tmp_path / "agent.ogg", clock=clock)
    first, second = object(), object()
    for packet in opus_packets(440, 1.0):
        recorder.deliver(first, packet)
    clock.now += 1.5  # the new leg's first packet arrives 1.5 s after recording started
    for packet in opus_packets(1000, 1.0):
        recorder.deliver(second, packet)
    recorder.close()
    assert recorder.duration_ms == 2500


def test_a_recorder_that_never_got_audio_leaves_no_file(tmp_path: Path) -> None:
    recorder = OggOpusRecorder(tmp_path / "t" / "caller.ogg")
    recorder.close()
    assert not recorder.has_audio
    assert not (tmp_path / "t").exists()


def test_a_process_killed_mid_recording_leaves_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "caller.ogg"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_recorder import opus_packets
        from kefu.webrtc.recorder import OggOpusRecorder
        recorder = OggOpusRecorder(__import__("pathlib").Path({str(path)!r}))
        source = object()
        for packet in opus_packets(440, 3.0):
            recorder.deliver(source, packet)
        os._exit(0)  # no close(), no flush at exit: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    samples = decode_recording(path)
    # Pages hold at most 0.2 s: only the last page can be lost.
    assert 2.75 * 48_000 <= len(samples) <= 3.0 * 48_000
    assert dominant_frequency(samples[-24_000:]) == pytest.approx(440, abs=3)
