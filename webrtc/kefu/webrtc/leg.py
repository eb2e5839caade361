"""One party's leg: the server's peer connection with that party's browser or gateway.

A leg answers the party's offer with one audio codec, Opus when offered,
else PCMU (plus ``telephone-event/8000`` when offered); the answer holds all
our ICE candidates, and the party may trickle its own (``add_ice_candidate``).
Once connected, media is handled at the RTP level (``fastpath.RtpSession``):

- every inbound audio packet becomes a ``MediaFrame`` handed, synchronously,
  to each of the leg's ``sinks`` (a recorder, another leg's ``outbound``, a
  mixer's decoder); telephone-event packets go to ``on_telephone_event``;
- ``outbound.deliver(source, packet)`` sends one packet out of this leg, in
  the same call: re-stamped onto this leg's one continuous RTP stream (its
  SSRC, payload type, sequence numbers and timestamps), however many
  sources (a forwarded leg, a replaced leg, a mixer, a prompt) feed it over
  time.

So forwarding caller to agent is: the caller's datagram arrives, is
unprotected, parsed, delivered to the agent leg's outbound, re-stamped,
protected and sent, all before the event loop does anything else.

The leg reports, once, when its connection fails or the far end closes it;
a close the media plane asked for is not reported.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol

import av
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp

from kefu.webrtc.fastpath import RtpSession
from kefu.webrtc.ice import parse_candidate
from kefu.webrtc.opus import OPUS_CLOCK_RATE, packet_samples
from kefu.webrtc.rtp import MediaFrame

log = logging.getLogger(__name__)

PCMU_CLOCK_RATE = 8_000
CODEC_TIME_BASES = {"opus": Fraction(1, OPUS_CLOCK_RATE), "pcmu": Fraction(1, PCMU_CLOCK_RATE)}


class OfferRejected(ValueError):
    """The offer (or a trickled candidate) cannot be used; ``code`` is a stable machine code.

    Codes: ``invalid_offer`` (not SDP, or SDP aiortc cannot apply),
    ``audio_only`` (anything but exactly one audio section),
    ``opus_required`` (no supported codec: neither Opus nor PCMU; the name
    predates PCMU and is kept for API clients), ``unsupported_codec`` (Opus or
    PCMU offered at a clock rate that is not theirs), ``media_timeout``,
    ``invalid_candidate``.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Sink(Protocol):
    def deliver(self, source: object, packet: av.Packet | MediaFrame) -> None: ...


