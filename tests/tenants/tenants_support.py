"""Helpers for contact-center tests: tenants, named people, tokens, and a
small in-process media plane standing in for kefu.webrtc (it answers SDP with
a fixed description and writes small recording files, so the control plane's
side of the contract is exercised exactly)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from kefu.billing.services import open_account
from kefu.platform.identity.principal import Principal
from kefu.platform.models import Tenant, User
from kefu.platform.runtime import Runtime
from kefu.webrtc.media import RecordedFile  # the media plane's own contract type

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

TEST_SEATS = 50  # seats each test tenant rents (the seat cap has its own tests)


@dataclass
class InProcessMedia:
    """Keeps the contract of kefu.webrtc.media.MediaPlane without any network."""

    recordings_dir: Path
    clock: Any
    legs: dict[tuple[uuid.UUID, str], str] = field(default_factory=dict)
    bridged: dict[uuid.UUID, datetime] = field(default_factory=dict)
    ended: list[uuid.UUID] = field(default_factory=list)
    tenant_of: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    on_leg_closed: Any = None
    routes: dict[uuid.UUID, dict[str, list[str]]] = field(default_factory=dict)
    recording_paused: dict[uuid.UUID, bool] = field(default_factory=dict)

    async def answer_leg(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str, offer_sdp: str) -> str:
        if "m=" in offer_sdp and "bad" in offer_sdp:
            raise ValueError("no audio section")
        self.legs[(call_id, party)] = offer_sdp
        self.tenant_of[call_id] = tenant_id
        return f"v=0\r\ns=answer-{party}\r\n"

    async def bridge(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> None:
        self.bridged.setdefault(call_id, self.clock())

    async def close_leg(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> None:
        self.legs.pop((call_id, party), None)

    async def set_routes(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, hears: dict[str, list[str]]) -> None:
        self.routes[call_id] = hears

    async def set_recording_paused(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, paused: bool) -> None:
        self.recording_paused[call_id] = paused

    def legs_of(self, call_id: uuid.UUID) -> list[str]:
        return sorted(party for (leg_call, party) in self.legs if leg_call == call_id)

    def leg_state(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID, party: str) -> str | None:
        return "connected" if (call_id, party) in self.legs else None

    async def end_call(self, *, tenant_id: uuid.UUID, call_id: uuid.UUID) -> list[RecordedFile]:
        """Idempotent, like kefu.webrtc's: every call closes the call's legs."""
        for party in self.legs_of(call_id):
            del self.legs[(call_id, party)]
        if call_id in self.ended:
            return []
        self.ended.append(call_id)
        started = self.bridged.get(call_id)
        if started is None:
            return []
        now = self.clock()
        files = []
        for party in ("caller", "agent"):
            relative = f"{tenant_id}/{call_id}/{party}.ogg"
            path = self.recordings_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            payload = b"OggS" + party.encode() * 10
            path.write_bytes(payload)
            files.append(RecordedFile(party, relative, len(payload), int((now - started).total_seconds() * 1000), started, now))
        return files

    async def drop_leg(self, call_id: uuid.UUID, party: str) -> None:
        """What kefu.webrtc does when a peer connection fails."""
        await self.on_leg_closed(self.tenant_of[call_id], call_id, party)


def manual_runtime(settings: Any, clock: Any, timers: Any = None) -> Runtime:
    """An API and worker runtime whose ACD runs on ``clock`` (timers fired by hand, no sweeper)."""
    from kefu.tenants.clock import ManualTimers

    runtime = Runtime.build(settings, process_roles=frozenset({"api", "worker"}))
    runtime.components["acd.clock"] = clock
    runtime.components["acd.timers"] = timers if timers is not None else ManualTimers(clock)
    runtime.components["acd.sweep_interval_s"] = None
    return runtime


async def create_tenant(runtime: Runtime, slug: str, *, locale: str = "en", status: str = "active") -> uuid.UUID:
    async with runtime.db.platform_session(reason="test") as session:
        tenant = Tenant(slug=slug, name=slug.title(), locale=locale, status=status)
        session.add(tenant)
        await session.flush()
        await open_account(session, tenant_id=tenant.id, seats=TEST_SEATS, actor="test")
        return tenant.id


async def create_user(runtime: Runtime, tenant_id: uuid.UUID, email: str) -> uuid.UUID:
    """An active user of the tenant (access tokens of unknown or inactive users are refused)."""
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        user = User(tenant_id=tenant_id, email=email, display_name=email.split("@")[0], status="active")
        session.add(user)
        await session.flush()
        return user.id


async def activate_user(runtime: Runtime, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """An invited user who accepted the invitation (the tests mint its token directly)."""
    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        await session.execute(update(User).where(User.tenant_id == tenant_id, User.id == user_id).values(status="active"))


def bearer(runtime: Runtime, *, tenant_id: uuid.UUID, user_id: uuid.UUID, roles: set[str]) -> dict[str, str]:
    token = runtime.tokens.issue(Principal.user(user_id=user_id, tenant_id=tenant_id, roles=frozenset(roles)))
    return {"Authorization": f"Bearer {token}"}


START = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Admin:
    tenant_id: uuid.UUID
    headers: dict[str, str]


@dataclass(frozen=True)
class AgentSeat:
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    headers: dict[str, str]


MakeAgent = Callable[..., Awaitable[AgentSeat]]


def wav_bytes(seconds: float = 0.5, hz: float = 440.0, rate: int = 8000) -> bytes:
    """A short 16-bit mono WAV tone."""
    import io
    import math
    import struct
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(int(seconds * rate))))
    return buffer.getvalue()
