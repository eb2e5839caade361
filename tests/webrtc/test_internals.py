"""The aiortc / aioice internals the media plane hooks into are still where it expects them.

These fail (rather than calls silently losing audio) when an upgrade moves
them: the ICE host-address wrap (kefu.webrtc.ice) and everything the RTP
packet path shadows or reads (kefu.webrtc.fastpath, negotiation of
telephone-event in kefu.webrtc.leg).
"""

from __future__ import annotations

import inspect
import struct

import aioice
import aioice.ice
import pytest
from aioice import stun
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    rtcdtlstransport,
    rtcpeerconnection,
)
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from kefu.platform.settings import Settings
from kefu.webrtc import ice
from kefu.webrtc.fastpath import RtpSession, check_internals, install_rtp_demux
from kefu.webrtc.media import MediaPlane
from kefu.webrtc.passthrough import check_aiortc_internals


def test_aioice_gathers_host_candidates_through_get_host_addresses() -> None:
    source = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in source
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]


async def test_loopback_host_candidates_are_gathered_once_allowed(media: MediaPlane) -> None:
    assert media.settings.media_allow_loopback
    assert "127.0.0.1" in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    connection = aioice.Connection(ice_controlling=False, use_ipv6=False)
    try:
        await connection.gather_candidates()
        assert "127.0.0.1" in [c.host for c in connection.local_candidates]
    finally:
        await connection.close()


def test_allowing_loopback_twice_wraps_aioice_once(media_settings: Settings) -> None:
    ice.allow_loopback_host_candidates()
    wrapped = aioice.ice.get_host_addresses
    ice.allow_loopback_host_candidates()
    assert aioice.ice.get_host_addresses is wrapped
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False).count("127.0.0.1") == 1


def test_host_addresses_are_enumerated_once_per_interval_and_each_caller_gets_its_own_list() -> None:
    asked: list[tuple[bool, bool]] = []
    now = [100.0]

    def source(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        asked.append((use_ipv4, use_ipv6))
        return ["192.0.2.7"] if use_ipv4 else ["2001:db8::7"]

    cached = ice.cached_host_addresses(source, ttl_s=10.0, clock=lambda: now[0])
    first = cached(True, False)
    first.append("127.0.0.1")  # the loopback wrap appends to what it is given
    assert cached(True, False) == ["192.0.2.7"]
    assert cached(False, True) == ["2001:db8::7"]
    assert asked == [(True, False), (False, True)]
    now[0] = 109.9
    cached(True, False)
    assert len(asked) == 2  # still within the interval
    now[0] = 110.0
    assert cached(True, False) == ["192.0.2.7"]
    assert asked == [(True, False), (False, True), (True, False)]  # asked again once it expired


def test_remembering_host_addresses_twice_wraps_aioice_once_and_keeps_loopback(media_settings: Settings) -> None:
    ice.allow_loopback_host_candidates()
    ice.remember_host_addresses()
    wrapped = aioice.ice.get_host_addresses
    ice.remember_host_addresses()
    ice.allow_loopback_host_candidates()
    assert aioice.ice.get_host_addresses is wrapped
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False).count("127.0.0.1") == 1


async def test_a_node_hands_every_peer_connection_its_current_certificate_and_renews_it() -> None:
    from aiortc.rtcdtlstransport import RTCCertificate

    from kefu.webrtc import certificates

    certificates.check_internals()
    made: list[object] = []
    now = [0.0]

    def generate() -> object:
        made.append(object())
        return made[-1]

    current = certificates.reusing(generate, lifetime_s=60.0, clock=lambda: now[0])
    assert current() is current() is made[0]
    now[0] = 60.0
    assert current() is made[1] and len(made) == 2
    certificates.reuse_dtls_certificates()
    installed = RTCCertificate.generateCertificate
    certificates.reuse_dtls_certificates()
    assert RTCCertificate.generateCertificate.__func__ is installed.__func__  # wrapped once
    first, second = RTCPeerConnection(), RTCPeerConnection()
    try:
        [one], [other] = first._RTCPeerConnection__certificates, second._RTCPeerConnection__certificates  # type: ignore[attr-defined]
        assert one is other and isinstance(one, RTCCertificate)
        assert one.getFingerprints()[0].value == other.getFingerprints()[0].value
    finally:
        await first.close()
        await second.close()


