"""A leg's packet path, seen from the wire: real aiortc peers over loopback, every RTP byte checked.

The peers (``rtp_support.RawPeer``) offer like aiortc and do ICE, DTLS and
SRTP like it, but send chosen payloads and keep every packet they receive,
so these tests can assert what the media plane puts on the wire: payloads,
payload types, SSRCs, sequence numbers, timestamps and RTCP reports.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import pytest
from aiortc import RTCConfiguration
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket
from rtp_support import (
    Collected,
    FrameSink,
    RawPeer,
    answer_ssrc,
    opus_packets,
    recorded_packets,
    rtpmaps,
    without_candidates,
)

from kefu.webrtc.ice import allow_loopback_host_candidates
from kefu.webrtc.leg import Leg, OfferRejected
from kefu.webrtc.opus import SILENCE_20MS
from kefu.webrtc.recorder import OggOpusRecorder
from kefu.webrtc.rtp import MediaFrame

TELEPHONE_EVENT = 101


class Parties:
    """Peers and legs made by a test, all closed at its end."""

    def __init__(self) -> None:
        self.peers: list[RawPeer] = []
        self.legs: list[Leg] = []
        self.closed = Collected()

    def peer(self, codec: str | None = None) -> RawPeer:
        peer = RawPeer(codec=codec)
        self.peers.append(peer)
        return peer

    def leg(self, party: str) -> Leg:
        leg = Leg(party=party, configuration=RTCConfiguration(iceServers=[]), on_closed=self.closed.append)
        self.legs.append(leg)
        return leg

    async def connect(self, peer: RawPeer, party: str, **offer: object) -> tuple[Leg, str]:
        """A leg answering ``peer``'s offer, both ends connected with media started."""
        leg = self.leg(party)
        answer = await leg.answer(await peer.offer(**offer), timeout_s=10)  # type: ignore[arg-type]
        await peer.accept(answer)
        await started(peer, leg)
        return leg, answer


async def started(peer: RawPeer, leg: Leg) -> None:
    await asyncio.wait_for(asyncio.gather(peer.started.wait(), leg.media_started.wait()), 10)


@pytest.fixture
async def parties() -> AsyncIterator[Parties]:
    allow_loopback_host_candidates()
    made = Parties()
    yield made
    for leg in made.legs:
        await leg.close()
    for peer in made.peers:
        await peer.close()


def consecutive(values: list[int], modulo: int = 1 << 16) -> bool:
    return all((b - a) % modulo == 1 for a, b in pairwise(values))


def steps(values: list[int]) -> set[int]:
    return {(b - a) % (1 << 32) for a, b in pairwise(values)}


# --- forwarding ------------------------------------------------------------------------


async def test_opus_is_forwarded_byte_for_byte_on_the_far_legs_stream_and_recorded_as_received(
    parties: Parties, tmp_path: Path
) -> None:
    caller, agent = parties.peer(), parties.peer()
    caller_leg, caller_answer = await parties.connect(caller, "caller")
    agent_leg, agent_answer = await parties.connect(agent, "agent")
    assert rtpmaps(caller_answer) == ["a=rtpmap:96 opus/48000/2"]
    assert caller_leg.codec == agent_leg.codec == "opus"
    recorder = OggOpusRecorder(tmp_path / "caller.ogg")
    caller_leg.sinks = (recorder, agent_leg.outbound)
    agent_leg.sinks = (caller_leg.outbound,)

    said_by_caller, said_by_agent = opus_packets(50, 440.0), opus_packets(10, 1000.0)
    for payload in said_by_caller:
        caller.send(payload)
    for payload in said_by_agent:
        agent.send(payload)
    await agent.wait_for(lambda: len(agent.received) == 50)
    await caller.wait_for(lambda: len(caller.received) == 10)

    assert [r.payload for r in agent.received] == said_by_caller
    assert [r.payload for r in caller.received] == said_by_agent
    # Re-stamped onto the agent leg's own stream: its SSRC and payload type,
    # its sequence numbers and timestamps, continuous.
    assert {r.ssrc for r in agent.received} == {answer_ssrc(agent_answer)}
    assert {r.ssrc for r in caller.received} == {answer_ssrc(caller_answer)}
    assert {r.payload_type for r in agent.received} == {96}
    assert consecutive([r.sequence for r in agent.received])
    assert steps([r.timestamp for r in agent.received]) == {960}
    assert agent.received[0].marker  # the first packet of a new source
    assert caller_leg.outbound.sent == 10 and agent_leg.outbound.sent == 50

    recorder.close()
    assert [p for p in recorded_packets(recorder.path) if p != SILENCE_20MS] == said_by_caller


