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
    """A new queue; every routing rule may be given (docs/acd-configuration.md has ranges and defaults)."""

    name: str
    strategy: str = "longest_idle"
    ring_timeout_s: int | None = None
    max_wait_s: int = 600
    max_wait_action: str = "hangup"
    max_wait_queue_id: uuid.UUID | None = None
    overflow_after_s: int | None = None
    overflow_ratio: float | None = None
    overflow_action: str | None = None
    overflow_queue_id: uuid.UUID | None = None
    relax_after_s: int | None = None
    relax_any_after_s: int | None = None
    preferred_agent_timeout_s: int = 0
    wrap_up_mode: str = "none"
    wrap_up_s: int = 0
    wrap_up_max_s: int = 0
    disposition_required: bool = False
    service_level_s: int = 20
    announce_interval_s: int = 0
    schedule_id: uuid.UUID | None = None
    closed_action: str = "hangup"


class QueueUpdate(Request):
    """Only the fields present change; ``null`` clears a rule that may be null."""

    name: str | None = None
    strategy: str | msgspec.UnsetType = msgspec.UNSET
    ring_timeout_s: int | None | msgspec.UnsetType = msgspec.UNSET
    max_wait_s: int | None = None
    max_wait_action: str | msgspec.UnsetType = msgspec.UNSET
    max_wait_queue_id: uuid.UUID | None | msgspec.UnsetType = msgspec.UNSET
    overflow_after_s: int | None | msgspec.UnsetType = msgspec.UNSET
    overflow_ratio: float | None | msgspec.UnsetType = msgspec.UNSET
    overflow_action: str | None | msgspec.UnsetType = msgspec.UNSET
    overflow_queue_id: uuid.UUID | None | msgspec.UnsetType = msgspec.UNSET
    relax_after_s: int | None | msgspec.UnsetType = msgspec.UNSET
    relax_any_after_s: int | None | msgspec.UnsetType = msgspec.UNSET
    preferred_agent_timeout_s: int | msgspec.UnsetType = msgspec.UNSET
    wrap_up_mode: str | msgspec.UnsetType = msgspec.UNSET
    wrap_up_s: int | msgspec.UnsetType = msgspec.UNSET
    wrap_up_max_s: int | msgspec.UnsetType = msgspec.UNSET
    disposition_required: bool | msgspec.UnsetType = msgspec.UNSET
    service_level_s: int | msgspec.UnsetType = msgspec.UNSET
    announce_interval_s: int | msgspec.UnsetType = msgspec.UNSET
    schedule_id: uuid.UUID | None | msgspec.UnsetType = msgspec.UNSET
    closed_action: str | msgspec.UnsetType = msgspec.UNSET


class QueueMembers(Request):
    agent_ids: list[uuid.UUID]


class QueueOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    strategy: str
    max_wait_s: int
    agent_ids: list[uuid.UUID]
    created_at: datetime
    ring_timeout_s: int | None
    max_wait_action: str
    max_wait_queue_id: uuid.UUID | None
    overflow_after_s: int | None
    overflow_ratio: float | None
    overflow_action: str | None
    overflow_queue_id: uuid.UUID | None
    relax_after_s: int | None
    relax_any_after_s: int | None
    preferred_agent_timeout_s: int
    wrap_up_mode: str
    wrap_up_s: int
    wrap_up_max_s: int
    disposition_required: bool
    service_level_s: int
    announce_interval_s: int
    schedule_id: uuid.UUID | None
    closed_action: str


class EntryPointCreate(Request):
    name: str
    queue_id: uuid.UUID
    priority: int = 0
    flow_id: uuid.UUID | None = None


class EntryPointUpdate(Request):
    """Only the fields present change; ``"flow_id": null`` sends callers straight to the queue."""

    name: str | None = None
    queue_id: uuid.UUID | None = None
    priority: int | None = None
    flow_id: uuid.UUID | None | msgspec.UnsetType = msgspec.UNSET


class EntryPointOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    kind: str
    widget_key: str
    queue_id: uuid.UUID
    caller_url: str
    created_at: datetime
    priority: int = 0
    flow_id: uuid.UUID | None = None


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
    # After-call work: the call being wrapped up and when it ends by itself (None: the agent ends it).
    wrap_up_call_id: uuid.UUID | None = None
    wrap_up_until: datetime | None = None


class AnswerRequest(Request):
    offer_sdp: str


class AnswerOut(msgspec.Struct):
    answer_sdp: str


# --- caller widget -------------------------------------------------------------


class WebCallCreate(Request):
    caller_name: str
    offer_sdp: str
    # The tenant's own reference for a returning caller (preferred-agent routing).
    caller_ref: str | None = None


class WebCallOut(msgspec.Struct):
    call_id: uuid.UUID
    answer_sdp: str
    caller_token: str
    status: str = "queued"  # ivr (in the entry point's flow: the keypad is live), queued or voicemail


class CallerCallOut(msgspec.Struct, omit_defaults=True):
    call_id: uuid.UUID
    status: str
    end_reason: str | None
    # While queued: the place in the queue (from 1) and the expected wait.
    position: int | None = None
    expected_wait_s: int | None = None
    callback: bool = False


# --- call log ------------------------------------------------------------------


class RecordingMeta(msgspec.Struct):
    """A recording's metadata (QA answers this; its playback links come by id)."""

    id: uuid.UUID
    call_id: uuid.UUID
    party: str
    media_type: str
    started_at: datetime
    ended_at: datetime | None
    size_bytes: int | None
    duration_ms: int | None


class RecordingOut(RecordingMeta):
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
