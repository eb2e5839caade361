"""DTMF: in-band detection on real (coded, noisy, spoken) audio, and RFC 4733 telephone-events."""

from __future__ import annotations

import io
import subprocess

import av
import numpy as np
import pytest

from kefu.webrtc.audio import (
    PCMU_FRAME,
    OpusDecoder,
    OpusEncoder,
    Resampler8kTo48k,
    Resampler48kTo8k,
    frames_of,
    mulaw_decode,
    mulaw_encode,
    silence,
    tone,
)
from kefu.webrtc.dtmf import (
    DIGITS,
    DtmfDetector,
    TelephoneEvent,
    TelephoneEventError,
    TelephoneEventReceiver,
    build_telephone_event,
    dtmf_sequence,
    dtmf_tone,
    parse_telephone_event,
)

RATES = [8000, 48_000]


def detect(pcm: np.ndarray, rate: int) -> str:
    detector = DtmfDetector(rate)
    frame = 160 if rate == 8000 else 960
    return "".join(digit for chunk in frames_of(pcm, frame) for digit in detector.feed(chunk))


def with_noise(pcm: np.ndarray, snr_db: float, *, seed: int = 1) -> np.ndarray:
    """``pcm`` plus white noise ``snr_db`` below its power (noise over the whole band of ``pcm``'s rate)."""
    signal = pcm.astype(np.float64)
    power = np.mean(signal[signal != 0] ** 2)
    noise = np.random.default_rng(seed).normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(pcm))
    return np.clip(np.rint(signal + noise), -32768, 32767).astype(np.int16)


def espeak(text: str, voice: str, rate: int) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    with av.open(io.BytesIO(wav)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in [*container.decode(audio=0), None]
            for out in resampler.resample(frame)
        ]
    return np.concatenate(chunks)


# --------------------------------------------------------------------------- generation


def test_dtmf_tone_holds_exactly_the_two_frequencies_of_its_key() -> None:
    pcm = dtmf_tone("9", 200, 8000)
    spectrum = np.abs(np.fft.rfft(pcm))  # 5 Hz bins over 200 ms
    strongest = sorted(np.argsort(spectrum)[-2:] * 5)
    assert strongest == [850, 1475]  # 852 Hz and 1477 Hz, to the nearest bin
    assert len(dtmf_tone("1")) == 4_800
    with pytest.raises(ValueError, match="not a DTMF digit"):
        dtmf_tone("E")


# --------------------------------------------------------------------------- in-band detection


@pytest.mark.parametrize("rate", RATES)
def test_every_digit_is_detected_once(rate: int) -> None:
    for digit in DIGITS:
        pcm = np.concatenate((silence(30, rate=rate), dtmf_tone(digit, 80, rate), silence(60, rate=rate)))
        assert detect(pcm, rate) == digit


def test_every_digit_survives_an_opus_round_trip() -> None:
    pcm = dtmf_sequence(DIGITS, tone_ms=80, gap_ms=60)
    encoder, decoder = OpusEncoder(), OpusDecoder()
    decoded = np.concatenate([decoder.decode(encoder.encode(frame)) for frame in frames_of(pcm)])
    assert detect(decoded, 48_000) == DIGITS


def test_every_digit_survives_pcmu_both_ways() -> None:
    # Sent as PCMU: 48 kHz -> 8 kHz mu-law; heard at 8 kHz, and back up at 48 kHz.
    down, up = Resampler48kTo8k(), Resampler8kTo48k()
    narrow = [mulaw_decode(mulaw_encode(down(frame))) for frame in frames_of(dtmf_sequence(DIGITS, tone_ms=80))]
    assert detect(np.concatenate(narrow), 8000) == DIGITS
    assert detect(np.concatenate([up(frame) for frame in narrow]), 48_000) == DIGITS


@pytest.mark.parametrize("rate", RATES)
def test_every_digit_is_detected_in_white_noise_at_15db_snr(rate: int) -> None:
    pcm = with_noise(dtmf_sequence(DIGITS, tone_ms=80, gap_ms=60, rate=rate), 15)
    assert detect(pcm, rate) == DIGITS


