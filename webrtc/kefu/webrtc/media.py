"""The media plane: the server's WebRTC legs of every call handled by this process.

``MediaPlane`` is the interface the control plane (kefu.tenants) calls; it
owns peers, bridging and recording files, and reports leg failures back
through ``on_leg_closed``.  Call state stays with the control plane.  Calls
are keyed by ``(tenant_id, call_id)`` and recordings live under
``<recordings_dir>/<tenant_id>/<call_id>/<party>.ogg``; no path ever comes
from a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from kefu.platform.settings import Settings
from kefu.webrtc.bridge import MOH, Bridge, PlayingPrompt, RecordedFile, check_party
from kefu.webrtc.certificates import reuse_dtls_certificates
from kefu.webrtc.ice import allow_loopback_host_candidates, remember_host_addresses, rtc_configuration
from kefu.webrtc.leg import Leg, OfferRejected
from kefu.webrtc.passthrough import check_aiortc_internals
from kefu.webrtc.storage import StorageError, store_for

__all__ = ["MediaPlane", "OfferRejected", "RecordedFile"]

log = logging.getLogger(__name__)

LegClosedCallback = Callable[[UUID, UUID, str], Awaitable[None]]
# (tenant_id, call_id, party, digit)
DtmfCallback = Callable[[UUID, UUID, str, str], Awaitable[None]]
# (tenant_id, call_id, party, prompt_id)
PromptDoneCallback = Callable[[UUID, UUID, str, str], Awaitable[None]]
MAX_CANDIDATE_LENGTH = 1024

# Ample for host candidates and a reachable STUN/TURN server.
ANSWER_TIMEOUT_S = 10.0


# The most prompts one play_prompt strings together.
MAX_PROMPT_PARTS = 20


class MediaPlane:
    """The media of every call this process serves.

    ``COMMANDS`` are the coroutine methods the control plane calls (in-process,
    or on a media node through kefu.webrtc.remote); ``CALLBACKS`` are the
    attributes the control plane sets to hear back.  Every argument is a
    keyword, every value JSON-able once UUIDs are strings.
    """

    name = "media"
    COMMANDS = (
        "answer_leg", "add_ice_candidate", "bridge", "set_routes", "play_prompt", "stop_prompt",
        "listen_dtmf", "record_party", "set_recording_paused", "move_leg", "close_leg", "end_call", "leg_states",
    )
    CALLBACKS = ("on_leg_closed", "on_dtmf", "on_prompt_done")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.on_leg_closed: LegClosedCallback | None = None
        self.on_dtmf: DtmfCallback | None = None
        self.on_prompt_done: PromptDoneCallback | None = None
        self._bridges: dict[tuple[UUID, UUID], Bridge] = {}
        self._callbacks: set[asyncio.Task[None]] = set()
        self._music_on_hold: Any = None

    async def start(self) -> None:
        check_aiortc_internals()
        if self.settings.media_allow_loopback:
            allow_loopback_host_candidates()
        remember_host_addresses()
        reuse_dtls_certificates()

    async def stop(self) -> None:
        for tenant_id, call_id in list(self._bridges):
            await self.end_call(tenant_id=tenant_id, call_id=call_id)
        for task in list(self._callbacks):
            task.cancel()

    @property
    def call_count(self) -> int:
        return len(self._bridges)

    @property
    def leg_count(self) -> int:
        return sum(len(bridge.legs) for bridge in self._bridges.values())

    def _bridge(self, tenant_id: UUID, call_id: UUID, *, create: bool = False) -> Bridge | None:
        key = (tenant_id, call_id)
        bridge = self._bridges.get(key)
        if bridge is None and create:
            bridge = self._bridges[key] = Bridge(
                tenant_id=tenant_id,
                call_id=call_id,
                recordings_dir=self.settings.recordings_dir,
                music_on_hold=self._moh,
                on_prompt_done=lambda party, prompt_id: self._report(self.on_prompt_done, tenant_id, call_id, party, prompt_id),
                on_dtmf=lambda party, digit: self._report(self.on_dtmf, tenant_id, call_id, party, digit),
            )
        return bridge

    def _moh(self) -> Any:
        return self._music_on_hold

    async def answer_leg(self, *, tenant_id: UUID, call_id: UUID, party: str, offer_sdp: str) -> str:
        """Answer a party's offer; the answer holds all of our ICE candidates.

        The offer may hold the party's candidates or they may follow through
        ``add_ice_candidate`` (trickle).  Re-offering for the same (call, party)
        replaces that leg (a reloaded page, a caller whose network changed).
        Raises ``OfferRejected`` (a ``ValueError`` with a stable ``code``).
        """
        try:
            check_party(party)
        except ValueError:
            raise OfferRejected("invalid_party", "party must be a short lower-case name such as caller, agent or supervisor") from None
        key = (tenant_id, call_id)
        bridge = self._bridge(tenant_id, call_id, create=True)
        assert bridge is not None
        async with bridge.lock:
            leg = Leg(
                party=party,
                configuration=rtc_configuration(self.settings.ice_servers),
                on_closed=lambda closed: self._leg_closed(bridge, closed),
            )
            try:
                if self._bridges.get(key) is not bridge:
                    raise OfferRejected("call_ended", "the call has ended")
                answer = await leg.answer(offer_sdp, timeout_s=ANSWER_TIMEOUT_S)
            except BaseException:
                await leg.close()
                if not bridge.legs and not bridge.bridged and self._bridges.get(key) is bridge:
                    del self._bridges[key]
                raise
            previous = bridge.set_leg(leg)
        if previous is not None:
            await previous.close()
        return answer

    async def add_ice_candidate(
        self, *, tenant_id: UUID, call_id: UUID, party: str, candidate: str | None,
        sdp_mid: str | None = None, sdp_mline_index: int | None = None,
    ) -> None:
        """A trickled candidate of a party's current leg (``None``: the party has no more)."""
        if candidate is not None and (not isinstance(candidate, str) or len(candidate) > MAX_CANDIDATE_LENGTH):
            raise OfferRejected("invalid_candidate", "the ICE candidate is not a candidate line")
        bridge = self._bridge(tenant_id, call_id)
        leg = bridge.legs.get(party) if bridge is not None else None
        if leg is None:
            raise OfferRejected("no_leg", "this party has no media leg to add candidates to")
        try:
            await leg.add_ice_candidate(candidate, sdp_mid, sdp_mline_index)
        except OfferRejected:
            raise
        except Exception as exc:
            raise OfferRejected("invalid_candidate", f"the ICE candidate was not accepted: {exc}") from None

    async def bridge(self, *, tenant_id: UUID, call_id: UUID) -> None:
        """Caller and agent hear each other, each party recorded to its own file. Idempotent."""
        bridge = self._bridge(tenant_id, call_id, create=True)
        assert bridge is not None
        async with bridge.lock:
            bridge.start()

    async def set_routes(self, *, tenant_id: UUID, call_id: UUID, hears: dict[str, list[str]]) -> None:
        """Who hears what from now on: ``hears[listener]`` lists parties (and ``moh``)."""
        bridge = self._bridge(tenant_id, call_id, create=True)
        assert bridge is not None
        if MOH in {s for sources in hears.values() for s in sources}:
            await self._load_music_on_hold()
        async with bridge.lock:
            try:
                bridge.set_routes(hears)
            except ValueError as exc:
                raise OfferRejected("invalid_routes", str(exc)) from None

    async def play_prompt(
        self, *, tenant_id: UUID, call_id: UUID, party: str, prompt_id: str, file: str | None = None,
        text: str | None = None, locale: str = "en-US", voice: str | None = None, loop: bool = False,
        parts: list[dict[str, str]] | None = None,
    ) -> int:
        """Play a prompt (an audio file, text spoken by text-to-speech, or ``parts``: several
        of them one after the other, each ``{"file": …}`` or ``{"text": …, "locale": …}``) to a party.

        Returns its length in ms; ``on_prompt_done`` reports when it finished
        or was interrupted.  A second prompt to the same party replaces the first.
        """
        from kefu.webrtc import prompts
        from kefu.webrtc.tts import TtsError

        bridge = self._bridge(tenant_id, call_id)
        if bridge is None:
            raise OfferRejected("no_call", "the media server has no such call")
        cache_dir = self.settings.media_cache_dir
        if parts is None:
            if (file is None) == (text is None):
                raise OfferRejected("invalid_prompt", "give exactly one of file, text and parts")
            parts = [{"file": file} if file is not None else {"text": text or "", "locale": locale}]
        elif file is not None or text is not None or not parts or len(parts) > MAX_PROMPT_PARTS:
            raise OfferRejected("invalid_prompt", f"give exactly one of file, text and parts (1 to {MAX_PROMPT_PARTS})")
        encoded_parts = []
        try:
            for part in parts:
                if not isinstance(part, dict) or ("file" in part) == ("text" in part):
                    raise OfferRejected("invalid_prompt", "each part is {\"file\": …} or {\"text\": …, \"locale\": …}")
                if "file" in part:
                    encoded_parts.append(await prompts.load_prompt(Path(part["file"]), cache_dir=cache_dir))
                else:
                    encoded_parts.append(await prompts.tts_prompt(
                        part["text"], locale=part.get("locale") or locale, voice=voice, cache_dir=cache_dir))
        except (prompts.PromptError, TtsError) as exc:  # each carries a stable code
            raise OfferRejected(exc.code, str(exc)) from None
        encoded = encoded_parts[0] if len(encoded_parts) == 1 else prompts.joined(encoded_parts)
        async with bridge.lock:
            bridge.play(party, PlayingPrompt(prompt_id=prompt_id, source=encoded, loop=loop))
        return int(encoded.duration_ms)

    async def stop_prompt(self, *, tenant_id: UUID, call_id: UUID, party: str) -> bool:
        bridge = self._bridge(tenant_id, call_id)
        if bridge is None:
            return False
        async with bridge.lock:
            return bridge.stop_prompt(party)

    async def listen_dtmf(self, *, tenant_id: UUID, call_id: UUID, party: str, enabled: bool = True) -> None:
        """Detect a party's in-band DTMF (decodes its audio); RFC 4733 digits are always reported."""
        bridge = self._bridge(tenant_id, call_id)
        if bridge is None:
            raise OfferRejected("no_call", "the media server has no such call")
        async with bridge.lock:
            bridge.listen_dtmf(party, enabled)

    async def record_party(self, *, tenant_id: UUID, call_id: UUID, party: str, enabled: bool = True) -> None:
        """Record ``party`` from now on even while nobody hears it (a caller leaving a
        voicemail), or, with ``enabled=False``, only while someone does again.

        Its file starts now (not at the end of a prompt playing to it) and holds only
        what the party sends: prompts played to it are never in it.  ``end_call``
        returns the file as usual.
        """
        try:
            check_party(party)
        except ValueError:
            raise OfferRejected("invalid_party", "party must be a short lower-case name such as caller, agent or supervisor") from None
        bridge = self._bridge(tenant_id, call_id)
        if bridge is None:
            raise OfferRejected("no_call", "the media server has no such call")
        async with bridge.lock:
            bridge.record_party(party, enabled)

    async def set_recording_paused(self, *, tenant_id: UUID, call_id: UUID, paused: bool) -> None:
        bridge = self._bridge(tenant_id, call_id)
        if bridge is None:
            raise OfferRejected("no_call", "the media server has no such call")
        async with bridge.lock:
            bridge.set_recording_paused(paused)

    async def end_call(self, *, tenant_id: UUID, call_id: UUID) -> list[RecordedFile]:
        """Stop recording and close every leg; one ``RecordedFile`` per recorded party. Idempotent."""
        bridge = self._bridges.pop((tenant_id, call_id), None)
        if bridge is None:
            return []
        async with bridge.lock:
            files = await bridge.end()
        # Durable before the call counts as ended: fsynced locally, uploaded and verified on S3.
        store = store_for(self.settings)
        for recorded in files:
            try:
                await store.finalize(self.settings.recordings_dir / recorded.relative_path, recorded.relative_path)
            except StorageError:
                log.exception("recording %s kept on this node's disk: it could not be stored", recorded.relative_path)
        return files

    async def move_leg(self, *, tenant_id: UUID, call_id: UUID, party: str, to_party: str) -> None:
        """``party``'s leg becomes ``to_party``'s (whose own leg, if any, is closed), with no gap in its audio."""
        bridge = self._bridges.get((tenant_id, call_id))
        if bridge is None:
            raise OfferRejected("no_call", "the media server has no such call")
        async with bridge.lock:
            try:
                previous = bridge.move_leg(party, to_party)
            except KeyError:
                raise OfferRejected("no_leg", f"the call has no {party} leg") from None
            except ValueError as exc:
                raise OfferRejected("invalid_party", str(exc)) from None
        if previous is not None:
            await previous.close()

    async def close_leg(self, *, tenant_id: UUID, call_id: UUID, party: str) -> None:
        """Close one party's leg (it left the call); the others stay. Idempotent."""
        bridge = self._bridges.get((tenant_id, call_id))
        if bridge is None:
            return
        async with bridge.lock:
            leg = bridge.remove_leg(party)
        if leg is not None:
            await leg.close()

    async def leg_states(self, *, tenant_id: UUID, call_id: UUID) -> dict[str, str]:
        """Each party's leg connection state."""
        bridge = self._bridges.get((tenant_id, call_id))
        return {party: leg.connection_state for party, leg in bridge.legs.items()} if bridge else {}

    def leg_state(self, *, tenant_id: UUID, call_id: UUID, party: str) -> str | None:
        """The connection state of a party's current leg (None when it has none)."""
        bridge = self._bridges.get((tenant_id, call_id))
        leg = bridge.legs.get(party) if bridge else None
        return leg.connection_state if leg else None

    async def _load_music_on_hold(self) -> None:
        if self._music_on_hold is None:
            from kefu.webrtc.prompts import music_on_hold

            self._music_on_hold = await music_on_hold(self.settings)

    def _leg_closed(self, bridge: Bridge, leg: Leg) -> None:
        if bridge.legs.get(leg.party) is not leg:
            return
        self._report(self.on_leg_closed, bridge.tenant_id, bridge.call_id, leg.party)

    def _report(self, callback: Callable[..., Awaitable[None]] | None, *args: Any) -> None:
        if callback is None:
            return
        task = asyncio.ensure_future(self._run_callback(callback, *args))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _run_callback(self, callback: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await callback(*args)
        except Exception:
            log.exception("media callback %s failed for %s", getattr(callback, "__name__", callback), args[:3])
