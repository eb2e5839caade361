"""The media of one call: its parties' legs, who hears whom, and one recording per party.

A call has any number of parties, each with at most one leg: ``caller`` and
``agent`` always, and the control plane adds others (a ``supervisor``, a
``consult`` agent, a ``third`` party in a conference).  Who hears what is a
routing table the control plane sets, ``hears[listener] = (source, ...)``,
where a source is another party or ``moh`` (music on hold).  A prompt played
to a party is one more source for it while it plays.  ``bridge()`` sets the
plain two-party table (caller hears agent, agent hears caller) and starts
recording.

Each listener's outbound audio is produced the cheapest way its sources allow
(DESIGN.md, "Media plane": pass-through first, decode only where needed):

- one party source in the listener's codec: that leg's packets are forwarded
  as they arrive, never decoded (the normal two-party call);
- one music-on-hold or prompt source: its packets, encoded once when the file
  was loaded, are paced out every 20 ms (no encoding per call);
- anything else (several sources: conference, whisper, barge, monitor; or a
  codec mismatch: Opus to PCMU): a ``Mixer`` decodes just those sources, mixes
  every 20 ms and encodes for that one listener.

Recording: each party's channel holds what that party said while someone in
the call could hear it, written from its packets as received (no decoding).
A muted agent, a caller on hold or a supervisor only listening in is not
recorded; the gap is silence, so every party's file keeps the call's clock.
A party the control plane asked to record (``record_party``: a caller
leaving a voicemail, whom nobody hears) is recorded whether heard or not.
Pausing the recording silences every channel until it is resumed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import av
import numpy as np

from kefu.webrtc import audio
from kefu.webrtc.dtmf import DtmfDetector, TelephoneEventReceiver
from kefu.webrtc.leg import Leg, Sink
from kefu.webrtc.opus import OPUS_TIME_BASE, packet_samples
from kefu.webrtc.recorder import OggOpusRecorder, WavMulawRecorder, recorder_for

log = logging.getLogger(__name__)

PARTY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Sources that are not parties.
MOH = "moh"
PROMPT = "prompt"
FRAME_S = 0.020
SAMPLES_48K = 960
PCMU_TIME_BASE = Fraction(1, 8000)
# Decoded frames a mixer may hold per source before the oldest is dropped
# (bounds the added latency when a source sends in bursts).
MAX_BUFFERED_FRAMES = 3


@dataclass(frozen=True)
class RecordedFile:
    party: str
    # Relative to the recordings root: "<tenant_id>/<call_id>/<party>.<ogg|wav>".
    relative_path: str
    size_bytes: int
    duration_ms: int
    started_at: datetime
    ended_at: datetime
    media_type: str = "audio/ogg"
    # Spans (ms from the recording's start) when recording was paused.
    paused_ms: tuple[tuple[int, int], ...] = ()


Recorder = OggOpusRecorder | WavMulawRecorder


def check_party(party: str) -> str:
    if not isinstance(party, str) or not PARTY_PATTERN.match(party) or party in (MOH, PROMPT):
        raise ValueError(f"invalid party name: {party!r}")
    return party


def recording_relative_path(*, tenant_id: UUID, call_id: UUID, party: str, extension: str = "ogg") -> str:
    return f"{tenant_id}/{call_id}/{check_party(party)}.{extension}"


def codec_of(leg: Leg) -> str:
    return leg.codec or "opus"


# --- sources that are not legs -------------------------------------------------


class PacketSource(Protocol):
    """Pre-encoded audio (a prompt, music on hold), one 20 ms packet per step."""

    def next_packet(self, codec: str) -> bytes | None: ...
    def next_pcm(self) -> np.ndarray | None: ...


@dataclass
class PlayingPrompt:
    prompt_id: str
    source: Any  # a kefu.webrtc.prompts.EncodedPrompt
    loop: bool = False
    position: int = 0
    done: bool = False
    _decoder: Any = None

    def _advance(self, count: int) -> int | None:
        if self.position >= count:
            if not self.loop or count == 0:
                self.done = True
                return None
            self.position = 0
        index = self.position
        self.position += 1
        return index

    def next_packet(self, codec: str) -> bytes | None:
        packets = self.source.pcmu if codec == "pcmu" else self.source.opus
        index = self._advance(len(packets))
        return None if index is None else packets[index]

    def next_pcm(self) -> np.ndarray | None:
        index = self._advance(len(self.source.opus))
        if index is None:
            return None
        if self._decoder is None:
            self._decoder = audio.OpusDecoder()
        return self._decoder.decode(self.source.opus[index])


# --- decoding and mixing, only where a listener needs it -----------------------


class DecodedSource:
    """A sink on one leg that decodes its packets to 48 kHz PCM for the listeners that need samples."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self.listeners: list[Callable[[np.ndarray], None]] = []
        self._decoder: Any = None
        self._upsampler: Any = None

    def deliver(self, source: object, packet: av.Packet) -> None:
        if not self.listeners:
            return
        pcm = self._decode(bytes(packet))
        if pcm is None:
            return
        for listener in self.listeners:
            listener(pcm)

    def _decode(self, payload: bytes) -> np.ndarray | None:
        try:
            if self.codec == "pcmu":
                if self._upsampler is None:
                    self._upsampler = audio.Resampler8kTo48k()
                return self._upsampler(audio.mulaw_decode(payload))
            if self._decoder is None:
                self._decoder = audio.OpusDecoder()
            return self._decoder.decode(payload)
        except Exception:  # a corrupt packet from a browser must not stop the call
            log.debug("undecodable packet dropped", exc_info=True)
            return None