@pytest.mark.parametrize("rate", RATES)
def test_a_quickly_dialled_sequence_gives_exactly_its_digits(rate: int) -> None:
    assert detect(dtmf_sequence("12#*90", tone_ms=50, gap_ms=50, rate=rate), rate) == "12#*90"


@pytest.mark.parametrize("rate", RATES)
def test_the_same_digit_twice_with_a_pause_is_two_presses(rate: int) -> None:
    assert detect(dtmf_sequence("55", tone_ms=100, gap_ms=60, rate=rate), rate) == "55"


def test_a_10ms_interruption_does_not_split_a_press() -> None:
    press = dtmf_tone("7", 80, 8000)
    assert detect(np.concatenate((press, silence(10, rate=8000), press, silence(60, rate=8000))), 8000) == "7"


def test_a_tone_of_40ms_is_a_press_and_one_of_23ms_is_not_wherever_it_starts() -> None:
    for offset in range(0, 102, 17):  # every position against the 102-sample analysis window
        lead = np.zeros(offset, dtype=np.int16)
        assert detect(np.concatenate((lead, dtmf_tone("4", 40, 8000), silence(60, rate=8000))), 8000) == "4"
        assert detect(np.concatenate((lead, dtmf_tone("4", 23, 8000), silence(60, rate=8000))), 8000) == ""


@pytest.mark.parametrize(
    ("row_db", "column_db", "detected"),
    [
        (0, -7, "1"),  # high tone 7 dB weaker: within the 8 dB normal twist
        (0, -10, ""),
        (-3, 0, "1"),  # low tone 3 dB weaker: within the 4 dB reverse twist
        (-6, 0, ""),
    ],
)
def test_twist_limits(row_db: float, column_db: float, detected: str) -> None:
    low = tone(697, 100, 0.3 * 10 ** (row_db / 20), rate=8000).astype(np.int32)
    high = tone(1209, 100, 0.3 * 10 ** (column_db / 20), rate=8000).astype(np.int32)
    assert detect((low + high).astype(np.int16), 8000) == detected


@pytest.mark.parametrize("rate", RATES)
def test_a_single_tone_silence_and_noise_are_no_digit(rate: int) -> None:
    assert detect(tone(697, 1000, 0.5, rate=rate), rate) == ""
    assert detect(tone(1336, 1000, 0.5, rate=rate), rate) == ""
    assert detect(silence(1000, rate=rate), rate) == ""
    loud_noise = np.random.default_rng(3).normal(0, 6000, rate * 2)
    assert detect(np.clip(loud_noise, -32768, 32767).astype(np.int16), rate) == ""


def test_a_dtmf_tone_too_quiet_to_be_a_key_press_is_no_digit() -> None:
    assert detect(dtmf_tone("3", 100, 8000, amplitude=0.005), 8000) == ""  # about -46 dBFS per tone


@pytest.mark.parametrize(
    ("voice", "text"),
    [
        ("en-us", "Thank you for calling. Please press one for sales, two for support, or stay on the line."),
        ("cmn", "您好，欢迎致电客服中心。请按一号键查询账单，按二号键转人工服务。"),
    ],
    ids=["english", "mandarin"],
)
@pytest.mark.parametrize("rate", RATES)
def test_speech_is_no_digit(voice: str, text: str, rate: int) -> None:
    speech = espeak(text, voice, rate)
    assert len(speech) > 3 * rate
    assert detect(speech, rate) == ""


def test_digits_are_detected_through_speech_around_them() -> None:
    speech = espeak("Please enter your account number now.", "en-us", 8000)
    pcm = np.concatenate((speech, dtmf_sequence("42", tone_ms=80, gap_ms=80, rate=8000), speech))
    assert detect(pcm, 8000) == "42"


def test_a_detector_takes_only_8k_or_48k() -> None:
    with pytest.raises(ValueError, match="8000 or 48000"):
        DtmfDetector(16_000)