async def test_a_sender_gap_stays_a_gap_on_the_forwarded_stream(parties: Parties) -> None:
    caller, agent = parties.peer(), parties.peer()
    caller_leg, _ = await parties.connect(caller, "caller")
    agent_leg, _ = await parties.connect(agent, "agent")
    caller_leg.sinks = (agent_leg.outbound,)
    packets = opus_packets(6)

    for payload in packets[:3]:
        caller.send(payload)
    for index, payload in enumerate(packets[3:]):
        caller.send(payload, skip=2 if index == 0 else 0)  # two packets lost on the way in
    await agent.wait_for(lambda: len(agent.received) == 6)

    sequences = [r.sequence for r in agent.received]
    timestamps = [r.timestamp for r in agent.received]
    assert [(b - a) % 65536 for a, b in pairwise(sequences)] == [1, 1, 3, 1, 1]
    assert [(b - a) % (1 << 32) for a, b in pairwise(timestamps)] == [960, 960, 2880, 960, 960]


async def test_each_new_source_continues_the_outgoing_stream_where_the_previous_one_ended(parties: Parties) -> None:
    agent = parties.peer()
    agent_leg, _ = await parties.connect(agent, "agent")
    opus = Fraction(1, 48_000)
    first_leg, replacement_leg = object(), object()
    payloads = opus_packets(9)

    # A leg (numbered packets, its own clock), its replacement (another
    # clock and numbering), then a mixer (av.Packets, no numbering).
    for i in range(3):
        agent_leg.outbound.deliver(first_leg, MediaFrame(payloads[i], 123_000 + 960 * i, 960, opus, 40_000 + i))
    for i in range(3):
        agent_leg.outbound.deliver(replacement_leg, MediaFrame(payloads[3 + i], 960 * i, 960, opus, 7 + i))
    mixer = object()
    for i in range(3):
        packet = av.Packet(payloads[6 + i])
        packet.pts, packet.duration, packet.time_base = 960 * i, 960, opus
        agent_leg.outbound.deliver(mixer, packet)
    await agent.wait_for(lambda: len(agent.received) == 9)

    assert [r.payload for r in agent.received] == payloads
    assert len({r.ssrc for r in agent.received}) == 1
    assert consecutive([r.sequence for r in agent.received])
    timestamps = [r.timestamp for r in agent.received]
    # Each source resumes no earlier than where the previous one ended.
    assert all(960 <= (b - a) % (1 << 32) < 48_000 for a, b in pairwise(timestamps))
    assert [r.marker for r in agent.received] == [True, False, False] * 3


async def test_packets_in_another_codec_are_not_sent_out_of_a_leg(parties: Parties) -> None:
    agent = parties.peer()
    agent_leg, _ = await parties.connect(agent, "agent")
    pcmu = MediaFrame(b"\xff" * 160, 0, 160, Fraction(1, 8_000), 1)

    agent_leg.outbound.deliver(object(), pcmu)

    assert (agent_leg.outbound.sent, agent_leg.outbound.dropped) == (0, 1)


# --- PCMU ------------------------------------------------------------------------------


async def test_an_offer_without_opus_gets_a_pcmu_leg_at_8_khz_on_payload_type_0(parties: Parties) -> None:
    caller, agent = parties.peer(codec="pcmu"), parties.peer(codec="pcmu")
    caller_leg, answer = await parties.connect(caller, "caller")
    agent_leg, _ = await parties.connect(agent, "agent")
    assert rtpmaps(answer) == ["a=rtpmap:0 PCMU/8000"]
    assert caller_leg.codec == agent_leg.codec == "pcmu"
    heard = FrameSink()
    caller_leg.sinks = (heard, agent_leg.outbound)
    payloads = [bytes([0x80 + i]) * 160 for i in range(10)]

    for payload in payloads:
        caller.send(payload, samples=160)
    await agent.wait_for(lambda: len(agent.received) == 10)

    assert [f.pts for f in heard.frames] == [160 * i for i in range(10)]
    assert {(f.duration, f.time_base) for f in heard.frames} == {(160, Fraction(1, 8_000))}
    assert [bytes(f) for f in heard.frames] == payloads
    assert [r.payload for r in agent.received] == payloads
    assert {r.payload_type for r in agent.received} == {0}
    assert steps([r.timestamp for r in agent.received]) == {160}


# --- RTCP ------------------------------------------------------------------------------


