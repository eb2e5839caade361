"""Request and response bodies of the contact-center API (msgspec Structs).

Requests forbid unknown fields: a typo is a 400, not a silently ignored value.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec


class Request(msgspec.Struct, forbid_unknown_fields=True):
    pass


# --- agents ------------------------------------------------------------------


class AgentCreate(Request):
    email: str
    display_name: str
    password: str | None = None


class AgentUpdate(Request):
    display_name: str | None = None


class AgentOut(msgspec.Struct):
    id: uuid.UUID
    user_id: uuid.UUID
    email: str | None
    display_name: str
    status: str
    not_ready_reason: str | None
    system_state: str
    state: str
    current_call_id: uuid.UUID | None
    queue_ids: list[uuid.UUID]
    invitation_token: str | None = None


# --- queues and entry points ---------------------------------------------------


class QueueCreate(Request):
    name: str
    max_wait_s: int = 600


class QueueUpdate(Request):
    name: str | None = None
    max_wait_s: int | None = None


class QueueMembers(Request):
    agent_ids: list[uuid.UUID]


class QueueOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    strategy: str
    max_wait_s: int
    agent_ids: list[uuid.UUID]
    created_at: datetime


class EntryPointCreate(Request):
    name: str
    queue_id: uuid.UUID


class EntryPointOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    kind: str
    widget_key: str
    queue_id: uuid.UUID
    caller_url: str
    created_at: datetime


# --- agent desktop -------------------------------------------------------------


class AgentStatusUpdate(Request):
    status: Literal["available", "not_ready"]
    reason: str | None = None


class AgentStateOut(msgspec.Struct):
    agent_id: uuid.UUID
    display_name: str
    state: str
    status: str
    system_state: str
    not_ready_reason: str | None
    current_call_id: uuid.UUID | None
    lease_expires_at: datetime | None


class AnswerRequest(Request):
    offer_sdp: str


class AnswerOut(msgspec.Struct):
    answer_sdp: str


# --- caller widget -------------------------------------------------------------


class WebCallCreate(Request):
    caller_name: str
    offer_sdp: str


class WebCallOut(msgspec.Struct):
    call_id: uuid.UUID
    answer_sdp: str
    caller_token: str


class CallerCallOut(msgspec.Struct):
    call_id: uuid.UUID
    status: str
    end_reason: str | None


# --- call log ------------------------------------------------------------------


class RecordingOut(msgspec.Struct):
    id: uuid.UUID
    call_id: uuid.UUID
    party: str
    media_type: str
    started_at: datetime
    ended_at: datetime | None
    size_bytes: int | None
    duration_ms: int | None
    media_url: str


class CallSummary(msgspec.Struct):
    id: uuid.UUID
    caller_name: str | None
    queue_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    status: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


class CallPage(msgspec.Struct):
    items: list[CallSummary]
    total: int
    limit: int
    offset: int


class CallDetailOut(msgspec.Struct):
    call_id: uuid.UUID
    caller_name: str | None
    entry_point_id: uuid.UUID | None
    queue_id: uuid.UUID | None
    queue_name: str | None
    agent_id: uuid.UUID | None
    agent_name: str | None
    status: str
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    wait_s: float | None
    talk_s: float | None
    end_reason: str | None
    offers: int
    recordings: list[RecordingOut]


class CallEventOut(msgspec.Struct):
    seq: int
    at: datetime
    type: str
    actor: str
    data: dict[str, Any]
