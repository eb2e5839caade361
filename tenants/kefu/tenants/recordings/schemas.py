"""Request and response types of the recording management API (msgspec structs)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec


class Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PartyRecordingOut(msgspec.Struct):
    party: str
    recording_id: uuid.UUID
    media_type: str
    duration_ms: int | None
    size_bytes: int | None


class NamedRef(msgspec.Struct):
    id: uuid.UUID
    name: str | None


class RecordedCallOut(msgspec.Struct):
    """One call of the recordings search: who, when, how it ended, its files."""

    call_id: uuid.UUID
    serial: str
    caller_name: str | None
    caller_ref: str | None
    agent: NamedRef | None
    queue: NamedRef | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    talk_s: int
    disposition_code: str | None
    held: bool
    parties: list[PartyRecordingOut]


class RecordedCallPage(msgspec.Struct):
    items: list[RecordedCallOut]
    limit: int
    # Pass as ``cursor`` for the next (older) page; None on the last page.
    next_cursor: str | None


class LinkRequest(Request):
    purpose: Literal["listen", "download"] = "listen"


class LinkOut(msgspec.Struct):
    recording_id: uuid.UUID
    purpose: str
    url: str
    expires_at: datetime


class PartyLinkOut(msgspec.Struct):
    party: str
    recording_id: uuid.UUID
    media_type: str
    duration_ms: int | None
    url: str


class PlaybackOut(msgspec.Struct):
    """Every party's listen link of one call, for a player with one channel per party."""

    call_id: uuid.UUID
    serial: str
    expires_at: datetime
    parties: list[PartyLinkOut]


class AccessEntryOut(msgspec.Struct):
    id: int
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]
    ip: str | None


class RetentionUpdate(Request):
    # Days after a call ended; None: keep forever.
    retention_days: int | None


class QueueRetentionOut(msgspec.Struct):
    queue_id: uuid.UUID
    queue_name: str
    retention_days: int | None


class RetentionOut(msgspec.Struct):
    """The tenant-wide period (None: keep forever) and the queues that override it."""

    retention_days: int | None
    queues: list[QueueRetentionOut]


class LegalHoldRequest(Request):
    reason: str


class LegalHoldOut(msgspec.Struct):
    call_id: uuid.UUID
    serial: str
    reason: str
    placed_by: str
    placed_at: datetime