async def test_sender_reports_count_exactly_what_the_leg_sent_and_receiver_reports_what_it_received(
    parties: Parties,
) -> None:
    caller, agent = parties.peer(), parties.peer()
    caller_leg, _ = await parties.connect(caller, "caller")
    agent_leg, agent_answer = await parties.connect(agent, "agent")
    caller_leg.sinks = (agent_leg.outbound,)
    packets = opus_packets(30)
    for index, payload in enumerate(packets):
        caller.send(payload, skip=2 if index == 20 else 0)  # two lost on the way in
    last_sequence = (caller.sequence - 1) & 0xFFFF

    def sender_reports() -> list[tuple[RtcpSrPacket, int, int]]:
        return [(p, n, octets) for p, n, octets in agent.rtcp if isinstance(p, RtcpSrPacket)]

    def caller_reports() -> list[object]:
        blocks = []
        for packet, _, _ in caller.rtcp:
            if isinstance(packet, (RtcpSrPacket, RtcpRrPacket)):
                blocks += [b for b in packet.reports if b.ssrc == caller.session.ssrc]
        return blocks

    # Reports come every 0.5-1.5 s: wait for one sent after all 30 packets,
    # and for the caller's round trip (its SR answered in a report of ours).
    await agent.wait_for(lambda: any(n == 30 for _, n, _ in sender_reports()))
    await caller.wait_for(lambda: any(b.lsr and b.highest_sequence == last_sequence for b in caller_reports()))

    for report, received_before, octets_before in sender_reports():
        assert report.ssrc == answer_ssrc(agent_answer)
        assert report.sender_info.packet_count == received_before
        assert report.sender_info.octet_count == octets_before
    final = next(r for r, n, _ in sender_reports() if n == 30)
    last_timestamp = agent.received[-1].timestamp
    assert 0 <= (final.sender_info.rtp_timestamp - last_timestamp) % (1 << 32) < 2 * 48_000

    block = [b for b in caller_reports() if b.lsr and b.highest_sequence == last_sequence][-1]
    assert block.packets_lost == 2
    assert caller.session.round_trip_time is not None and 0 <= caller.session.round_trip_time < 1.0


# --- trickle ICE -----------------------------------------------------------------------


async def test_an_offer_without_candidates_connects_with_candidates_trickled_afterwards(parties: Parties) -> None:
    peer = parties.peer()
    leg = parties.leg("caller")
    offer = await peer.offer(candidates=False)
    assert "a=candidate:" not in offer
    answer = await leg.answer(offer, timeout_s=10)
    # The peer is not told our candidates either: only our checks, sent to
    # the candidates it trickles, can find it.
    await peer.accept(without_candidates(answer))

    for candidate in peer.local_candidates():
        await leg.add_ice_candidate(candidate, "0", 0)
    await leg.add_ice_candidate(None, None, None)
    await started(peer, leg)

    heard = FrameSink()
    leg.sinks = (heard,)
    peer.send(opus_packets(1)[0])
    await heard.frames.wait_for(lambda: len(heard.frames) == 1)
    assert leg.connection_state == "connected"


@pytest.mark.parametrize("candidate", ["candidate:garbage", "a=candidate:1 1 udp 99 127.0.0.1 notaport typ host"])
async def test_a_malformed_trickled_candidate_is_rejected(parties: Parties, candidate: str) -> None:
    peer = parties.peer()
    leg = parties.leg("caller")
    await leg.answer(await peer.offer(candidates=False), timeout_s=10)

    with pytest.raises(OfferRejected) as rejected:
        await leg.add_ice_candidate(candidate, "0", 0)
    assert rejected.value.code == "invalid_candidate"


async def test_a_candidate_before_any_offer_is_rejected(parties: Parties) -> None:
    with pytest.raises(OfferRejected) as rejected:
        await parties.leg("caller").add_ice_candidate("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "0", 0)
    assert rejected.value.code == "invalid_candidate"


# --- telephone-event -------------------------------------------------------------------


async def test_telephone_events_are_negotiated_when_offered_and_go_to_the_hook_not_the_sinks(
    parties: Parties,
) -> None:
    peer = parties.peer()
    leg, answer = await parties.connect(peer, "caller", telephone_event=TELEPHONE_EVENT)
    assert rtpmaps(answer) == ["a=rtpmap:96 opus/48000/2", f"a=rtpmap:{TELEPHONE_EVENT} telephone-event/8000"]
    assert f"a=fmtp:{TELEPHONE_EVENT} 0-16" in answer.splitlines()
    assert any(line.startswith("m=audio ") and line.endswith(f" 96 {TELEPHONE_EVENT}") for line in answer.splitlines())
    events = Collected()
    leg.on_telephone_event = lambda payload, timestamp: events.append((payload, timestamp))
    heard = FrameSink()
    leg.sinks = (heard,)
    audio = opus_packets(2)

    # Digit 5 held for 60 ms: three RFC 4733 packets of one event (one
    # timestamp, growing duration, the last with the end bit), between audio.
    peer.send(audio[0])
    event_timestamp = peer.timestamp
    digit = [struct.pack("!BBH", 5, (0x80 if end else 0) | 10, duration) for duration, end in ((160, False), (320, False), (480, True))]
    for index, payload in enumerate(digit):
        assert peer.session.send_rtp(
            payload, sequence=peer.sequence, timestamp=event_timestamp, marker=index == 0, payload_type=TELEPHONE_EVENT
        )
        peer.sequence += 1
    peer.send(audio[1])
    await heard.frames.wait_for(lambda: len(heard.frames) == 2)
    await events.wait_for(lambda: len(events) == 3)

    assert events == [(payload, event_timestamp) for payload in digit]
    assert [bytes(f) for f in heard.frames] == audio


async def test_telephone_event_is_not_answered_when_not_offered(parties: Parties) -> None:
    peer = parties.peer()
    leg = parties.leg("caller")
    answer = await leg.answer(await peer.offer(), timeout_s=10)
    assert "telephone-event" not in answer


# --- rejected offers -------------------------------------------------------------------

G729_ONLY = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 18\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
    "a=rtcp-mux\r\na=rtpmap:18 G729/8000\r\n"
)


