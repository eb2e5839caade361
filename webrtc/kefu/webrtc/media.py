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
from typing import Literal
from uuid import UUID

from kefu.platform.settings import Settings
from kefu.webrtc.bridge import PARTIES, Bridge, RecordedFile
from kefu.webrtc.ice import allow_loopback_host_candidates, rtc_configuration
from kefu.webrtc.leg import Leg, OfferRejected
from kefu.webrtc.passthrough import check_aiortc_internals

__all__ = ["MediaPlane", "OfferRejected", "RecordedFile"]

log = logging.getLogger(__name__)

LegClosedCallback = Callable[[UUID, UUID, str], Awaitable[None]]

# Ample for host candidates and a reachable STUN/TURN server.
ANSWER_TIMEOUT_S = 10.0


class MediaPlane:
    name = "media"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.on_leg_closed: LegClosedCallback | None = None
        self._bridges: dict[tuple[UUID, UUID], Bridge] = {}
        self._callbacks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        check_aiortc_internals()
        if self.settings.media_allow_loopback:
            allow_loopback_host_candidates()

    async def stop(self) -> None:
        for tenant_id, call_id in list(self._bridges):
            await self.end_call(tenant_id=tenant_id, call_id=call_id)
        for task in list(self._callbacks):
            task.cancel()

    async def answer_leg(
        self, *, tenant_id: UUID, call_id: UUID, party: Literal["caller", "agent"], offer_sdp: str
    ) -> str:
        """Answer a party's offer (it holds all its ICE candidates); the answer holds all of ours.

        Re-offering for the same (call, party) replaces that leg (page reload).
        Raises ``OfferRejected`` (a ``ValueError`` with a stable ``code``) for an
        offer that cannot be answered.
        """
        if party not in PARTIES:
            raise OfferRejected("invalid_party", f"party must be one of {', '.join(PARTIES)}")
        key = (tenant_id, call_id)
        bridge = self._bridges.get(key)
        if bridge is None:
            bridge = self._bridges[key] = Bridge(
                tenant_id=tenant_id, call_id=call_id, recordings_dir=self.settings.recordings_dir
            )
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

    async def bridge(self, *, tenant_id: UUID, call_id: UUID) -> None:
        """Audio both ways between the call's legs, each party recorded to its own file. Idempotent."""
        key = (tenant_id, call_id)
        bridge = self._bridges.get(key)
        if bridge is None:
            bridge = self._bridges[key] = Bridge(
                tenant_id=tenant_id, call_id=call_id, recordings_dir=self.settings.recordings_dir
            )
        async with bridge.lock:
            bridge.start()

    async def end_call(self, *, tenant_id: UUID, call_id: UUID) -> list[RecordedFile]:
        """Stop recording and close both legs; one ``RecordedFile`` per recorded party. Idempotent."""
        bridge = self._bridges.pop((tenant_id, call_id), None)
        if bridge is None:
            return []
        async with bridge.lock:
            return await bridge.end()

    async def close_leg(self, *, tenant_id: UUID, call_id: UUID, party: str) -> None:
        """Close one party's leg (an answer that lost its call); the call's other leg stays. Idempotent."""
        bridge = self._bridges.get((tenant_id, call_id))
        if bridge is None:
            return
        async with bridge.lock:
            leg = bridge.legs.pop(party, None)
            bridge._wire()
        if leg is not None:
            await leg.close()

    def leg_state(self, *, tenant_id: UUID, call_id: UUID, party: str) -> str | None:
        """The connection state of a party's current leg (None when it has none)."""
        bridge = self._bridges.get((tenant_id, call_id))
        leg = bridge.legs.get(party) if bridge else None
        return leg.connection_state if leg else None

    def _leg_closed(self, bridge: Bridge, leg: Leg) -> None:
        if bridge.legs.get(leg.party) is not leg or self.on_leg_closed is None:
            return
        task = asyncio.ensure_future(self._report_leg_closed(bridge, leg.party))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _report_leg_closed(self, bridge: Bridge, party: str) -> None:
        assert self.on_leg_closed is not None
        try:
            await self.on_leg_closed(bridge.tenant_id, bridge.call_id, party)
        except Exception:
            log.exception("on_leg_closed failed for call %s (%s)", bridge.call_id, party)
