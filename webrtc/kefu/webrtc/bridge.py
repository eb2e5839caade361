"""The media of one call: its caller and agent legs, audio both ways, one recorder per party.

Until the call is bridged, legs are connected but hear nothing and nothing is
recorded.  Once bridged, each leg's packets go to the other leg and to its
party's recorder; replacing a leg (a reloaded page) rewires it in place and
keeps the party's recording going in the same file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from uuid import UUID

from kefu.webrtc.leg import Leg, Sink
from kefu.webrtc.recorder import OggOpusRecorder

Party = Literal["caller", "agent"]
PARTIES: tuple[Party, ...] = ("caller", "agent")


@dataclass(frozen=True)
class RecordedFile:
    party: str
    # Relative to the recordings root: "<tenant_id>/<call_id>/<party>.ogg".
    relative_path: str
    size_bytes: int
    duration_ms: int
    started_at: datetime
    ended_at: datetime


def recording_relative_path(*, tenant_id: UUID, call_id: UUID, party: Party) -> str:
    return f"{tenant_id}/{call_id}/{party}.ogg"


class Bridge:
    def __init__(self, *, tenant_id: UUID, call_id: UUID, recordings_dir: Path) -> None:
        self.tenant_id = tenant_id
        self.call_id = call_id
        self.recordings_dir = recordings_dir
        self.legs: dict[str, Leg] = {}
        self.recorders: dict[str, OggOpusRecorder] = {}
        self.bridged = False
        # Serialises leg replacement, bridging and ending of this call.
        self.lock = asyncio.Lock()

    def set_leg(self, leg: Leg) -> Leg | None:
        """Make ``leg`` its party's leg; return the leg it replaces, if any."""
        previous = self.legs.get(leg.party)
        self.legs[leg.party] = leg
        self._wire()
        return previous

    def start(self) -> None:
        """Audio both ways and recording from now on (idempotent)."""
        if self.bridged:
            return
        for party in PARTIES:
            path = self.recordings_dir / recording_relative_path(
                tenant_id=self.tenant_id, call_id=self.call_id, party=party
            )
            self.recorders[party] = OggOpusRecorder(path)
        self.bridged = True
        self._wire()

    def _wire(self) -> None:
        for party, leg in self.legs.items():
            if not self.bridged:
                leg.sinks = ()
                continue
            sinks: list[Sink] = [self.recorders[party]]
            other = self.legs.get(_other(party))
            if other is not None:
                sinks.append(other.outbound)
            leg.sinks = tuple(sinks)

    async def end(self) -> list[RecordedFile]:
        """Close both legs and finish the recordings; one ``RecordedFile`` per party with audio."""
        for leg in self.legs.values():
            leg.sinks = ()
        await asyncio.gather(*(leg.close() for leg in self.legs.values()))
        files = []
        for party, recorder in self.recorders.items():
            recorder.close()
            if not recorder.has_audio:
                continue
            assert recorder.ended_at is not None
            files.append(
                RecordedFile(
                    party=party,
                    relative_path=recording_relative_path(tenant_id=self.tenant_id, call_id=self.call_id, party=party),  # type: ignore[arg-type]
                    size_bytes=recorder.path.stat().st_size,
                    duration_ms=recorder.duration_ms,
                    started_at=recorder.started_at,
                    ended_at=recorder.ended_at,
                )
            )
        return files


def _other(party: str) -> str:
    return "agent" if party == "caller" else "caller"
