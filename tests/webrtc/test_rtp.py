"""RTP headers and receiver-report arithmetic, without a network (kefu.webrtc.rtp)."""

from __future__ import annotations

import struct
from fractions import Fraction

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtpPacket,
)

from kefu.webrtc.rtp import (
    MediaFrame,
    ReceiveStatistics,
    parse_rtp,
    rtp_header,
    sender_report,
)


def test_a_header_with_csrcs_an_extension_and_padding_yields_just_the_payload() -> None:
    packet = RtpPacket(payload_type=111, marker=1, sequence_number=65535, timestamp=4_000_000_000, ssrc=0xDEADBEEF)
    packet.csrc = [1, 2]
    packet.extensions.mid = "0"
    packet.payload = b"\xf8opus"
    packet.padding_size = 3
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")])
    )

    assert parse_rtp(packet.serialize(extensions)) == (111, True, 65535, 4_000_000_000, 0xDEADBEEF, b"\xf8opus")


def test_our_headers_are_plain_rtp_that_aiortc_reads_back() -> None:
    parsed = RtpPacket.parse(rtp_header(0, False, 7, 160, 42) + b"\xff" * 160)
    assert (parsed.version, parsed.payload_type, parsed.marker, parsed.sequence_number, parsed.timestamp, parsed.ssrc) == (
        2, 0, 0, 7, 160, 42
    )
    assert parsed.payload == b"\xff" * 160


def test_malformed_rtp_is_refused() -> None:
    assert parse_rtp(b"\x80\x00") is None
    assert parse_rtp(b"\x40" + bytes(11)) is None  # version 1
    assert parse_rtp(b"\x90" + bytes(11)) is None  # an extension header that is not there
    assert parse_rtp(b"\xa0" + bytes(10) + b"\x40") is None  # more padding than packet


def test_receive_statistics_follow_the_sequence_across_its_wrap_and_count_loss() -> None:
    statistics = ReceiveStatistics(48_000, 65534)
    for sequence in (65534, 65535, 2, 3):  # 0 and 1 lost
        statistics.add(sequence)

    report = statistics.report(99, lsr=0x12345678, dlsr=65536)
    assert (report.highest_sequence, report.packets_lost, report.fraction_lost) == ((1 << 16) + 3, 2, 2 * 256 // 6)
    assert (report.lsr, report.dlsr) == (0x12345678, 65536)
    statistics.add(4)
    assert statistics.report(99, lsr=0, dlsr=0).fraction_lost == 0  # none lost since the last report


def test_a_late_packet_counts_as_received_without_moving_the_highest_sequence() -> None:
    statistics = ReceiveStatistics(48_000, 10)
    for sequence in (10, 12, 11):
        statistics.add(sequence)
    assert (statistics.extended_max_sequence, statistics.lost) == (12, 0)


def test_jitter_is_zero_for_packets_arriving_exactly_on_their_clock_and_grows_when_they_do_not() -> None:
    steady = ReceiveStatistics(8_000, 0)
    for i in range(50):
        steady.add(i, 160 * i, 100.0 + 0.02 * i)
    assert steady.jitter == 0
    shaky = ReceiveStatistics(8_000, 0)
    for i in range(50):
        shaky.add(i, 160 * i, 100.0 + 0.02 * i + (0.005 if i % 2 else 0))
    assert 20 <= shaky.jitter <= 40  # 5 ms = 40 samples at 8 kHz, smoothed over 16


def test_a_sender_report_round_trips_through_aiortcs_parser() -> None:
    compound = sender_report(7, ntp=(3_900_000_000 << 32) | 5, rtp_timestamp=(1 << 32) + 12, packets=3, octets=300, reports=[], cname="kefu")
    sr, sdes = RtcpPacket.parse(compound)
    assert isinstance(sr, RtcpSrPacket) and isinstance(sdes, RtcpSdesPacket)
    assert (sr.ssrc, sr.sender_info.rtp_timestamp, sr.sender_info.packet_count, sr.sender_info.octet_count) == (7, 12, 3, 300)
    assert sdes.chunks[0].items == [(1, b"kefu")]


def test_a_media_frame_reads_like_the_packet_it_came_in() -> None:
    frame = MediaFrame(b"\xf8\x01", 960, 960, Fraction(1, 48_000), 5, True)
    assert (bytes(frame), len(frame), frame.dts, frame.time_base) == (b"\xf8\x01", 2, 960, Fraction(1, 48_000))
    assert struct.unpack("!BBH", rtp_header(111, frame.marker, 1, 0, 0)[:4]) == (0x80, 0x80 | 111, 1)
