"""RTP and RTCP as the forwarding path needs them: fixed headers, frames, report statistics.

Everything here runs once per packet (or per RTCP interval) on the event
loop, so the RTP side is a handful of ``struct`` calls rather than aiortc's
general ``RtpPacket`` (which parses every header extension).  Header
extensions and CSRCs of inbound packets are skipped, never forwarded: each
leg sends plain 12-byte headers with its own SSRC.

RTCP (RFC 3550 section 6) is rare (about one compound packet a second per
direction), so it reuses aiortc's packet classes for parsing and writing.
"""

from __future__ import annotations

import struct
import time
from fractions import Fraction

from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)

_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_SDES_CNAME = 1


class MediaFrame:
    """One received audio packet, as sinks see it: the attributes of an ``av.Packet`` they use.

    ``pts`` counts in ``time_base`` units (the codec's RTP clock: 1/48000 for
    Opus, 1/8000 for PCMU) from the sender's first packet, unwrapped;
    ``duration`` is in the same units; ``bytes(frame)`` is the RTP payload
    exactly as received.  ``sequence`` is the sender's RTP sequence number,
    unwrapped, so a forwarding leg can keep the sender's gaps (loss) visible
    to the far end; ``marker`` is the RTP marker bit (start of a talkspurt).
    """

    __slots__ = ("duration", "marker", "payload", "pts", "sequence", "time_base")

    def __init__(
        self, payload: bytes, pts: int, duration: int, time_base: Fraction, sequence: int, marker: bool = False
    ) -> None:
        self.payload = payload
        self.pts = pts
        self.duration = duration
        self.time_base = time_base
        self.sequence = sequence
        self.marker = marker

    @property
    def dts(self) -> int:
        return self.pts

    def __bytes__(self) -> bytes:
        return self.payload

    def __len__(self) -> int:
        return len(self.payload)

    def __repr__(self) -> str:
        return f"MediaFrame(pts={self.pts}, duration={self.duration}, sequence={self.sequence}, {len(self.payload)} bytes)"


def parse_rtp(data: bytes) -> tuple[int, bool, int, int, int, bytes] | None:
    """``(payload_type, marker, sequence, timestamp, ssrc, payload)`` of an RTP packet, or None if malformed."""
    if len(data) < 12:
        return None
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first & 0xC0 != 0x80:
        return None
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: skipped
        if len(data) < start + 4:
            return None
        start += 4 + 4 * _EXTENSION.unpack_from(data, start)[1]
    end = len(data)
    if first & 0x20:  # padding: the last byte counts it
        end -= data[-1]
    if end < start:
        return None
    return second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, data[start:end]


def rtp_header(payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int) -> bytes:
    """A fixed 12-byte RTP header (version 2, no padding, extension or CSRC)."""
    return _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc)


def ntp_time(now: float | None = None) -> int:
    """The 64-bit NTP timestamp (RFC 3550 section 4) of a ``time.time()`` value (default: now)."""
    if now is None:
        now = time.time()
    return int((now + _NTP_EPOCH_OFFSET) * (1 << 32))


class ReceiveStatistics:
    """What an RTCP receiver report says about one remote source (RFC 3550 appendix A.3 and A.8)."""

    __slots__ = (
        "_expected_prior",
        "_jitter",
        "_received_prior",
        "_transit",
        "base_sequence",
        "clock_rate",
        "cycles",
        "max_sequence",
        "received",
    )

    def __init__(self, clock_rate: int, sequence: int) -> None:
        self.clock_rate = clock_rate
        self.base_sequence = sequence
        self.max_sequence = sequence
        self.cycles = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0
        self._transit: float | None = None

    def add(self, sequence: int, timestamp: int | None = None, arrival_s: float = 0.0) -> None:
        """Count a packet; with its timestamp and arrival time (seconds), update the jitter too."""
        self.received += 1
        delta = (sequence - self.max_sequence) & 0xFFFF
        if 0 < delta < 0x8000:
            if sequence < self.max_sequence:
                self.cycles += 1 << 16
            self.max_sequence = sequence
        if timestamp is None:
            return
        # Interarrival jitter, in timestamp units (RFC 3550 section 6.4.1).
        transit = arrival_s * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 1 << 30:  # not across a timestamp wrap
                self._jitter += (d - self._jitter) / 16
        self._transit = transit

    @property
    def extended_max_sequence(self) -> int:
        return self.cycles + self.max_sequence

    @property
    def expected(self) -> int:
        return self.extended_max_sequence - self.base_sequence + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter(self) -> int:
        return int(self._jitter)

    def report(self, ssrc: int, *, lsr: int, dlsr: int) -> RtcpReceiverInfo:
        """A report block for this source; resets the "fraction lost" interval."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        return RtcpReceiverInfo(
            ssrc=ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=max(-(1 << 23), min(self.lost, (1 << 23) - 1)),
            highest_sequence=self.extended_max_sequence & 0xFFFFFFFF,
            jitter=self.jitter & 0xFFFFFFFF,
            lsr=lsr,
            dlsr=dlsr,
        )


def sender_report(
    ssrc: int, *, ntp: int, rtp_timestamp: int, packets: int, octets: int, reports: list[RtcpReceiverInfo], cname: str
) -> bytes:
    """A compound RTCP packet: SR (with report blocks) + SDES CNAME."""
    sr = RtcpSrPacket(
        ssrc=ssrc,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=rtp_timestamp & 0xFFFFFFFF,
            packet_count=packets & 0xFFFFFFFF,
            octet_count=octets & 0xFFFFFFFF,
        ),
        reports=reports,
    )
    return bytes(sr) + _sdes(ssrc, cname)


def receiver_report(ssrc: int, *, reports: list[RtcpReceiverInfo], cname: str) -> bytes:
    """A compound RTCP packet: RR + SDES CNAME (for a leg that has not sent anything yet)."""
    return bytes(RtcpRrPacket(ssrc=ssrc, reports=reports)) + _sdes(ssrc, cname)


def goodbye(ssrc: int, *, cname: str) -> bytes:
    """A compound RTCP packet ending the stream: an empty RR, SDES CNAME and BYE."""
    return receiver_report(ssrc, reports=[], cname=cname) + bytes(RtcpByePacket(sources=[ssrc]))


def _sdes(ssrc: int, cname: str) -> bytes:
    return bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=ssrc, items=[(_SDES_CNAME, cname.encode())])]))


def parse_rtcp(data: bytes) -> list[object]:
    """The packets of a compound RTCP packet ([] if malformed)."""
    try:
        return list(RtcpPacket.parse(data))
    except ValueError:
        return []


__all__ = [
    "MediaFrame",
    "ReceiveStatistics",
    "RtcpRrPacket",
    "RtcpSrPacket",
    "goodbye",
    "ntp_time",
    "parse_rtcp",
    "parse_rtp",
    "receiver_report",
    "rtp_header",
    "sender_report",
]
