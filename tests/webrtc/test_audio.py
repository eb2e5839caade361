"""Audio primitives: Opus and mu-law codecs, 48/8 kHz resampling, mixing and tones, on real audio."""

from __future__ import annotations

import numpy as np
import pytest
from media_support import dominant_frequency, rms

from kefu.webrtc.audio import (
    FRAME,
    PCMU_FRAME,
    OpusDecoder,
    OpusEncoder,
    Resampler8kTo48k,
    Resampler48kTo8k,
    frames_of,
    mix,
    mix_minus,
    mulaw_decode,
    mulaw_encode,
    resample_8k_to_48k,
    resample_48k_to_8k,
    tone,
)


def opus_round_trip(pcm: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    payloads = [encoder.encode(frame) for frame in frames_of(pcm)]
    return payloads, np.concatenate([decoder.decode(payload) for payload in payloads])


def test_tone_has_the_asked_frequency_length_and_amplitude() -> None:
    samples = tone(440, 500, 0.5)
    assert samples.dtype == np.int16
    assert len(samples) == 24_000
    assert dominant_frequency(samples) == pytest.approx(440, abs=2)
    assert int(np.abs(samples).max()) == pytest.approx(16_384, abs=2)
    assert len(tone(1000, 20, rate=8000)) == 160


def test_opus_round_trip_keeps_a_tones_frequency_and_level() -> None:
    original = tone(1000, 1000, 0.3)
    payloads, decoded = opus_round_trip(original)

    assert len(payloads) == 50
    assert all(0 < len(payload) < 200 for payload in payloads)  # about 32 kb/s
    assert len(decoded) == 48_000
    steady = decoded[4_800:]  # after the codec's start-up
    assert dominant_frequency(steady) == pytest.approx(1000, abs=3)
    assert rms(steady) == pytest.approx(rms(original), rel=0.1)


def test_opus_decoder_conceals_a_lost_packet_and_goes_silent_after_100ms_of_loss() -> None:
    payloads, _ = opus_round_trip(tone(440, 400, 0.3))
    decoder = OpusDecoder()
    for payload in payloads:
        decoder.decode(payload)

    lost = [decoder.decode(b"") for _ in range(8)]

    assert all(len(frame) == FRAME and frame.dtype == np.int16 for frame in lost)
    assert rms(lost[0]) > 0.5 * rms(tone(440, 20, 0.3))  # the tone carries on over one lost packet
    assert all(not frame.any() for frame in lost[OpusDecoder.MAX_CONCEALED :])
    after = np.concatenate([decoder.decode(payload) for payload in payloads[:10]])
    assert dominant_frequency(after[2_400:]) == pytest.approx(440, abs=6)
    assert not OpusDecoder().decode(b"").any()


def test_opus_decoder_survives_a_corrupt_packet_and_keeps_decoding() -> None:
    payloads, _ = opus_round_trip(tone(440, 200, 0.3))
    decoder = OpusDecoder()

    assert len(decoder.decode(b"\xff\xff\xff\xff\xff")) == FRAME  # code 3 with an impossible frame count
    decoded = np.concatenate([decoder.decode(payload) for payload in payloads])
    assert dominant_frequency(decoded[2_400:]) == pytest.approx(440, abs=5)


def test_opus_encoder_takes_only_20ms_int16_frames() -> None:
    encoder = OpusEncoder()
    with pytest.raises(ValueError, match="960 samples"):
        encoder.encode(np.zeros(480, dtype=np.int16))
    with pytest.raises(ValueError, match="int16"):
        encoder.encode(np.zeros(960, dtype=np.float32))  # type: ignore[arg-type]


def test_mulaw_matches_the_g711_reference_values() -> None:
    # Decoder outputs (G.711 table 2a, times 4 for 16-bit samples): zero, the
    # first steps of segment 0, the start of segment 1, full scale.
    codes = bytes([0xFF, 0xFE, 0xF0, 0xEF, 0x80, 0x7F, 0x7E, 0x00])
    assert mulaw_decode(codes).tolist() == [0, 8, 120, 132, 32124, 0, -8, -32124]
    # Encoder decisions on the 14 most significant bits; negatives fold by one's complement (G.191).
    samples = np.array([0, 3, 4, 11, 12, -1, -4, -5, -12, -13, 32767, -32768], dtype=np.int16)
    assert list(mulaw_encode(samples)) == [0xFF, 0xFF, 0xFE, 0xFE, 0xFD, 0x7F, 0x7F, 0x7E, 0x7E, 0x7D, 0x80, 0x00]


def test_mulaw_round_trips_every_code_and_quantises_every_sample_to_its_interval() -> None:
    codes = bytes(range(256))
    again = mulaw_encode(mulaw_decode(codes))
    assert [c for c in range(256) if again[c] != c] == [0x7F]  # negative zero comes back as zero
    assert again[0x7F] == 0xFF

    linear = np.arange(-32124, 32125, dtype=np.int16)
    encoded = np.frombuffer(mulaw_encode(linear), dtype=np.uint8).astype(np.int32)
    error = np.abs(mulaw_decode(encoded.astype(np.uint8).tobytes()).astype(np.int32) - linear)
    half_step = 4 << ((~encoded >> 4) & 0x07)  # each segment's step is 8 << exponent
    assert bool(np.all(error <= half_step))
    assert len(mulaw_encode(np.zeros(PCMU_FRAME, dtype=np.int16))) == PCMU_FRAME


def test_downsampling_to_8k_keeps_a_1khz_tone_and_removes_a_6khz_tone() -> None:
    resampler = Resampler48kTo8k()
    kept = np.concatenate([resampler(frame) for frame in frames_of(tone(1000, 500, 0.5))])
    resampler = Resampler48kTo8k()
    removed = np.concatenate([resampler(frame) for frame in frames_of(tone(6000, 500, 0.5))])

    assert len(kept) == 4_000
    assert dominant_frequency(kept[160:], rate=8000) == pytest.approx(1000, abs=3)
    assert rms(kept[160:]) == pytest.approx(rms(tone(1000, 500, 0.5)), rel=0.02)
    assert rms(removed[160:]) < 0.001 * rms(tone(6000, 500, 0.5))  # more than 60 dB down


def test_upsampling_to_48k_keeps_a_1khz_tone_without_images() -> None:
    original = tone(1000, 500, 0.5, rate=8000)
    resampler = Resampler8kTo48k()
    upsampled = np.concatenate([resampler(frame) for frame in frames_of(original, PCMU_FRAME)])

    assert len(upsampled) == 24_000
    steady = upsampled[960:]
    assert dominant_frequency(steady) == pytest.approx(1000, abs=3)
    assert rms(steady) == pytest.approx(rms(original), rel=0.02)
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    frequencies = np.fft.rfftfreq(len(steady), 1 / 48_000)
    assert spectrum[frequencies > 4_600].max() < 0.002 * spectrum.max()  # the 7 kHz image is gone


def test_resamplers_carry_their_state_across_frames_so_frames_join_without_clicks() -> None:
    signal = tone(700, 300, 0.5)
    down = Resampler48kTo8k()
    framed = np.concatenate([down(frame) for frame in frames_of(signal)])
    assert np.array_equal(framed, resample_48k_to_8k(signal))

    narrow = tone(700, 300, 0.5, rate=8000)
    up = Resampler8kTo48k()
    framed = np.concatenate([up(frame) for frame in frames_of(narrow, PCMU_FRAME)])
    assert np.array_equal(framed, resample_8k_to_48k(narrow))
    # A 700 Hz sine of amplitude A moves at most 2 pi 700 A / 48000 per sample.
    assert int(np.abs(np.diff(framed[960:].astype(np.int32))).max()) <= 2 * np.pi * 700 * 16_384 / 48_000 * 1.05


def test_resampling_48k_to_8k_refuses_a_length_that_is_not_a_multiple_of_six() -> None:
    with pytest.raises(ValueError, match="multiple of 6"):
        Resampler48kTo8k()(np.zeros(961, dtype=np.int16))


def test_mix_adds_frames_and_clips_instead_of_wrapping() -> None:
    loud = np.full(FRAME, 30_000, dtype=np.int16)
    assert mix([loud, loud]).tolist() == [32767] * FRAME
    assert mix([-loud, -loud]).tolist() == [-32768] * FRAME
    a, b, c = (np.array([1, -2, 300], dtype=np.int16) * k for k in (1, 2, 3))
    assert mix([a, b, c]).tolist() == [6, -12, 1800]
    assert mix([a]).tolist() == a.tolist()


def test_mix_minus_gives_each_party_everyone_else() -> None:
    a, b, c = (np.array([v, 30_000], dtype=np.int16) for v in (1, 10, 100))
    assert [m.tolist() for m in mix_minus([a, b, c])] == [[110, 32767], [101, 32767], [11, 32767]]
    assert mix_minus([]) == []


def test_mix_refuses_frames_of_different_lengths_and_nothing_at_all() -> None:
    with pytest.raises(ValueError, match="equally long"):
        mix([np.zeros(960, dtype=np.int16), np.zeros(160, dtype=np.int16)])
    with pytest.raises(ValueError, match="at least one"):
        mix([])