class Leg:
    def __init__(self, *, party: str, configuration: RTCConfiguration, on_closed: Callable[[Leg], None]) -> None:
        self.party = party
        self.sinks: tuple[Sink, ...] = ()
        self.on_telephone_event: Callable[[bytes, int], None] | None = None
        self.outbound = Outbound()
        # Set once the connection is up and packets flow both ways (DTLS connected).
        self.media_started = asyncio.Event()
        self._on_closed = on_closed
        self._closing = False
        self._pc = RTCPeerConnection(configuration)
        self._pc.on("connectionstatechange", self._connection_state_changed)
        self._session: RtpSession | None = None
        self._codec: str | None = None
        # Inbound: payload types, and the sender's stream unwrapped.
        self._audio_payload_type = -1
        self._telephone_event_payload_type = -1
        self._time_base = CODEC_TIME_BASES["opus"]
        self._opus = True
        self._ssrc: int | None = None
        self._last_timestamp = 0
        self._pts = 0
        self._last_sequence = 0
        self._sequence = 0
        self._end = 0  # pts just after the latest packet
        self._first_arrival = 0.0

    @property
    def codec(self) -> str | None:
        """The negotiated audio codec, ``"opus"`` or ``"pcmu"`` (None before the offer is answered)."""
        return self._codec

    @property
    def connection_state(self) -> str:
        return self._pc.connectionState

    @property
    def session(self) -> RtpSession | None:
        """The leg's RTP session (statistics, RTCP state), once the offer is answered."""
        return self._session

    # --- signalling -----------------------------------------------------------------

    async def answer(self, offer_sdp: str, *, timeout_s: float) -> str:
        """Answer the party's offer; the answer holds every ICE candidate of ours (gathering is complete)."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self._answer(offer_sdp)
        except OfferRejected:
            raise
        except TimeoutError:
            raise OfferRejected("media_timeout", "the media server could not answer the offer in time") from None
        except Exception as exc:  # aiortc raises many types for a bad SDP
            raise OfferRejected("invalid_offer", f"the offer could not be answered: {exc}") from exc

    async def _answer(self, offer_sdp: str) -> str:
        if not isinstance(offer_sdp, str) or not offer_sdp.lstrip().startswith("v=0"):
            raise OfferRejected("invalid_offer", "the offer is not an SDP session description")
        try:
            offer = aiortc_sdp.SessionDescription.parse(offer_sdp)
        except Exception as exc:
            raise OfferRejected("invalid_offer", f"the offer is not valid SDP: {exc}") from None
        if not offer.media:
            raise OfferRejected("invalid_offer", "the offer has no media section")
        if len(offer.media) != 1 or offer.media[0].kind != "audio":
            raise OfferRejected("audio_only", "the offer must hold exactly one audio stream and nothing else")
        media = offer.media[0]
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferRejected("invalid_offer", "the offer has no DTLS fingerprint")
        codec, telephone_event = choose_codecs(media.rtp.codecs)

        transceiver = self._pc.addTransceiver("audio", direction="sendrecv")
        self._session = RtpSession(transceiver, on_rtp=self._receive)
        self._session.on_started = self.media_started.set
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == f"audio/{codec}"]
        )
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        if len(self._pc.getTransceivers()) != 1 or transceiver.mid is None or not transceiver._codecs:
            raise OfferRejected("audio_only", "the offer must hold exactly one audio stream and nothing else")
        if telephone_event is not None:
            # aiortc knows no telephone-event and leaves it out of the answer;
            # the transceiver's negotiated codecs are what it writes there.
            transceiver._codecs.append(copy.deepcopy(telephone_event))
            self._telephone_event_payload_type = telephone_event.payloadType
        self._codec = codec
        self._opus = codec == "opus"
        self._time_base = CODEC_TIME_BASES[codec]
        self._audio_payload_type = transceiver._codecs[0].payloadType
        self.outbound._attach(self._session, self._time_base)
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        return self._pc.localDescription.sdp

    async def add_ice_candidate(self, candidate: str | None, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """A candidate the party trickled after its offer (None or "" = it has no more)."""
        if self._pc.remoteDescription is None:
            raise OfferRejected("invalid_candidate", "the leg has no offer to add candidates to")
        try:
            parsed = parse_candidate(candidate, sdp_mid, sdp_mline_index)
        except ValueError as exc:
            raise OfferRejected("invalid_candidate", str(exc)) from None
        await self._pc.addIceCandidate(parsed)

    # --- inbound media ----------------------------------------------------------------

    def _receive(self, payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int, payload: bytes) -> None:
        if payload_type != self._audio_payload_type:
            if payload_type == self._telephone_event_payload_type:
                on_event = self.on_telephone_event
                if on_event is not None:
                    on_event(payload, timestamp)
            return
        if not payload:
            return
        if ssrc != self._ssrc:
            self._new_sender(ssrc, sequence, timestamp)
        delta = (timestamp - self._last_timestamp) & 0xFFFFFFFF
        if delta < 0x80000000:
            self._pts += delta
            self._last_timestamp = timestamp
            pts = self._pts
        else:  # older than the latest packet (reordered)
            pts = self._pts + delta - 0x100000000
        step = (sequence - self._last_sequence) & 0xFFFF
        if step < 0x8000:
            self._sequence += step
            self._last_sequence = sequence
            extended_sequence = self._sequence
        else:
            extended_sequence = self._sequence + step - 0x10000
        duration = packet_samples(payload) if self._opus else len(payload)
        self._end = max(self._end, pts + duration)
        frame = MediaFrame(payload, pts, duration, self._time_base, extended_sequence, marker)
        for sink in self.sinks:
            try:
                sink.deliver(self, frame)
            except Exception:
                log.exception("%s leg: a sink failed on a packet", self.party)

    def _new_sender(self, ssrc: int, sequence: int, timestamp: int) -> None:
        """The first packet, or the party's stream restarted with a new SSRC: keep pts and sequence going."""
        if self._ssrc is None:
            self._first_arrival = time.monotonic()
            self._pts, self._sequence = 0, sequence
        else:
            wall = int((time.monotonic() - self._first_arrival) / self._time_base)
            self._pts = max(self._end, wall)
            self._sequence += 1
        self._ssrc = ssrc
        self._last_timestamp = timestamp
        self._last_sequence = sequence

    # --- the end ------------------------------------------------------------------------

    async def _connection_state_changed(self) -> None:
        state = self._pc.connectionState
        if state in ("failed", "closed") and not self._closing:
            self._closing = True
            self._stop_media()
            log.info("%s leg %s", self.party, state)
            self._on_closed(self)
            await self._pc.close()

    async def close(self) -> None:
        """Close the leg without reporting it (idempotent)."""
        self._closing = True
        self._stop_media()
        await self._pc.close()

    def _stop_media(self) -> None:
        self.sinks = ()
        self.on_telephone_event = None
        self.outbound.stop()
        if self._session is not None:
            self._session.close()


