"""Opus in and out of aiortc without decoding or re-encoding (DESIGN.md, "Media plane").

Inbound: aiortc's ``RTCRtpReceiver`` keeps its RTCP bookkeeping (statistics,
receiver reports, RTX unwrapping, depayloading) and then hands each packet to
its jitter buffer, whose complete frames go to a decoder thread.  We replace
that one jitter buffer with an ``OpusPacketTap``: it turns every RTP packet
into an ``av.Packet`` (pts on the sender's 48 kHz clock, unwrapped) and hands
it, inline, to a callback.  Nothing reaches the decoder thread, which idles.

Outbound: ``RTCRtpSender`` already packetizes an ``av.Packet`` without
encoding it (the path ``MediaPlayer(decode=False)`` uses), so a
``ForwardedAudioTrack`` that yields packets is all the sending side needs.

The inbound hook touches one private attribute of aiortc, which is pinned in
pyproject.toml; ``check_aiortc_internals`` fails loudly (and a test fails) if
that attribute moves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiortc
import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from kefu.webrtc.opus import OPUS_TIME_BASE, packet_samples
from kefu.webrtc.timeline import Timeline

log = logging.getLogger(__name__)

SUPPORTED_AIORTC = "1.16.0"
_JITTER_BUFFER_ATTR = "_RTCRtpReceiver__jitter_buffer"

PacketCallback = Callable[[av.Packet], None]


def check_aiortc_internals() -> None:
    """Raise if the aiortc internals the inbound tap relies on are not where we expect them."""
    if aiortc.__version__ != SUPPORTED_AIORTC:
        raise RuntimeError(
            f"kefu.webrtc.passthrough was written against aiortc {SUPPORTED_AIORTC}, "
            f"found {aiortc.__version__}: re-check the receiver hook before upgrading"
        )
    import inspect

    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    if "self.__jitter_buffer.add(packet)" not in source:
        raise RuntimeError("aiortc's RTCRtpReceiver no longer feeds self.__jitter_buffer.add(packet)")


class OpusPacketTap:
    """Stands in for an audio receiver's jitter buffer; delivers each packet as an ``av.Packet``."""

    def __init__(self, on_packet: PacketCallback) -> None:
        self._on_packet = on_packet
        self._last_timestamp: int | None = None
        self._position = 0

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        payload: bytes = getattr(packet, "_data", packet.payload)
        if payload:
            self._on_packet(self._to_av_packet(packet.timestamp, payload))
        return False, None

    def _to_av_packet(self, timestamp: int, payload: bytes) -> av.Packet:
        if self._last_timestamp is not None:
            delta = (timestamp - self._last_timestamp) & 0xFFFFFFFF
            if delta >= 1 << 31:  # an older packet (reordered)
                delta -= 1 << 32
            self._position += delta
        self._last_timestamp = timestamp
        out = av.Packet(payload)
        out.pts = out.dts = self._position
        out.time_base = OPUS_TIME_BASE
        out.duration = packet_samples(payload)
        return out


def tap_receiver(receiver: RTCRtpReceiver, on_packet: PacketCallback) -> None:
    """Route an audio receiver's packets to ``on_packet`` instead of its decoder."""
    if not hasattr(receiver, _JITTER_BUFFER_ATTR):
        raise RuntimeError("aiortc's RTCRtpReceiver has no jitter buffer attribute to tap")
    setattr(receiver, _JITTER_BUFFER_ATTR, OpusPacketTap(on_packet))


class ForwardedAudioTrack(MediaStreamTrack):
    """An outbound audio track fed with Opus packets from other legs (no encoding).

    Packets from successive sources (a replaced leg) are placed on one
    continuous timeline, so the far end sees one steady RTP stream.  The queue
    is bounded: if the sender stalls, the oldest audio is dropped rather than
    delayed.
    """

    kind = "audio"
    MAX_QUEUED = 50  # one second of 20 ms packets

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue()
        self._timeline = Timeline()

    def deliver(self, source: object, packet: av.Packet) -> None:
        if self.readyState != "live":
            return
        position = self._timeline.place(source, packet.pts, packet.duration or 0)
        out = av.Packet(bytes(packet))
        out.pts = out.dts = position
        out.time_base = OPUS_TIME_BASE
        out.duration = packet.duration
        if self._queue.qsize() >= self.MAX_QUEUED:
            self._queue.get_nowait()
        self._queue.put_nowait(out)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()
