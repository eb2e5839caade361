"""RTP-level media for one aiortc audio transceiver, handled where each datagram arrives.

aiortc keeps doing what it is good at for a leg: SDP offer/answer, ICE
(aioice), the DTLS handshake and the SRTP keys.  Once DTLS is up, an
``RtpSession`` takes the media over:

- Inbound: every datagram that is not STUN goes to aioice's
  ``Connection.data_received`` (``install_rtp_demux`` makes aioice decide
  that by the first byte, RFC 7983), which queues it for aiortc's DTLS task.  We
  shadow that method on the one connection with a function that takes SRTP
  and SRTCP (first byte 128-191) itself, synchronously: unprotect with the
  DTLS transport's receive session, parse the fixed RTP header, update the
  receiver-report statistics and hand the packet to ``on_rtp`` in the same
  call.  Everything else (DTLS records: alerts, close_notify) still goes to
  the original method, so aiortc still notices a far end that closes.
- Outbound: ``send_rtp`` writes a 12-byte header (this leg's SSRC and payload
  type), protects it with the DTLS transport's send session and hands it to
  the nominated candidate pair's UDP transport, synchronously, as aioice's
  own ``Connection.sendto`` would (minus its coroutine).
- aiortc's ``RTCRtpSender.send`` and ``RTCRtpReceiver.receive`` are shadowed
  on the transceiver, so aiortc never starts its per-leg RTP, RTCP and
  decoder tasks and threads; their parameters (negotiated codecs, our SSRC
  and CNAME) start the session instead.
- RTCP (RFC 3550): one timer per session sends, every 0.5-1.5 s, a sender
  report (packet and octet counts of what ``send_rtp`` sent, NTP time and the
  matching RTP timestamp) or, before anything was sent, a receiver report,
  with one report block per remote source (loss, extended highest sequence,
  jitter, LSR/DLSR) and an SDES CNAME; a BYE on close.  Inbound SRs give the
  LSR/DLSR of our reports; inbound report blocks about our SSRC give the
  round-trip time.  Feedback we cannot act on for forwarded audio (NACK,
  PLI, REMB) is ignored.

Every internal touched here is pinned (aiortc 1.16.0, aioice 0.13.0 in
pyproject.toml) and checked by ``check_internals()``, which
``MediaPlane.start()`` runs through ``passthrough.check_aiortc_internals()``
and ``tests/webrtc/test_internals.py`` asserts.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aioice.ice
import pylibsrtp
from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpTransceiver,
    rtcdtlstransport,
    rtcicetransport,
    rtcpeerconnection,
)
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters

from kefu.webrtc.rtp import (
    ReceiveStatistics,
    RtcpRrPacket,
    RtcpSrPacket,
    goodbye,
    ntp_time,
    parse_rtcp,
    parse_rtp,
    receiver_report,
    rtp_header,
    sender_report,
)

log = logging.getLogger(__name__)

# (payload_type, marker, sequence, timestamp, ssrc, payload)
RtpCallback = Callable[[int, bool, int, int, int, bytes], None]

RTP_COMPONENT = 1
MAX_REPORT_BLOCKS = 31


class RtpSession:
    """The RTP and RTCP of one audio transceiver, once its DTLS transport is connected."""

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        *,
        on_rtp: RtpCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        install_rtp_demux()
        self.on_rtp = on_rtp
        # Called once media starts (DTLS connected), and with every RTCP packet received.
        self.on_started: Callable[[], None] | None = None
        self.on_rtcp: Callable[[object], None] | None = None
        self._transceiver = transceiver
        self._clock = clock
        # Take over from aiortc before it connects: these two calls are how
        # RTCPeerConnection starts media once DTLS is up.
        transceiver.sender.send = self._start_sending  # type: ignore[method-assign]
        transceiver.receiver.receive = self._start_receiving  # type: ignore[method-assign]

        self.ssrc = 0
        self.cname = ""
        self.send_codec: RTCRtpCodecParameters | None = None
        self.receive_codecs: dict[int, RTCRtpCodecParameters] = {}
        self._media_payload_type = -1
        self._media_clock_rate = 48_000
        self.started = False
        self.closed = False

        self._tx: Any = None  # pylibsrtp.Session
        self._rx: Any = None
        self._nominated: dict[int, Any] = {}
        self._pair: Any = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] | None = None
        self._remote_addr: tuple[str, int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._errors = 0

        # Sending side (sender reports).
        self.packets_sent = 0
        self.octets_sent = 0
        self._last_timestamp = 0
        self._last_sent_at = 0.0

        # Receiving side (receiver reports).
        self.sources: dict[int, ReceiveStatistics] = {}
        self.packets_received = 0
        self.srtp_failures = 0
        self._last_sr: dict[int, tuple[int, float]] = {}  # ssrc -> (LSR, when we got it)
        self.remote_sender_reports: dict[int, Any] = {}  # ssrc -> RtcpSenderInfo
        self.remote_report: Any = None  # the last report block about our SSRC
        self.round_trip_time: float | None = None
        self.reports_sent = 0

    # --- started by aiortc's RTCPeerConnection once DTLS is connected -------------

    async def _start_sending(self, parameters: RTCRtpSendParameters) -> None:
        if self.send_codec is not None:
            return
        self.send_codec = parameters.codecs[0]
        self.ssrc = parameters.rtcp.ssrc
        self.cname = parameters.rtcp.cname or ""
        self._attach()

    async def _start_receiving(self, parameters: RTCRtpReceiveParameters) -> None:
        if self.receive_codecs:
            return
        self.receive_codecs = {codec.payloadType: codec for codec in parameters.codecs}
        # The stream's clock is its first (audio) codec's; other payload types
        # on the same SSRC (telephone-event) count for loss but not for jitter.
        self._media_payload_type = parameters.codecs[0].payloadType
        self._media_clock_rate = parameters.codecs[0].clockRate
        self._attach()

    def _attach(self) -> None:
        if self.started or self.closed:
            return
        dtls = self._transceiver.receiver.transport
        if dtls.state != "connected":
            return
        if not self.ssrc:
            self.ssrc = self._transceiver.sender._ssrc
        self._tx, self._rx = dtls._tx_srtp, dtls._rx_srtp
        connection = dtls.transport._connection
        self._nominated = connection._nominated
        deliver_other = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            if data and 127 < data[0] < 192 and not self.closed:
                # Nothing may escape into aioice: an exception from a
                # datagram callback makes the event loop close the socket.
                try:
                    if len(data) > 1 and 191 < data[1] < 209:
                        self._receive_rtcp(data)
                    else:
                        self._receive_rtp(data)
                except Exception:
                    self._log_error("handling a datagram")
            else:
                deliver_other(data, component)

        connection.data_received = data_received
        dtls.on("statechange", self._dtls_state_changed)
        self.started = True
        self._schedule_report()
        if self.on_started is not None:
            self.on_started()

    def _dtls_state_changed(self) -> None:
        if self._transceiver.receiver.transport.state in ("closed", "failed"):
            self.close()

    # --- inbound ----------------------------------------------------------------

    def _receive_rtp(self, data: bytes) -> None:
        try:
            packet = self._rx.unprotect(data)
        except pylibsrtp.Error:
            self.srtp_failures += 1
            return
        parsed = parse_rtp(packet)
        if parsed is None:
            return
        payload_type, marker, sequence, timestamp, ssrc, payload = parsed
        self.packets_received += 1
        statistics = self.sources.get(ssrc)
        if statistics is None:
            if payload_type not in self.receive_codecs:
                return  # not negotiated: not ours to count or deliver
            statistics = self.sources[ssrc] = ReceiveStatistics(self._media_clock_rate, sequence)
        if payload_type == self._media_payload_type:
            statistics.add(sequence, timestamp, self._clock())
        else:
            statistics.add(sequence)
        on_rtp = self.on_rtp
        if on_rtp is not None:
            try:
                on_rtp(payload_type, marker, sequence, timestamp, ssrc, payload)
            except Exception:
                self._log_error("handling an RTP packet")

    def _receive_rtcp(self, data: bytes) -> None:
        try:
            packet = self._rx.unprotect_rtcp(data)
        except pylibsrtp.Error:
            self.srtp_failures += 1
            return
        now = self._clock()
        for report in parse_rtcp(packet):
            if self.on_rtcp is not None:
                try:
                    self.on_rtcp(report)
                except Exception:
                    self._log_error("handling an RTCP packet")
            if isinstance(report, RtcpSrPacket):
                self._last_sr[report.ssrc] = ((report.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF, now)
                self.remote_sender_reports[report.ssrc] = report.sender_info
            elif not isinstance(report, RtcpRrPacket):
                continue  # SDES, BYE, feedback
            for block in report.reports:
                if block.ssrc != self.ssrc:
                    continue
                self.remote_report = block
                if block.lsr:
                    arrived = (ntp_time() >> 16) & 0xFFFFFFFF
                    self.round_trip_time = ((arrived - block.lsr - block.dlsr) & 0xFFFFFFFF) / 65536

    # --- outbound ---------------------------------------------------------------

    def send_rtp(
        self, payload: bytes, *, sequence: int, timestamp: int, marker: bool = False, payload_type: int | None = None
    ) -> bool:
        """Send one RTP packet now; False if the session cannot send (not connected yet, or closed)."""
        tx, codec = self._tx, self.send_codec
        if tx is None or codec is None or self.closed:
            return False
        pair = self._nominated.get(RTP_COMPONENT)
        if pair is None:
            return False
        if pair is not self._pair:
            self._pair = pair
            self._remote_addr = pair.remote_addr
            self._sendto = pair.protocol.transport.sendto
        assert self._sendto is not None and self._remote_addr is not None
        timestamp &= 0xFFFFFFFF
        header = rtp_header(
            codec.payloadType if payload_type is None else payload_type,
            marker,
            sequence & 0xFFFF,
            timestamp,
            self.ssrc,
        )
        try:
            self._sendto(tx.protect(header + payload), self._remote_addr)
        except (pylibsrtp.Error, OSError, RuntimeError):
            self._log_error("sending an RTP packet")
            return False
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._last_timestamp = timestamp
        self._last_sent_at = self._clock()
        return True

    def _send_rtcp(self, compound: bytes) -> None:
        pair = self._nominated.get(RTP_COMPONENT)
        if pair is None or self._tx is None:
            return
        try:
            pair.protocol.transport.sendto(self._tx.protect_rtcp(compound), pair.remote_addr)
        except (pylibsrtp.Error, OSError, RuntimeError):
            self._log_error("sending RTCP")

    # --- RTCP reports -------------------------------------------------------------

    def _schedule_report(self) -> None:
        # RFC 3550 section 6.3.1: randomised in [0.5, 1.5] x the interval (1 s, as aiortc and browsers use).
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(0.5 + random.random(), self._report)

    def _report(self) -> None:
        self._timer = None
        if self.closed:
            return
        try:
            self._send_rtcp(self.build_report())
            self.reports_sent += 1
        except Exception:
            self._log_error("building an RTCP report")
        self._schedule_report()

    def build_report(self) -> bytes:
        """This session's compound RTCP report as of now (SR once it has sent, else RR)."""
        now = self._clock()
        blocks = []
        for ssrc, statistics in list(self.sources.items())[:MAX_REPORT_BLOCKS]:
            lsr, dlsr = 0, 0
            last_sr = self._last_sr.get(ssrc)
            if last_sr is not None:
                lsr = last_sr[0]
                dlsr = min(int((now - last_sr[1]) * 65536), 0xFFFFFFFF)
            blocks.append(statistics.report(ssrc, lsr=lsr, dlsr=dlsr))
        if not self.packets_sent or self.send_codec is None:
            return receiver_report(self.ssrc, reports=blocks, cname=self.cname)
        # The RTP timestamp that corresponds to "now" on the timeline we send.
        rtp_now = self._last_timestamp + int((now - self._last_sent_at) * self.send_codec.clockRate)
        return sender_report(
            self.ssrc,
            ntp=ntp_time(),
            rtp_timestamp=rtp_now,
            packets=self.packets_sent,
            octets=self.octets_sent,
            reports=blocks,
            cname=self.cname,
        )

    # --- the end ------------------------------------------------------------------

    def close(self) -> None:
        """Stop reporting and sending (idempotent); says goodbye (RTCP BYE) if it can."""
        if self.closed:
            return
        if self.started:
            try:
                self._send_rtcp(goodbye(self.ssrc, cname=self.cname))
            except Exception:
                self._log_error("sending RTCP BYE")
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _log_error(self, what: str) -> None:
        self._errors += 1
        if self._errors == 1 or self._errors % 1000 == 0:
            log.exception("RTP session %08x: %s failed (%d errors so far)", self.ssrc, what, self._errors)