class Outbound:
    """``leg.outbound``: a sink that sends what it is given out of its leg, on one continuous RTP stream.

    Packets of one source keep their own spacing: the timestamp gap between
    two packets of a source is the gap between their ``pts``, and when the
    source numbers its packets (``MediaFrame.sequence``) its sequence gaps are
    kept too, so loss upstream stays visible to the far end.  A new source
    (a replaced leg, a mixer, a prompt) resumes where the previous one ended,
    or at the wall clock's position if that is later, with the marker bit set
    on its first packet; its packets older than the switch are dropped.
    Packets in another codec's time base than the leg's are dropped (they
    need a mixer to transcode).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._session: RtpSession | None = None
        self._time_base: Fraction = CODEC_TIME_BASES["opus"]
        self._stopped = False
        self._source: object | None = None
        self._started_at: float | None = None
        # Positions count on this leg's RTP clock from a random origin (RFC 3550 section 5.1).
        self._end = random.getrandbits(32)
        self._origin = self._end
        self._timestamp_offset = 0
        self._next_sequence = random.getrandbits(15)  # low half: no early wrap (as aiortc)
        self._sequence_offset = 0
        self._first_sequence = 0
        self._first_position = 0
        self._new_source = False
        self.sent = 0
        self.dropped = 0

    def _attach(self, session: RtpSession, time_base: Fraction) -> None:
        self._session = session
        self._time_base = time_base

    def deliver(self, source: object, packet: Any) -> None:
        session = self._session
        if session is None or not session.started or self._stopped:
            return
        time_base = packet.time_base
        if time_base is not self._time_base and time_base != self._time_base:
            self.dropped += 1
            return
        pts = packet.pts
        framed = type(packet) is MediaFrame
        if source is not self._source:
            self._switch(source, pts, packet.sequence if framed else None)
        position = pts + self._timestamp_offset
        if position < self._first_position:
            self.dropped += 1  # from before this source took over
            return
        duration = packet.duration or 0
        self._end = max(self._end, position + duration)
        if framed:
            sequence = packet.sequence + self._sequence_offset
            if sequence < self._first_sequence:
                self.dropped += 1
                return
            marker = packet.marker
        else:
            sequence = self._next_sequence
            marker = False
        if sequence >= self._next_sequence:
            self._next_sequence = sequence + 1
        if self._new_source:
            self._new_source = False
            marker = True
        if session.send_rtp(bytes(packet), sequence=sequence, timestamp=position, marker=marker):
            self.sent += 1

    def _switch(self, source: object, pts: int, sequence: int | None) -> None:
        now = self._clock()
        if self._started_at is None:
            self._started_at = now
        wall = self._origin + int((now - self._started_at) / self._time_base)
        start = max(self._end, wall)
        self._timestamp_offset = start - pts
        self._first_position = start
        if sequence is not None:
            self._sequence_offset = self._next_sequence - sequence
        self._first_sequence = self._next_sequence
        self._source = source
        self._new_source = True

    def stop(self) -> None:
        self._stopped = True


def choose_codecs(offered: list[RTCRtpCodecParameters]) -> tuple[str, RTCRtpCodecParameters | None]:
    """The audio codec to answer with (Opus, else PCMU) and the offer's telephone-event/8000, if any."""
    by_name: dict[str, list[RTCRtpCodecParameters]] = {}
    for codec in offered:
        by_name.setdefault(codec.mimeType.lower(), []).append(codec)
    telephone_event = next((c for c in by_name.get("audio/telephone-event", ()) if c.clockRate == 8000), None)
    if any(c.clockRate == OPUS_CLOCK_RATE for c in by_name.get("audio/opus", ())):
        return "opus", telephone_event
    if any(c.clockRate == PCMU_CLOCK_RATE for c in by_name.get("audio/pcmu", ())):
        return "pcmu", telephone_event
    if "audio/opus" in by_name or "audio/pcmu" in by_name:
        raise OfferRejected("unsupported_codec", "Opus must be offered at 48000 Hz and PCMU at 8000 Hz")
    raise OfferRejected("opus_required", "the offer must include Opus or PCMU audio")