def test_the_receiver_hook_matches_the_installed_aiortc() -> None:
    check_aiortc_internals()


def test_the_receiver_hook_refuses_an_aiortc_it_was_not_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiortc

    monkeypatch.setattr(aiortc, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match="aiortc 1.16.0"):
        check_aiortc_internals()


def test_the_packet_path_refuses_an_aioice_it_was_not_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice, "__version__", "0.99.0")
    with pytest.raises(RuntimeError, match="aioice 0.13.0"):
        check_aiortc_internals()


def _moved(*args: object, **kwargs: object) -> None:
    """A stand-in for an internal whose body no longer does what the packet path relies on."""


@pytest.mark.parametrize(
    ("owner", "name", "what"),
    [
        (RTCPeerConnection, "_RTCPeerConnection__connect", "sender.send"),
        (RTCPeerConnection, "_RTCPeerConnection__remoteRtp", "_codecs"),
        (rtcpeerconnection, "create_media_description_for_transceiver", "_codecs"),
        (rtcdtlstransport.RTCDtlsTransport, "_setup_srtp", "_rx_srtp"),
        (aioice.ice.StunProtocol, "datagram_received", "Connection.data_received"),
        (aioice.ice.Connection, "sendto", "_nominated"),
        (aioice.ice.StunProtocol, "send_data", "transport.sendto"),
    ],
)
def test_a_moved_internal_stops_the_media_plane_from_starting(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, what: str
) -> None:
    monkeypatch.setattr(owner, name, _moved)
    with pytest.raises(RuntimeError, match=what):
        check_aiortc_internals()


async def test_an_rtp_session_takes_over_the_transceivers_start_and_reads_its_codecs() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("audio")
        assert isinstance(transceiver, RTCRtpTransceiver) and transceiver._codecs == []
        session = RtpSession(transceiver)
        assert transceiver.sender.send == session._start_sending
        assert transceiver.receiver.receive == session._start_receiving
        assert transceiver.sender._ssrc and hasattr(transceiver.receiver.transport, "_rx_srtp")
        assert hasattr(transceiver.receiver.transport.transport._connection, "_nominated")
    finally:
        await pc.close()
    check_internals()


async def test_an_srtp_packet_whose_sequence_number_reads_like_a_stun_length_goes_to_the_media_path() -> None:
    # Bytes 2-3 of an RTP packet are its sequence number; aioice alone takes
    # them for a STUN length and parses the rest (ciphertext) as attributes:
    # here a 2-byte PRIORITY attribute, which makes its parser raise.
    attributes = struct.pack("!HH", 0x0024, 2) + b"\x01\x02\x00\x00"
    datagram = b"\x80\x60" + struct.pack("!H", len(attributes)) + b"\x00" * 16 + attributes
    with pytest.raises(struct.error):
        stun.parse_message(datagram)

    class Receiver:
        def __init__(self) -> None:
            self.data: list[tuple[bytes, int]] = []

        def data_received(self, data: bytes, component: int) -> None:
            self.data.append((data, component))

    install_rtp_demux()
    receiver = Receiver()
    protocol = aioice.ice.StunProtocol(receiver)  # type: ignore[arg-type]
    protocol.local_candidate = aioice.Candidate(
        foundation="1", component=1, transport="udp", priority=1, host="127.0.0.1", port=9, type="host"
    )
    protocol.datagram_received(datagram, ("127.0.0.1", 5000))

    assert receiver.data == [(datagram, 1)]