# --- the internals this module relies on ----------------------------------------


def check_internals() -> None:
    """Raise RuntimeError naming the first aiortc / aioice internal that is no longer where we hook it."""
    connect = inspect.getsource(RTCPeerConnection._RTCPeerConnection__connect)  # type: ignore[attr-defined]
    _require(connect, "await transceiver.sender.send(", "RTCPeerConnection.__connect starts senders with sender.send()")
    _require(connect, "await transceiver.receiver.receive(", "RTCPeerConnection.__connect starts receivers with receiver.receive()")
    _require(
        inspect.getsource(RTCPeerConnection._RTCPeerConnection__remoteRtp),  # type: ignore[attr-defined]
        "codecs=transceiver._codecs",
        "the receive parameters are the transceiver's negotiated _codecs",
    )
    _require(
        inspect.getsource(rtcpeerconnection.create_media_description_for_transceiver),
        "codecs=transceiver._codecs",
        "the answer's codecs are the transceiver's _codecs",
    )
    srtp = inspect.getsource(rtcdtlstransport.RTCDtlsTransport._setup_srtp)
    _require(srtp, "self._rx_srtp = Session(", "RTCDtlsTransport keeps its SRTP receive session in _rx_srtp")
    _require(srtp, "self._tx_srtp = Session(", "RTCDtlsTransport keeps its SRTP send session in _tx_srtp")
    _require(
        inspect.getsource(rtcicetransport.RTCIceTransport.__init__),
        "self._connection = gatherer._connection",
        "RTCIceTransport exposes its aioice Connection as _connection",
    )
    datagram_received = aioice.ice.StunProtocol.datagram_received
    _require(
        inspect.getsource(getattr(datagram_received, "kefu_original", datagram_received)),
        "self.receiver.data_received(data, self.local_candidate.component)",
        "aioice hands non-STUN datagrams to Connection.data_received",
    )
    _require(
        inspect.getsource(aioice.ice.Connection.sendto),
        "active_pair = self._nominated.get(component)",
        "aioice sends on the nominated pair in Connection._nominated",
    )
    _require(
        inspect.getsource(aioice.ice.StunProtocol.send_data),
        "self.transport.sendto(data, addr)",
        "aioice sends a datagram with the pair protocol's transport.sendto",
    )
    if "remote_addr" not in vars(aioice.ice.CandidatePair):
        raise RuntimeError("aioice's CandidatePair has no remote_addr")


