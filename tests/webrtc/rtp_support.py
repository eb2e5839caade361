"""A browser stand-in at the RTP level, for tests that need to know every byte on the wire.

``RawPeer`` is an ordinary aiortc peer connection (it offers like aiortc, and
does ICE, DTLS and SRTP like it) whose media runs through
``kefu.webrtc.fastpath.RtpSession``: a test sends chosen payloads with
chosen payload types, sequence numbers and timestamps (Opus, PCMU, RFC 4733
telephone-events) and sees every RTP and RTCP packet it receives, with its
header.  Waiting is on conditions (``wait_for``), never on sleeps.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from kefu.webrtc.fastpath import RtpSession
from kefu.webrtc.rtp import MediaFrame


@dataclass(frozen=True)
class Received:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


class RawPeer:
    def __init__(self, *, codec: str | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.transceiver = self.pc.addTransceiver("audio", direction="sendrecv")
        if codec is not None:
            self.transceiver.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == f"audio/{codec}"]
            )
        self.session = RtpSession(self.transceiver, on_rtp=self._on_rtp)
        self.session.on_rtcp = self._on_rtcp
        self.started = asyncio.Event()
        self.session.on_started = self.started.set
        self.received: list[Received] = []
        # (RTCP packet, RTP packets received before it, their payload octets)
        self.rtcp: list[tuple[object, int, int]] = []
        self._octets = 0
        self._changed = asyncio.Event()
        self.sequence = 1000
        self.timestamp = 50_000

    async def offer(self, *, telephone_event: int | None = None, candidates: bool = True) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        if telephone_event is not None:
            sdp = with_telephone_event(sdp, telephone_event)
        return sdp if candidates else without_candidates(sdp)

    def local_candidates(self) -> list[str]:
        return [line[2:] for line in self.pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    def send(
        self, payload: bytes, *, samples: int = 960, payload_type: int | None = None, marker: bool = False, skip: int = 0
    ) -> None:
        """One RTP packet; ``skip`` sequence numbers are left out first (as if lost)."""
        self.sequence = (self.sequence + skip) & 0xFFFF
        self.timestamp += skip * samples
        assert self.session.send_rtp(
            payload, sequence=self.sequence, timestamp=self.timestamp, marker=marker, payload_type=payload_type
        ), "the peer cannot send yet"
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp += samples

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        await self.pc.close()

    def _on_rtp(self, payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int, payload: bytes) -> None:
        self.received.append(Received(payload_type, marker, sequence, timestamp, ssrc, payload))
        self._octets += len(payload)
        self._changed.set()

    def _on_rtcp(self, packet: object) -> None:
        self.rtcp.append((packet, len(self.received), self._octets))
        self._changed.set()


class Collected(list):  # type: ignore[type-arg]
    """A list that callbacks append to, and a test can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def append(self, item: object) -> None:
        super().append(item)
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


class FrameSink:
    """A leg sink that keeps every frame it is given."""

    def __init__(self) -> None:
        self.frames = Collected()

    def deliver(self, source: object, packet: MediaFrame) -> None:
        self.frames.append(packet)


def with_telephone_event(sdp: str, payload_type: int) -> str:
    """The offer as Chromium would make it: telephone-event/8000 offered beside the audio codecs."""
    sdp = re.sub(r"^(m=audio \S+ \S+ [0-9 ]+)$", rf"\1 {payload_type}", sdp, count=1, flags=re.MULTILINE)
    return sdp.replace(
        "a=rtpmap:", f"a=rtpmap:{payload_type} telephone-event/8000\r\na=fmtp:{payload_type} 0-16\r\na=rtpmap:", 1
    )


def without_candidates(sdp: str) -> str:
    """A description as a trickling peer sends it: no candidates, no end-of-candidates."""
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )


def answer_ssrc(sdp: str) -> int:
    [ssrc] = {int(m) for m in re.findall(r"^a=ssrc:(\d+) ", sdp, flags=re.MULTILINE)}
    return ssrc


def rtpmaps(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=rtpmap:")]


def opus_packets(count: int, frequency: float = 440.0) -> list[bytes]:
    """Real Opus packets (20 ms each) of a slowly rising tone (so that no two packets are alike)."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48_000, "mono", "s16", 32_000
    encoder.options = {"frame_duration": "20"}
    encoder.open()
    t = np.arange(960 * (count + 2)) / 48_000
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * (frequency * t + 50 * t * t))).astype(np.int16)
    packets: list[bytes] = []
    for i in range(count + 2):
        frame = av.AudioFrame.from_ndarray(pcm[i * 960 : (i + 1) * 960].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, i * 960, Fraction(1, 48_000)
        packets += [bytes(p) for p in encoder.encode(frame)]
    assert len(set(packets[:count])) == count
    return packets[:count]


def recorded_packets(path: object) -> list[bytes]:
    """The Opus packets of an Ogg Opus file, as stored (no decoding)."""
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]
