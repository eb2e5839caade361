"""Typed tenant events, the outbox, publishing and background jobs (Dramatiq).

The public interface other contexts use:

* ``TenantEvent`` — subclass it for a context's events (see ``events.types``);
* ``await emit(session, event)`` — outbox row in the caller's transaction,
  published after commit;
* ``tenant_job`` / ``platform_job`` and ``await enqueue(session, job, tenant_id=..., ...)``
  — Dramatiq jobs sent after commit and run inside the tenant's context;
* ``runtime.components["events"]`` — the ``EventBus``: ``subscribe(tenant_id=...)``,
  ``relay()``; ``runtime.components["jobs"]`` — the ``JobSystem``.

See docs/events.md.
"""

from kefu.platform.events.jobs import JobContext, enqueue, platform_job, tenant_job
from kefu.platform.events.outbox import emit
from kefu.platform.events.types import (
    PublishedEvent,
    TenantClosed,
    TenantEvent,
    TenantResumed,
    TenantSuspended,
    TenantUpdated,
)

__all__ = [
    "JobContext",
    "PublishedEvent",
    "TenantClosed",
    "TenantEvent",
    "TenantResumed",
    "TenantSuspended",
    "TenantUpdated",
    "emit",
    "enqueue",
    "platform_job",
    "tenant_job",
]