def test_digits_are_reported_when_the_press_becomes_certain_not_when_it_ends() -> None:
    detector = DtmfDetector(8000)
    frames = frames_of(np.concatenate((dtmf_tone("8", 200, 8000), silence(60, rate=8000))), PCMU_FRAME)
    reported_at = [index for index, frame in enumerate(frames) if detector.feed(frame)]
    assert reported_at == [1]  # 40 ms into a 200 ms press


# --------------------------------------------------------------------------- RFC 4733


def test_a_telephone_event_payload_round_trips() -> None:
    payload = build_telephone_event("5", duration=800, end=True, volume=10)
    assert payload == bytes([5, 0x8A, 0x03, 0x20])
    assert parse_telephone_event(payload) == TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert parse_telephone_event(build_telephone_event("#", duration=160)).digit == "#"
    assert parse_telephone_event(build_telephone_event(15, duration=0)).digit == "D"
    assert parse_telephone_event(bytes([11, 0x40 | 7, 0, 160])) == TelephoneEvent(11, False, 7, 160)  # R bit ignored


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x05\x8a\x03", b"\x05\x8a\x03\x20\x00", bytes([16, 0x0A, 0, 160]), bytes([255, 0x8A, 0, 160])],
)
def test_a_malformed_or_non_dtmf_telephone_event_is_refused(payload: bytes) -> None:
    with pytest.raises(TelephoneEventError) as raised:
        parse_telephone_event(payload)
    assert isinstance(raised.value, ValueError)


def test_building_a_telephone_event_checks_its_fields() -> None:
    for bad in ({"digit": "E", "duration": 1}, {"digit": 16, "duration": 1}, {"digit": "1", "duration": 70_000}):
        with pytest.raises(ValueError):
            build_telephone_event(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="volume"):
        build_telephone_event("1", duration=1, volume=64)


def event_packets(digit: str, timestamp: int, *, updates: int = 5) -> list[tuple[bytes, int]]:
    """What a sender emits for one key press (48 kHz clock, a packet every 20 ms): start, updates, end x3."""
    packets = [(build_telephone_event(digit, duration=960 * (n + 1)), timestamp) for n in range(updates + 1)]
    end = build_telephone_event(digit, duration=960 * (updates + 2), end=True)
    return packets + [(end, timestamp)] * 3


def test_the_receiver_reports_each_press_once_from_a_realistic_stream() -> None:
    first = event_packets("1", 48_000)
    second = event_packets("2", 96_000)
    third = event_packets("1", 144_000)  # the same key again
    stream = [
        *first[:2], first[1], *first[2:],  # a duplicated update
        *second[3:4], *second[2:3], *second[4:],  # start lost, updates reordered
        *third[-3:],  # only the end packets arrived
        first[-1], second[0],  # stragglers of earlier presses
    ]  # fmt: skip
    receiver = TelephoneEventReceiver()
    reported = [(receiver.feed(payload, ts), ts) for payload, ts in stream]

    assert [(digit, ts) for digit, ts in reported if digit] == [("1", 48_000), ("2", 96_000), ("1", 144_000)]
    assert reported[0] == ("1", 48_000)  # on the start packet, not at the end


def test_the_receiver_ignores_malformed_packets_and_counts_them() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.feed(b"\x01", 100) is None
    assert receiver.feed(bytes([20, 0, 0, 160]), 100) is None
    assert receiver.feed(build_telephone_event("3", duration=160), 100) == "3"
    assert receiver.rejected == 2


def test_a_long_press_split_into_segments_is_one_press() -> None:
    receiver = TelephoneEventReceiver()
    start = 4_294_967_000  # the second segment's timestamp wraps around 2**32
    assert receiver.feed(build_telephone_event("0", duration=30_000), start) == "0"
    assert receiver.feed(build_telephone_event("0", duration=0xFFFF), start) is None
    second_segment = (start + 0xFFFF) % 2**32
    assert receiver.feed(build_telephone_event("0", duration=960), second_segment) is None
    assert receiver.feed(build_telephone_event("0", duration=4_800, end=True), second_segment) is None
    assert receiver.feed(build_telephone_event("0", duration=960), second_segment + 20_000) == "0"  # a new press
