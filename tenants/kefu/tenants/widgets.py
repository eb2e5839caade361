"""Public widget keys resolved to their entry point, remembered per process.

Every web call starts by resolving its widget key (entry point, tenant, queue,
priority, and whether the tenant takes calls).  Read from the database that is
a platform transaction of its own — more CPU than the rest of the arrival — so
each process keeps what it resolved for ``TTL_S``.  Nothing goes stale for
long:

* every transaction that changes or deletes an entry point, or changes a
  tenant (suspended, resumed, closed), makes this process forget that tenant's
  keys when it commits (a SQLAlchemy session listener sees the flushed rows);
* the same commit tells every other process through the push hub (Redis
  pub/sub in production), which forget them too;
* a key that resolves to nothing is never remembered, so a new entry point
  works at once everywhere.

``warm()`` (at start) reads every enabled key in one query, so a node that
just started does not pay a lookup for each key's first call.

Only a change made outside Kefu's sessions (hand-written SQL) waits out the TTL.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kefu.platform.db import Database
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.problems import Problem, not_found
from kefu.tenants.models import EntryPoint
from kefu.tenants.notify import Channel, Hub
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

TTL_S = 300.0
MAX_KEYS = 50_000
MAX_KEY_LENGTH = 64
CHANGED = "widgets"  # the push hub channel kind that carries "forget this tenant's keys"

_ENTRIES = (
    select(EntryPoint.widget_key, EntryPoint.id, EntryPoint.tenant_id, EntryPoint.queue_id, EntryPoint.priority, Tenant.status, EntryPoint.flow_id)
    .join(Tenant, Tenant.id == EntryPoint.tenant_id)
    .where(EntryPoint.enabled.is_(True))
)
_LOOKUP = _ENTRIES.where(EntryPoint.widget_key == bindparam("key"))


@dataclass(frozen=True)
class WidgetEntry:
    """What a call needs of its entry point."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    queue_id: uuid.UUID
    priority: int
    tenant_status: str
    flow_id: uuid.UUID | None = None  # the IVR flow callers go through first


class WidgetDirectory:
    def __init__(self, db: Database, hub: Hub, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.hub = hub
        self.clock = clock
        self._known: OrderedDict[str, tuple[float, WidgetEntry]] = OrderedDict()
        self.lookups = 0  # database reads, for tests and benchmarks
        hub.watch(CHANGED, self._on_changed)
        _directories.add(self)

    async def resolve(self, widget_key: str) -> WidgetEntry:
        """The entry point behind a public widget key (the key names the tenant):
        404 for an unknown or disabled key, 403 ``tenant_<status>`` for a tenant not
        taking calls."""
        if not widget_key or len(widget_key) > MAX_KEY_LENGTH:
            raise not_found("entry point")
        now = self.clock()
        known = self._known.get(widget_key)
        if known is not None and known[0] > now:
            entry = known[1]
        else:
            entry = await self._look_up(widget_key, now)
        if entry.tenant_status != TenantStatus.ACTIVE:
            raise Problem(403, f"tenant_{entry.tenant_status}", "this service is not taking calls at the moment")
        return entry

    async def warm(self) -> int:
        """Remember every enabled key (up to ``MAX_KEYS``); returns how many."""
        now = self.clock()
        async with self.db.platform_session(reason="remember the public widget keys") as session:
            rows = (await session.execute(_ENTRIES.limit(MAX_KEYS))).all()
        for row in rows:
            self._known[row.widget_key] = (now + TTL_S, WidgetEntry(row.id, row.tenant_id, row.queue_id, row.priority, row.status, row.flow_id))
        return len(rows)

    async def _look_up(self, widget_key: str, now: float) -> WidgetEntry:
        self.lookups += 1
        async with self.db.platform_session(reason="resolve a public widget key to its tenant") as session:
            row = (await session.execute(_LOOKUP, {"key": widget_key})).first()
        if row is None:
            self._known.pop(widget_key, None)
            raise not_found("entry point")
        entry = WidgetEntry(row.id, row.tenant_id, row.queue_id, row.priority, row.status, row.flow_id)
        self._known[widget_key] = (now + TTL_S, entry)
        self._known.move_to_end(widget_key)
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)
        return entry

    def forget(self, tenant_id: uuid.UUID) -> None:
        """Forget the tenant's keys on this process."""
        for key in [k for k, (_, entry) in self._known.items() if entry.tenant_id == tenant_id]:
            del self._known[key]

    def changed(self, tenant_id: uuid.UUID) -> None:
        """The tenant's entry points or status changed: forget here, and tell every process."""
        self.forget(tenant_id)
        self.hub.publish((CHANGED, tenant_id, tenant_id), {"type": "widgets.changed"})

    def _on_changed(self, channel: Channel, _message: dict[str, Any]) -> None:
        self.forget(channel[1])


# --- noticing changes ----------------------------------------------------------------------

_directories: weakref.WeakSet[WidgetDirectory] = weakref.WeakSet()
_CHANGED_TENANTS = "kefu.widgets.changed_tenants"


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: Any) -> None:
    """Remember (until commit) the tenants whose entry points or status this flush changed."""
    changed: set[uuid.UUID] | None = None
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, EntryPoint):
            tenant_id = obj.tenant_id
        elif isinstance(obj, Tenant):
            tenant_id = obj.id
        else:
            continue
        if changed is None:
            changed = session.info.setdefault(_CHANGED_TENANTS, set())
        changed.add(tenant_id)


@event.listens_for(Session, "after_commit")
def _announce_changes(session: Session) -> None:
    changed = session.info.pop(_CHANGED_TENANTS, None)
    if changed:
        for directory in list(_directories):
            for tenant_id in changed:
                directory.changed(tenant_id)


@event.listens_for(Session, "after_rollback")
def _drop_changes(session: Session) -> None:
    session.info.pop(_CHANGED_TENANTS, None)
