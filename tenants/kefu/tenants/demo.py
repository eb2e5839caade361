"""Demo data for ``kefu demo`` and ``kefu serve --demo`` (idempotent).

Creates the tenant ``demo`` ("Demo Company", English), its tenant admin and
one agent with fixed, documented passwords, the queue "Support" with the agent
as member, and a web entry point.  Running it again changes nothing and
returns the same keys.  Demo passwords are public: never load the demo into a
production database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kefu.billing import services as billing
from kefu.platform import audit
from kefu.platform.db.base import utcnow
from kefu.platform.identity import services as identity
from kefu.platform.models import Tenant, TenantStatus
from kefu.platform.problems import Problem
from kefu.tenants import agents, queues
from kefu.tenants.models import EntryPoint, Queue

DEMO_TENANT = "demo"
DEMO_TENANT_NAME = "Demo Company"
ADMIN_EMAIL = "admin@demo.kefu"
ADMIN_PASSWORD = "kefu-demo-admin"
AGENT_EMAIL = "agent@demo.kefu"
AGENT_PASSWORD = "kefu-demo-agent"
QUEUE_NAME = "Support"
ENTRY_POINT_NAME = "Website"
ACTOR = "system:demo"
DEMO_SEATS = 5  # rented from the start (billing runs locally without a Stripe key)


async def load_demo(runtime: Any) -> dict[str, str]:
    async with runtime.db.platform_session(reason="load the demo tenant") as session:
        tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == DEMO_TENANT))
        if tenant_id is None:
            tenant = Tenant(slug=DEMO_TENANT, name=DEMO_TENANT_NAME, locale="en", time_zone="UTC", status=TenantStatus.ACTIVE, created_at=utcnow(), branding={})
            session.add(tenant)
            await session.flush()
            tenant_id = tenant.id
            await billing.open_account(session, tenant_id=tenant_id, seats=DEMO_SEATS, actor=ACTOR)
            await audit.record_platform(session, actor=ACTOR, action="demo.loaded", target=f"tenant:{tenant_id}")

    async with runtime.db.tenant_session(tenant_id=tenant_id) as session:
        try:
            await identity.create_user(
                session, tenant_id=tenant_id, email=ADMIN_EMAIL, display_name="Demo Admin", roles=["tenant_admin"],
                actor=ACTOR, password=ADMIN_PASSWORD,
            )
        except Problem as problem:
            if problem.code != "email_taken":
                raise
        agent = next((a for a in await agents.list_agents(session, tenant_id=tenant_id) if a.email == AGENT_EMAIL), None)
        if agent is None:
            agent, _ = await agents.create_agent(
                session, tenant_id=tenant_id, email=AGENT_EMAIL, display_name="Demo Agent", password=AGENT_PASSWORD, actor=ACTOR
            )
        queue = await session.scalar(select(Queue).where(Queue.tenant_id == tenant_id, Queue.name == QUEUE_NAME))
        if queue is None:
            queue = await queues.create_queue(session, tenant_id=tenant_id, name=QUEUE_NAME, actor=ACTOR)
        members = await queues.member_ids(session, tenant_id=tenant_id, queue_id=queue.id)
        if agent.id not in members:
            await queues.set_members(session, tenant_id=tenant_id, queue_id=queue.id, agent_ids=[*members, agent.id], actor=ACTOR)
        entry = await session.scalar(
            select(EntryPoint).where(EntryPoint.tenant_id == tenant_id, EntryPoint.queue_id == queue.id, EntryPoint.enabled.is_(True))
            .order_by(EntryPoint.created_at, EntryPoint.id)
        )
        if entry is None:
            entry = await queues.create_entry_point(session, tenant_id=tenant_id, name=ENTRY_POINT_NAME, queue_id=queue.id, actor=ACTOR)
        widget_key = entry.widget_key

    return {
        "tenant": DEMO_TENANT,
        "admin_email": ADMIN_EMAIL,
        "admin_password": ADMIN_PASSWORD,
        "agent_email": AGENT_EMAIL,
        "agent_password": AGENT_PASSWORD,
        "widget_key": widget_key,
    }
