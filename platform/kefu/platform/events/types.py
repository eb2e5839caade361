"""Typed tenant events: the classes every context emits, and their catalogue.

An event is a frozen msgspec ``Struct`` with a mandatory ``tenant_id``.  Its
class states, once, three things the rest of the system relies on:

* ``event_type`` — the stable name clients switch on (``"tenant.suspended"``);
* ``permission`` — what a subscriber must hold to see it (websockets filter on it);
* ``routing_key`` — ``tenant.<tenant_id>.<event_type>``, derived, never stored twice.

Define a context's events next to the code that emits them::

    class AgentStatusChanged(TenantEvent, frozen=True, kw_only=True):
        event_type: ClassVar[str] = "agent.status_changed"
        permission: ClassVar[str] = "acd.agents.read"
        agent_id: uuid.UUID
        status: str

Every subclass with an ``event_type`` is registered in ``EVENT_TYPES``; a
second class claiming the same name is a programming error and fails at import.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

import msgspec

EVENT_TYPES: dict[str, type["TenantEvent"]] = {}

# Subscribers of an event type this process does not know must still be
# filtered: such events need the tenant-wide event permission.
DEFAULT_PERMISSION = "events.read"


class TenantEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_type: ClassVar[str] = ""
    permission: ClassVar[str] = DEFAULT_PERMISSION

    tenant_id: uuid.UUID

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.event_type:
            return
        known = EVENT_TYPES.get(cls.event_type)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"event type {cls.event_type!r} is already defined by {known.__module__}.{known.__qualname__}")
        EVENT_TYPES[cls.event_type] = cls

    @property
    def routing_key(self) -> str:
        return routing_key(self.tenant_id, self.event_type)

    def data(self) -> dict[str, Any]:
        """The JSON form stored in the outbox (and sent to subscribers)."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def routing_key(tenant_id: uuid.UUID, event_type: str) -> str:
    return f"tenant.{tenant_id}.{event_type}"


def permission_of(event_type: str) -> str:
    cls = EVENT_TYPES.get(event_type)
    return cls.permission if cls is not None else DEFAULT_PERMISSION


class PublishedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What subscribers receive: one committed outbox row, self-describing.

    Delivery is at least once; ``event_id`` is stable, so consumers de-duplicate on it.
    """

    event_id: uuid.UUID
    event_type: str
    tenant_id: uuid.UUID
    routing_key: str
    permission: str
    occurred_at: datetime
    data: dict[str, Any]

    def event(self) -> TenantEvent | None:
        """The typed event, when this process knows its class."""
        cls = EVENT_TYPES.get(self.event_type)
        return msgspec.convert(self.data, cls) if cls is not None else None


# --- the platform's own events ------------------------------------------------


class TenantSuspended(TenantEvent, frozen=True, kw_only=True):
    """The operator suspended the tenant: agents are logged out, sockets closed."""

    event_type: ClassVar[str] = "tenant.suspended"
    reason: str | None = None


class TenantResumed(TenantEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "tenant.resumed"


class TenantClosed(TenantEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "tenant.closed"
    purge_after: datetime


class TenantUpdated(TenantEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "tenant.updated"
    fields: list[str]
