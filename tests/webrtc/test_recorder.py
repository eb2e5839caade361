"""Recording from packets: Ogg Opus and mu-law WAV files, durations, gaps, pause/resume,
durable close, and files that survive a killed process."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media_support import decode_recording, dominant_frequency, rms

from kefu.webrtc import recorder as recorder_module
from kefu.webrtc.opus import packet_samples
from kefu.webrtc.recorder import OggOpusRecorder, PausedInterval, WavMulawRecorder, recorder_for


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


def shifted(packets: list[av.Packet], samples: int) -> list[av.Packet]:
    """The same packets, ``samples`` later on the sender's clock."""
    for packet in packets:
        packet.pts += samples
    return packets


def pcmu_packets(frequency: float, seconds: float, *, start: int = 0) -> list[av.Packet]:
    """Real G.711 mu-law packets of a tone (PyAV's encoder), 20 ms (160 bytes) each, pts in 8 kHz samples."""
    encoder = av.CodecContext.create("pcm_mulaw", "w")
    encoder.sample_rate = 8_000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    t = np.arange(int(8_000 * seconds)) / 8_000
    signal = (10_000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    packets = []
    for index, offset in enumerate(range(0, len(signal), 160)):
        frame = av.AudioFrame.from_ndarray(signal[offset : offset + 160].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8_000
        frame.pts = offset
        [encoded] = encoder.encode(frame)
        packet = av.Packet(bytes(encoded))
        packet.pts = start + index * 160
        packet.time_base = Fraction(1, 8_000)
        packet.duration = 160
        packets.append(packet)
    return packets


def read_wav(path: Path) -> dict[str, object]:
    """The chunks of a WAV file, parsed by hand (the ``wave`` module reads PCM only)."""
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    chunks: dict[str, bytes] = {}
    offset = 12
    while offset + 8 <= len(raw):
        name, size = raw[offset : offset + 4].decode(), struct.unpack("<I", raw[offset + 4 : offset + 8])[0]
        chunks[name] = raw[offset + 8 : offset + 8 + size]
        offset += 8 + size + size % 2
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", chunks["fmt "][:16])
    return {
        "riff_size": struct.unpack("<I", raw[4:8])[0], "file_size": len(raw), "format": (tag, channels, rate, byte_rate, align, bits),
        "fact": struct.unpack("<I", chunks["fact"])[0], "data": chunks["data"],
    }


def decode_wav(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.codec_context.sample_rate, stream.codec_context.channels) == ("pcm_mulaw", 8_000, 1)
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])


def payloads(packets: list[av.Packet]) -> bytes:
    return b"".join(bytes(p) for p in packets)


def tone_energy(samples: np.ndarray, frequency: float, rate: int = 48_000) -> float:
    spectrum = np.abs(np.fft.rfft(np.asarray(samples, dtype=np.float64) * np.hanning(len(samples))))
    index = round(frequency * len(samples) / rate)
    return float(spectrum[index - 3 : index + 4].max())


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


# --- pause and resume ----------------------------------------------------------------


