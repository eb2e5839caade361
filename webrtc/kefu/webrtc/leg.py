"""One party's leg: the server's peer connection with that party's browser.

A leg answers the party's (non-trickle) offer with Opus only, hands every
inbound Opus packet to its current sinks (a recorder, the other leg's
outbound track) without decoding it, and sends whatever is delivered to its
``outbound`` track.  It reports, once, when its connection fails or the far
end closes it; a close the media plane asked for is not reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from kefu.webrtc.passthrough import ForwardedAudioTrack, tap_receiver

log = logging.getLogger(__name__)


class OfferRejected(ValueError):
    """The offer cannot be answered (malformed SDP, no Opus audio, video, timeout).

    ``code`` is a stable machine code for problem details.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Sink(Protocol):
    def deliver(self, source: object, packet: av.Packet) -> None: ...


class Leg:
    def __init__(self, *, party: str, configuration: RTCConfiguration, on_closed: Callable[["Leg"], None]) -> None:
        self.party = party
        self.outbound = ForwardedAudioTrack()
        self.sinks: tuple[Sink, ...] = ()
        self._on_closed = on_closed
        self._closing = False
        self._pc = RTCPeerConnection(configuration)
        self._pc.on("connectionstatechange", self._connection_state_changed)

    @property
    def connection_state(self) -> str:
        return self._pc.connectionState

    async def answer(self, offer_sdp: str, *, timeout_s: float) -> str:
        """Answer the party's offer; the answer holds every ICE candidate (gathering is complete)."""
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
        if not offer_sdp.lstrip().startswith("v=0"):
            raise OfferRejected("invalid_offer", "the offer is not an SDP session description")
        offer = RTCSessionDescription(sdp=offer_sdp, type="offer")
        transceiver = self._pc.addTransceiver(self.outbound, direction="sendrecv")
        opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
        transceiver.setCodecPreferences(opus)
        try:
            await self._pc.setRemoteDescription(offer)
        except Exception as exc:
            if "audio" in offer_sdp and "opus" not in offer_sdp.lower():
                raise OfferRejected("opus_required", "the offer must include Opus audio") from exc
            raise
        transceivers = self._pc.getTransceivers()
        if len(transceivers) != 1 or transceiver.mid is None:
            raise OfferRejected("audio_only", "the offer must hold exactly one audio stream and nothing else")
        tap_receiver(transceiver.receiver, self._deliver)
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        return self._pc.localDescription.sdp

    def _deliver(self, packet: av.Packet) -> None:
        for sink in self.sinks:
            sink.deliver(self, packet)

    async def _connection_state_changed(self) -> None:
        state = self._pc.connectionState
        if state in ("failed", "closed") and not self._closing:
            self._closing = True
            self.sinks = ()
            self.outbound.stop()
            log.info("%s leg %s", self.party, state)
            self._on_closed(self)
            await self._pc.close()

    async def close(self) -> None:
        """Close the leg without reporting it (idempotent)."""
        self._closing = True
        self.sinks = ()
        self.outbound.stop()
        await self._pc.close()
