"""Facts about Opus packets the media plane needs without decoding them.

RFC 6716 section 3.1: the first byte of every Opus packet (the TOC byte) says
how long the packet plays; that is all the forwarding and recording paths
read.  Everything here counts in 48 kHz samples, Opus's (and WebRTC's) clock.
"""

from __future__ import annotations

from fractions import Fraction

OPUS_CLOCK_RATE = 48_000
OPUS_TIME_BASE = Fraction(1, OPUS_CLOCK_RATE)
SAMPLES_PER_20MS = 960

# A TOC-only packet (config 31: CELT fullband 20 ms, mono, one frame of length
# zero).  Decoders treat a zero-length frame as "no data" and play 20 ms of
# silence (or concealment), so it fills gaps in a recording.
SILENCE_20MS = b"\xf8"

_SILK_FRAME = (480, 960, 1920, 2880)  # 10, 20, 40, 60 ms
_HYBRID_FRAME = (480, 960)  # 10, 20 ms
_CELT_FRAME = (120, 240, 480, 960)  # 2.5, 5, 10, 20 ms


def packet_samples(payload: bytes) -> int:
    """How many 48 kHz samples an Opus packet plays (0 for a malformed packet)."""
    if not payload:
        return 0
    toc = payload[0]
    config = toc >> 3
    if config < 12:
        frame = _SILK_FRAME[config % 4]
    elif config < 16:
        frame = _HYBRID_FRAME[config % 2]
    else:
        frame = _CELT_FRAME[config % 4]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        frames = payload[1] & 0x3F if len(payload) > 1 else 0
    return frame * frames