class Encoder:
    """48 kHz PCM frames to one listener's codec."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        if codec == "pcmu":
            self._downsampler = audio.Resampler48kTo8k()
        else:
            self._opus = audio.OpusEncoder()

    def encode(self, pcm: np.ndarray) -> bytes:
        if self.codec == "pcmu":
            return audio.mulaw_encode(self._downsampler(pcm))
        return self._opus.encode(pcm)


class Output:
    """Paces one listener's produced audio (mixes, prompts, music on hold) every 20 ms."""

    def __init__(self, leg: Leg, plan: tuple[str, ...]) -> None:
        self.leg = leg
        self.plan = plan
        self.codec = codec_of(leg)
        self._task: asyncio.Task[None] | None = None
        self._pts = 0

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def produce(self) -> bytes | None:
        raise NotImplementedError

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                payload = self.produce()
            except Exception:
                log.exception("producing audio for the %s leg failed", self.leg.party)
                payload = None
            if payload:
                self._send(payload)
            next_at += FRAME_S
            delay = next_at - loop.time()
            if delay < -0.2:  # the loop stalled: skip ahead rather than burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(max(delay, 0))  # pacing media, not waiting for work

    def _send(self, payload: bytes) -> None:
        packet = av.Packet(payload)
        if self.codec == "pcmu":
            packet.time_base, samples = PCMU_TIME_BASE, len(payload)
        else:
            packet.time_base, samples = OPUS_TIME_BASE, packet_samples(payload) or SAMPLES_48K
        packet.pts = packet.dts = self._pts
        packet.duration = samples
        self._pts += samples
        self.leg.outbound.deliver(self, packet)


class Player(Output):
    """A listener whose only source is pre-encoded audio: its packets go out as they are."""

    def __init__(self, leg: Leg, plan: tuple[str, ...], source: PacketSource, on_done: Callable[[], None]) -> None:
        super().__init__(leg, plan)
        self.source = source
        self._on_done = on_done

    def produce(self) -> bytes | None:
        payload = self.source.next_packet(self.codec)
        if payload is None:
            self._on_done()
        return payload


class Mixer(Output):
    """A listener with several sources (or another codec): decode, mix, encode, every 20 ms."""

    def __init__(self, leg: Leg, plan: tuple[str, ...], on_done: Callable[[], None]) -> None:
        super().__init__(leg, plan)
        self.buffers: dict[str, deque[np.ndarray]] = {}
        self.generated: dict[str, PacketSource] = {}
        self._encoder = Encoder(self.codec)
        self._on_done = on_done
        self._silence = np.zeros(SAMPLES_48K, dtype=np.int16)

    def listener_for(self, source: str) -> Callable[[np.ndarray], None]:
        buffer = self.buffers.setdefault(source, deque(maxlen=MAX_BUFFERED_FRAMES))
        return buffer.append

    def produce(self) -> bytes | None:
        frames = [buffer.popleft() for buffer in self.buffers.values() if buffer]
        for generated in self.generated.values():
            pcm = generated.next_pcm()
            if pcm is None:
                self._on_done()
            else:
                frames.append(pcm)
        return self._encoder.encode(audio.mix(frames) if frames else self._silence)