@pytest.mark.parametrize(
    ("offer", "code"),
    [
        (G729_ONLY, "opus_required"),
        (G729_ONLY.replace("a=rtpmap:18 G729/8000", "a=rtpmap:18 opus/16000/2"), "unsupported_codec"),
        (G729_ONLY.replace("a=rtpmap:18 G729/8000", "a=rtpmap:18 PCMU/16000"), "unsupported_codec"),
    ],
)
async def test_an_offer_without_a_supported_codec_is_rejected_with_a_stable_code(
    parties: Parties, offer: str, code: str
) -> None:
    with pytest.raises(OfferRejected) as rejected:
        await parties.leg("caller").answer(offer, timeout_s=10)
    assert rejected.value.code == code


async def test_an_aiortc_offer_of_g722_only_is_rejected_as_having_no_supported_codec(parties: Parties) -> None:
    peer = parties.peer(codec="g722")
    with pytest.raises(OfferRejected) as rejected:
        await parties.leg("caller").answer(await peer.offer(), timeout_s=10)
    assert rejected.value.code == "opus_required"


async def test_malformed_offers_are_rejected_as_invalid_and_the_node_keeps_forwarding(parties: Parties) -> None:
    good = parties.peer()
    real = await good.offer()
    malformed = [
        "",
        "not an sdp",
        "v=0\r\nm=audio notaport UDP/TLS/RTP/SAVPF 96\r\n",
        "v=0\r\n\x00\xff\x00garbage",
        "\r\n".join(line for line in real.splitlines() if not line.startswith(("a=ice-ufrag", "a=ice-pwd"))),
        "\r\n".join(line for line in real.splitlines() if not line.startswith("a=fingerprint")),
    ]
    for offer in malformed:
        leg = parties.leg("caller")
        with pytest.raises(OfferRejected) as rejected:
            await leg.answer(offer, timeout_s=10)
        assert (offer[:30], rejected.value.code) == (offer[:30], "invalid_offer")
        await leg.close()

    # The same process still answers and forwards.
    caller, agent = good, parties.peer()
    caller_leg = parties.leg("caller")
    await caller.accept(await caller_leg.answer(real, timeout_s=10))
    await started(caller, caller_leg)
    agent_leg, _ = await parties.connect(agent, "agent")
    caller_leg.sinks = (agent_leg.outbound,)
    caller.send(b"\xf8\x01\x02")
    await agent.wait_for(lambda: len(agent.received) == 1)
    assert agent.received[0].payload == b"\xf8\x01\x02"


async def test_an_offer_with_more_than_one_audio_stream_is_rejected_as_audio_only(parties: Parties) -> None:
    peer = parties.peer()
    peer.pc.addTransceiver("audio")
    with pytest.raises(OfferRejected) as rejected:
        await parties.leg("caller").answer(await peer.offer(), timeout_s=10)
    assert rejected.value.code == "audio_only"


# --- closing ---------------------------------------------------------------------------


async def test_a_far_end_close_is_reported_once_and_a_requested_close_never(parties: Parties) -> None:
    caller, agent = parties.peer(), parties.peer()
    caller_leg, _ = await parties.connect(caller, "caller")
    agent_leg, _ = await parties.connect(agent, "agent")

    await caller.close()
    await parties.closed.wait_for(lambda: parties.closed == [caller_leg])
    await agent_leg.close()
    await agent_leg.close()  # idempotent

    assert parties.closed == [caller_leg]
    assert caller_leg.session is not None and caller_leg.session.closed