def test_paused_audio_is_not_recorded_and_the_pause_is_silence_of_its_wall_clock_length(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = OggOpusRecorder(tmp_path / "caller.ogg", clock=clock)
    leg = object()
    for packet in opus_packets(440, 1.0):
        recorder.deliver(leg, packet)
    clock.now = 101.0
    recorder.pause()
    assert recorder.paused
    for packet in shifted(opus_packets(1000, 1.0), 48_000):  # said while paused: never written
        recorder.deliver(leg, packet)
    clock.now = 102.0
    recorder.resume()
    assert not recorder.paused
    for packet in shifted(opus_packets(440, 1.0), 96_000):
        recorder.deliver(leg, packet)
    clock.now = 103.0
    recorder.close()

    assert recorder.duration_ms == 3000
    assert recorder.paused_intervals_ms == (PausedInterval(1000, 2000),) == ((1000, 2000),)
    samples = decode_recording(tmp_path / "caller.ogg")
    assert len(samples) == pytest.approx(3 * 48_000, abs=960)
    spoken = samples[9_600:38_400]
    assert dominant_frequency(spoken) == pytest.approx(440, abs=2)
    assert rms(samples[48_000 + 2_400 : 96_000 - 2_400]) < 0.01 * rms(spoken)
    assert dominant_frequency(samples[-38_400:]) == pytest.approx(440, abs=2)
    assert tone_energy(samples, 1000) < 0.01 * tone_energy(samples, 440)


def test_a_party_silent_through_the_pause_stays_aligned_with_the_other_party(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = OggOpusRecorder(tmp_path / "caller.ogg", clock=clock)
    agent = OggOpusRecorder(tmp_path / "agent.ogg", clock=clock)
    caller_leg, agent_leg, agent_new_leg = object(), object(), object()
    caller_packets, agent_packets = opus_packets(440, 3.0), opus_packets(1000, 1.0)
    for second in range(3):
        for recorder in (caller, agent):
            if second == 1:
                recorder.pause()
            if second == 2:
                recorder.resume()
        for packet in caller_packets[second * 50 : (second + 1) * 50]:
            caller.deliver(caller_leg, packet)
        if second == 0:  # the agent talks, then its page reloads: silent until after the pause
            for packet in agent_packets:
                agent.deliver(agent_leg, packet)
        if second == 2:
            for packet in opus_packets(1000, 1.0):
                agent.deliver(agent_new_leg, packet)
        clock.now += 1.0
    caller.close()
    agent.close()

    assert (caller.duration_ms, agent.duration_ms) == (3000, 3000)
    assert caller.paused_intervals_ms == agent.paused_intervals_ms == ((1000, 2000),)
    heard = decode_recording(tmp_path / "agent.ogg")
    assert dominant_frequency(heard[-38_400:]) == pytest.approx(1000, abs=2)
    assert rms(heard[48_000 + 2_400 : 96_000 - 2_400]) < 0.01 * rms(heard[-38_400:])


def test_pause_and_resume_are_idempotent_and_a_recording_that_ends_paused_ends_where_the_pause_began(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = OggOpusRecorder(tmp_path / "caller.ogg", clock=clock)
    leg = object()
    packets = opus_packets(440, 3.0)
    for packet in packets[:25]:
        recorder.deliver(leg, packet)
    clock.now = 100.5
    recorder.pause()
    clock.now = 100.7
    recorder.pause()
    clock.now = 101.0
    recorder.resume()
    clock.now = 101.2
    recorder.resume()
    for packet in packets[50:75]:
        recorder.deliver(leg, packet)
    clock.now = 101.5
    recorder.pause()
    assert recorder.paused_intervals_ms == ((500, 1000), (1500, None))
    for packet in packets[75:]:
        recorder.deliver(leg, packet)
    clock.now = 102.5
    recorder.close()
    recorder.resume()
    recorder.pause()

    assert not recorder.paused
    assert recorder.paused_intervals_ms == ((500, 1000), (1500, 2500))
    assert recorder.duration_ms == 1500
    assert len(decode_recording(tmp_path / "caller.ogg")) == pytest.approx(1.5 * 48_000, abs=960)


def test_a_recording_paused_before_its_first_packet_starts_with_silence_and_one_never_resumed_leaves_no_file(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    recorder = OggOpusRecorder(tmp_path / "caller.ogg", clock=clock)
    recorder.pause()
    leg = object()
    packets = opus_packets(440, 1.0)
    for packet in packets[:25]:
        recorder.deliver(leg, packet)
    assert not recorder.has_audio
    clock.now = 100.5
    recorder.resume()
    for packet in packets[25:]:
        recorder.deliver(leg, packet)
    recorder.close()
    assert (recorder.duration_ms, recorder.paused_intervals_ms) == (1000, ((0, 500),))
    samples = decode_recording(tmp_path / "caller.ogg")
    assert rms(samples[2_400:21_600]) < 0.01 * rms(samples[-19_200:])

    never = OggOpusRecorder(tmp_path / "t" / "agent.ogg", clock=clock)
    never.pause()
    for packet in opus_packets(440, 0.5):
        never.deliver(leg, packet)
    never.close()
    assert not never.has_audio
    assert not (tmp_path / "t").exists()


# --- PCMU: mu-law WAV ------------------------------------------------------------------


def test_pcmu_payloads_become_a_mulaw_wav_byte_for_byte_with_gaps_and_pauses_as_mulaw_silence(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = recorder_for("pcmu", tmp_path / "t" / "c" / "caller.ogg", clock=clock)
    assert isinstance(recorder, WavMulawRecorder)
    assert recorder.path == tmp_path / "t" / "c" / "caller.wav"
    packets = pcmu_packets(440, 4.0)
    leg = object()
    for packet in packets[:50] + packets[75:100]:  # a quarter of a second lost
        recorder.deliver(leg, packet)
    clock.now = 102.0
    recorder.pause()
    for packet in packets[100:150]:
        recorder.deliver(leg, packet)
    clock.now = 103.0
    recorder.resume()
    for packet in packets[150:]:
        recorder.deliver(leg, packet)
    clock.now = 104.0
    recorder.close()

    silence = b"\xff" * 160
    expected = payloads(packets[:50]) + silence * 25 + payloads(packets[75:100]) + silence * 50 + payloads(packets[150:])
    wav = read_wav(recorder.path)
    assert wav["format"] == (7, 1, 8_000, 8_000, 1, 8)
    assert wav["data"] == expected
    assert (wav["fact"], wav["riff_size"]) == (len(expected), wav["file_size"] - 8)
    assert (recorder.duration_ms, recorder.paused_intervals_ms) == (4000, ((2000, 3000),))
    samples = decode_wav(recorder.path)
    assert len(samples) == 32_000
    assert dominant_frequency(samples[:8_000], rate=8_000) == pytest.approx(440, abs=2)
    assert np.abs(samples[16_000:24_000]).max() == 0  # 0xFF decodes to exactly 0


def test_an_odd_sized_wav_data_chunk_is_padded_and_still_reads(tmp_path: Path) -> None:
    recorder = WavMulawRecorder(tmp_path / "agent.wav")
    packet = av.Packet(b"\x10" * 161)
    packet.pts = 0
    recorder.deliver(object(), packet)
    recorder.close()
    wav = read_wav(recorder.path)
    assert (len(wav["data"]), wav["fact"], wav["file_size"], wav["riff_size"]) == (161, 161, 58 + 162, 58 + 162 - 8)  # type: ignore[arg-type]
    assert len(decode_wav(recorder.path)) == 161


def test_a_process_killed_mid_pcmu_recording_leaves_a_complete_wav(tmp_path: Path) -> None:
    path = tmp_path / "caller.wav"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_recorder import pcmu_packets
        from kefu.webrtc.recorder import WavMulawRecorder
        recorder = WavMulawRecorder(__import__("pathlib").Path({str(path)!r}))
        source = object()
        for packet in pcmu_packets(440, 3.0):
            recorder.deliver(source, packet)
        os._exit(0)  # no close(), no flush at exit: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    wav = read_wav(path)
    # Every delivered payload is on disk and the header already says so.
    assert wav["data"] == payloads(pcmu_packets(440, 3.0))
    assert (wav["fact"], wav["riff_size"]) == (24_000, wav["file_size"] - 8)
    samples = decode_wav(path)
    assert len(samples) == 24_000
    assert dominant_frequency(samples[-8_000:], rate=8_000) == pytest.approx(440, abs=2)


def test_recorder_for_picks_the_format_of_the_negotiated_codec(tmp_path: Path) -> None:
    opus = recorder_for("opus", tmp_path / "caller")
    pcmu = recorder_for("PCMU", tmp_path / "agent.ogg")
    assert (type(opus), opus.path, opus.codec) == (OggOpusRecorder, tmp_path / "caller.ogg", "opus")
    assert (type(pcmu), pcmu.path, pcmu.codec) == (WavMulawRecorder, tmp_path / "agent.wav", "pcmu")
    with pytest.raises(ValueError, match="g722"):
        recorder_for("g722", tmp_path / "x")


@pytest.mark.parametrize(("codec", "packets"), [("opus", lambda: opus_packets(440, 0.2)), ("pcmu", lambda: pcmu_packets(440, 0.2))])
def test_close_fsyncs_the_file_its_folder_and_the_folders_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, packets
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    (tmp_path / "recordings").mkdir()
    recorder = recorder_for(codec, tmp_path / "recordings" / "tenant" / "call" / "caller")
    for packet in packets():
        recorder.deliver(object(), packet)
    monkeypatch.setattr(recorder_module.os, "fsync", fsync)
    recorder.close()
    assert sorted(synced) == sorted([
        str(recorder.path), str(tmp_path / "recordings" / "tenant" / "call"), str(tmp_path / "recordings" / "tenant"),
        str(tmp_path / "recordings"),
    ])