# --- the call ------------------------------------------------------------------


@dataclass
class Routing:
    """What was wired last, so a rewire only touches what changed."""

    outputs: dict[str, Output] = field(default_factory=dict)
    decoded: dict[str, DecodedSource] = field(default_factory=dict)


class Bridge:
    def __init__(
        self,
        *,
        tenant_id: UUID,
        call_id: UUID,
        recordings_dir: Path,
        music_on_hold: Callable[[], Any] | None = None,
        on_prompt_done: Callable[[str, str], None] | None = None,
        on_dtmf: Callable[[str, str], None] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.call_id = call_id
        self.recordings_dir = recordings_dir
        self.legs: dict[str, Leg] = {}
        self.hears: dict[str, tuple[str, ...]] = {}
        self.recorders: dict[str, Recorder] = {}
        self.bridged = False
        self.recording_paused = False
        # Parties recorded even while nobody hears them (a caller leaving a voicemail).
        self.always_recorded: set[str] = set()
        self.prompts: dict[str, PlayingPrompt] = {}
        # Parties whose in-band DTMF is listened for (digits sent as RFC 4733 events always arrive).
        self.dtmf_parties: set[str] = set()
        self._music_on_hold = music_on_hold
        self._on_prompt_done = on_prompt_done
        self._on_dtmf = on_dtmf
        self._routing = Routing()
        self._dtmf: dict[str, Any] = {}
        # Serialises leg replacement, routing and ending of this call.
        self.lock = asyncio.Lock()

    # --- legs and routes -------------------------------------------------------

    def set_leg(self, leg: Leg) -> Leg | None:
        """Make ``leg`` its party's leg; return the leg it replaces, if any."""
        previous = self.legs.get(leg.party)
        self.legs[leg.party] = leg
        self._attach_dtmf(leg)
        self._wire(replaced=leg.party if previous is not None else None)
        return previous

    def remove_leg(self, party: str) -> Leg | None:
        leg = self.legs.pop(party, None)
        self._dtmf.pop(party, None)
        self._wire()
        return leg

    def start(self) -> None:
        """The two-party call: caller and agent hear each other, recording on (idempotent).

        Called again when another agent answers (a transferred call), it puts
        the plain two-party routing back.
        """
        hears = {"caller": ("agent",), "agent": ("caller",)}
        if self.bridged and self.hears == hears:
            return
        self.bridged = True
        self.hears = hears
        self._wire()

    def move_leg(self, party: str, to_party: str) -> Leg | None:
        """``party``'s leg becomes ``to_party``'s (a consulted agent taking the call over);
        returns the leg ``to_party`` had, which the caller closes.  Recording follows the new name."""
        check_party(to_party)
        leg = self.legs.pop(party, None)
        if leg is None:
            raise KeyError(party)
        self._dtmf.pop(party, None)
        previous = self.legs.pop(to_party, None)
        self._dtmf.pop(to_party, None)
        leg.party = to_party
        self.legs[to_party] = leg
        self._attach_dtmf(leg)
        self._wire(replaced=to_party)
        return previous

    def set_routes(self, hears: dict[str, Iterable[str]]) -> None:
        """Replace the routing table: ``hears[listener]`` = the sources that listener hears."""
        table: dict[str, tuple[str, ...]] = {}
        for listener, sources in hears.items():
            check_party(listener)
            clean: list[str] = []
            for source in sources:
                if source != MOH:
                    check_party(source)
                if source != listener and source not in clean:
                    clean.append(source)
            table[listener] = tuple(clean)
        self.hears = table
        self._wire()

    def play(self, party: str, prompt: PlayingPrompt) -> None:
        check_party(party)
        previous = self.prompts.get(party)
        self.prompts[party] = prompt
        if previous is not None and not previous.done and self._on_prompt_done is not None:
            self._on_prompt_done(party, previous.prompt_id)  # interrupted by the new one
        self._wire(replaced_prompt=party)

    def stop_prompt(self, party: str) -> bool:
        prompt = self.prompts.pop(party, None)
        if prompt is None:
            return False
        self._wire()
        return True

    def record_party(self, party: str, enabled: bool) -> None:
        """Record ``party`` from now on whether or not anyone hears it (``enabled``), or
        only while someone does again.  The call need not be bridged."""
        check_party(party)
        if enabled:
            self.always_recorded.add(party)
        else:
            self.always_recorded.discard(party)
        self._wire()

    def set_recording_paused(self, paused: bool) -> None:
        self.recording_paused = paused
        for recorder in self.recorders.values():
            if paused:
                recorder.pause()
            else:
                recorder.resume()

    # --- wiring -------------------------------------------------------------------

    def _sources_of(self, listener: str) -> tuple[str, ...]:
        sources = tuple(
            s for s in self.hears.get(listener, ()) if s == MOH or (s in self.legs and s != listener)
        )
        prompt = self.prompts.get(listener)
        if prompt is not None and not prompt.done:
            sources += (PROMPT,)
        return sources

    def audible(self) -> set[str]:
        """Parties someone in the call hears right now."""
        heard: set[str] = set()
        for listener in self.legs:
            heard.update(s for s in self._sources_of(listener) if s in self.legs)
        return heard

    def recorded(self) -> set[str]:
        """Parties whose audio is written now: those someone hears once the call is
        bridged, and those always recorded."""
        heard = self.audible() if self.bridged else set()
        return (heard | self.always_recorded) & self.legs.keys()

    def _wire(self, *, replaced: str | None = None, replaced_prompt: str | None = None) -> None:
        sinks: dict[str, list[Sink]] = {party: [] for party in self.legs}
        old = self._routing
        new = Routing()

        def decoded(party: str) -> DecodedSource:
            source = new.decoded.get(party)
            if source is None:
                previous = old.decoded.get(party)
                codec = codec_of(self.legs[party])
                keep = previous is not None and previous.codec == codec and replaced != party
                source = previous if keep else DecodedSource(codec)
                assert source is not None
                source.listeners = []
                new.decoded[party] = source
                sinks[party].append(source)
            return source

        for listener, leg in self.legs.items():
            sources = self._sources_of(listener)
            plan = (codec_of(leg), *sources)
            output = old.outputs.get(listener)
            reuse = output is not None and output.plan == plan and output.leg is leg and replaced_prompt != listener
            if len(sources) == 1 and sources[0] in self.legs and codec_of(self.legs[sources[0]]) == codec_of(leg):
                sinks[sources[0]].append(leg.outbound)  # pass-through
                continue
            if not sources:
                continue
            if len(sources) == 1 and sources[0] in (MOH, PROMPT):
                if not reuse:
                    generated = self._generated(listener, sources[0])
                    if generated is None:
                        continue
                    output = Player(leg, plan, generated, lambda listener=listener: self._prompt_finished(listener))
                new.outputs[listener] = output  # type: ignore[assignment]
                continue
            if not reuse or not isinstance(output, Mixer):
                output = Mixer(leg, plan, lambda listener=listener: self._prompt_finished(listener))
                for source in sources:
                    if source in (MOH, PROMPT):
                        generated = self._generated(listener, source)
                        if generated is not None:
                            output.generated[source] = generated
            assert isinstance(output, Mixer)
            for source in sources:
                if source in self.legs:
                    decoded(source).listeners.append(output.listener_for(source))
            new.outputs[listener] = output

        for party, leg in self.legs.items():
            if party in self.dtmf_parties and party in self._dtmf and not self._dtmf[party].rfc4733:
                decoded(party).listeners.append(self._dtmf[party].feed_pcm)

        for party in self.recorded():
            recorder = self._recorder(party, self.legs[party])
            if recorder is not None:
                sinks[party].insert(0, recorder)  # type: ignore[arg-type]

        for listener, output in old.outputs.items():
            if new.outputs.get(listener) is not output:
                output.stop()
        for listener, output in new.outputs.items():
            if old.outputs.get(listener) is not output:
                output.start()
        self._routing = new
        for party, leg in self.legs.items():
            leg.sinks = tuple(sinks[party])

    def _generated(self, listener: str, source: str) -> PacketSource | None:
        if source == PROMPT:
            return self.prompts.get(listener)
        if self._music_on_hold is None:
            return None
        return PlayingPrompt(prompt_id=MOH, source=self._music_on_hold(), loop=True)

    def _prompt_finished(self, listener: str) -> None:
        prompt = self.prompts.get(listener)
        if prompt is None or not prompt.done:
            return
        del self.prompts[listener]
        asyncio.get_running_loop().call_soon(self._wire)
        if self._on_prompt_done is not None:
            self._on_prompt_done(listener, prompt.prompt_id)

    def _recorder(self, party: str, leg: Leg) -> Recorder | None:
        recorder = self.recorders.get(party)
        if recorder is not None:
            return recorder if recorder.codec == codec_of(leg) else None
        codec = codec_of(leg)
        extension = "wav" if codec == "pcmu" else "ogg"
        path = self.recordings_dir / recording_relative_path(
            tenant_id=self.tenant_id, call_id=self.call_id, party=party, extension=extension
        )
        recorder = recorder_for(codec, path)
        if self.recording_paused:
            recorder.pause()
        self.recorders[party] = recorder
        return recorder

    # --- DTMF ---------------------------------------------------------------------

    def _attach_dtmf(self, leg: Leg) -> None:
        if self._on_dtmf is None:
            return
        party = leg.party
        on_dtmf = self._on_dtmf
        detector = _DtmfListener(party, on_dtmf)
        self._dtmf[party] = detector
        receiver = TelephoneEventReceiver()

        def on_event(payload: bytes, timestamp: int) -> None:
            detector.rfc4733 = True
            try:
                digit = receiver.feed(payload, timestamp)
            except ValueError:  # a malformed event from the far end is ignored
                return
            if digit is not None:
                on_dtmf(party, digit)

        leg.on_telephone_event = on_event

    def listen_dtmf(self, party: str, enabled: bool) -> None:
        check_party(party)
        if enabled:
            self.dtmf_parties.add(party)
        else:
            self.dtmf_parties.discard(party)
        self._wire()

    # --- the end ------------------------------------------------------------------

    async def end(self) -> list[RecordedFile]:
        """Close every leg and finish the recordings; one ``RecordedFile`` per party with audio."""
        for output in self._routing.outputs.values():
            output.stop()
        self._routing = Routing()
        for leg in self.legs.values():
            leg.sinks = ()
        await asyncio.gather(*(leg.close() for leg in self.legs.values()))
        # Closing fsyncs each file and its folders: off the event loop (no sink feeds them any more).
        await asyncio.gather(*(asyncio.to_thread(recorder.close) for recorder in self.recorders.values()))
        files = []
        for party, recorder in self.recorders.items():
            if not recorder.has_audio:
                continue
            assert recorder.ended_at is not None
            paused = tuple(tuple(span) for span in recorder.paused_intervals_ms)
            files.append(
                RecordedFile(
                    party=party,
                    relative_path=recorder.path.relative_to(self.recordings_dir).as_posix(),
                    size_bytes=recorder.path.stat().st_size,
                    duration_ms=recorder.duration_ms,
                    started_at=recorder.started_at,
                    ended_at=recorder.ended_at,
                    media_type="audio/wav" if recorder.path.suffix == ".wav" else "audio/ogg",
                    paused_ms=paused,  # type: ignore[arg-type]
                )
            )
        return files


class _DtmfListener:
    """In-band detection for one party, fed decoded PCM; unused once RFC 4733 events arrive."""

    def __init__(self, party: str, on_dtmf: Callable[[str, str], None]) -> None:
        self.party = party
        self.rfc4733 = False
        self._on_dtmf = on_dtmf
        self._detector: Any = None

    def feed_pcm(self, pcm: np.ndarray) -> None:
        if self.rfc4733:
            return
        if self._detector is None:
            self._detector = DtmfDetector(rate=48_000)
        for digit in self._detector.feed(pcm):
            self._on_dtmf(self.party, digit)