def install_rtp_demux() -> None:
    """Make aioice pass datagrams that cannot be STUN straight on (process-wide, idempotent).

    aioice 0.13 first parses every datagram as STUN and, for a packet that is
    not, checks only the length field (bytes 2-3) before parsing attributes.
    An SRTP packet's bytes 2-3 are its sequence number: when that equals the
    packet's length - 20 (it happens once per 65536 packets of a stream),
    aioice parses ciphertext as STUN attributes, and the packet is lost, with
    an exception from the datagram callback when an attribute has the wrong
    size.  RFC 7983 demultiplexes on the first byte: only 0-3 starts a STUN
    message (20-63 is DTLS, 128-191 RTP/RTCP), so anything else goes to
    ``Connection.data_received`` directly, which is also one parse less per
    packet.
    """
    original = aioice.ice.StunProtocol.datagram_received
    if getattr(original, "kefu_original", None) is not None:
        return

    def datagram_received(self: aioice.ice.StunProtocol, data: bytes, addr: tuple[Any, ...]) -> None:
        if data and data[0] > 3:
            self.receiver.data_received(data, self.local_candidate.component)
        else:
            original(self, data, addr)

    datagram_received.kefu_original = original  # type: ignore[attr-defined]
    aioice.ice.StunProtocol.datagram_received = datagram_received  # type: ignore[method-assign]


def _require(source: str, needle: str, what: str) -> None:
    if needle not in source:
        raise RuntimeError(f"aiortc/aioice internals moved: expected that {what} ({needle!r} not found)")


def install_event_loop_policy() -> bool:
    """Run this process's asyncio event loops on uvloop, if installed (call before the loop starts).

    The packet path costs about a third less on uvloop.  Processes started
    through ``uvicorn.run`` already get uvloop (its default ``loop="auto"``);
    this is for other entry points (benchmarks, scripts).  Everything also
    works on the default loop.
    """
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
