"""What the cross-tenant harness knows about the route table.

The harness (``test_cross_tenant.py``) walks ``app.routes`` and needs, for each
route, either a way to exercise it across tenants or an explicit reason why not.
Adding a route therefore means adding a line here; a route this file cannot
handle makes the harness fail with the route's path.

* ``ID_FACTORIES``: path-parameter name -> a factory creating that resource in
  a given tenant (through the API where a creation route exists, through the
  context's services otherwise) and returning the value to put in the path.
* ``ROUTE_ROLES``: which tenant role calls a route (default ``tenant_admin``).
* ``WRITE_BODIES``: a valid body for each POST/PUT/PATCH route that has an id
  in its path, so the request reaches the lookup (and the 404) instead of
  failing validation.
* ``LIST_ROUTES``: GET routes under ``/api/v1`` without ids: which of tenant A's
  resources the answer must show (proof that the list is real); none of tenant
  B's identifiers may appear in it.
* ``CREATE_ROUTES``: write routes under ``/api/v1`` without ids, with why they
  cannot reach another tenant.
* ``BODY_REFERENCES``: write routes whose request type has ``*_id``/``*_ids``
  fields: a body naming the other tenant's ids, which must answer 404 and
  store nothing.
* ``TENANT_SETUP``: singletons without ids (e.g. SSO settings) set up in both
  tenants so list checks can look for their markers.
* ``PUBLIC_ROUTES`` / ``PUBLIC_PREFIXES``: routes outside the tenant API, with why
  they take no tenant token.
* ``WEBSOCKET_ROUTES``: websocket routes, with how their tenant is enforced.

Operator routes under ``/api/admin/v1`` need no entry: tenant tokens must get
403 on every one of them.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from test_cross_tenant import Harness, TenantWorld

# The contact-center test helpers (a WAV for the audio prompt factory).
sys.path.insert(0, str(Path(__file__).parents[1] / "tenants"))

TENANT_API = "/api/v1/"
ADMIN_API = "/api/admin/v1/"
DEFAULT_ROLE = "tenant_admin"
PARAM = re.compile(r"\{(\w+)(?::[^}]+)?\}")

Factory = Callable[["Harness", "TenantWorld"], Awaitable[str]]


def path_params(path: str) -> list[str]:
    return PARAM.findall(path)


def fill(path: str, values: dict[str, str]) -> str:
    return PARAM.sub(lambda m: values[m.group(1)], path)


# --- factories ----------------------------------------------------------------


async def make_user(h: "Harness", t: "TenantWorld") -> str:
    body = {"email": f"person-{uuid.uuid4().hex[:8]}@{t.slug}.test", "display_name": f"{t.slug} person", "roles": ["agent"]}
    created = await h.call_ok("POST", "/api/v1/users", t, json=body)
    return str(created["user"]["id"])


async def make_integration_client(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/integration-clients", t, json={"name": f"{t.slug} crm", "scopes": ["calls.read"]})
    return str(created["client"]["client_id"])


async def make_agent(h: "Harness", t: "TenantWorld") -> str:
    body = {"email": f"agent-{uuid.uuid4().hex[:8]}@{t.slug}.test", "display_name": f"{t.slug} agent"}
    created = await h.call_ok("POST", "/api/v1/agents", t, json=body)
    t.emails.append(body["email"])
    return str(created["id"])


async def make_queue(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/queues", t, json={"name": f"{t.slug} support"})
    return str(created["id"])


async def make_entry_point(h: "Harness", t: "TenantWorld") -> str:
    queue_id = await h.resource(t, "queue_id")
    created = await h.call_ok("POST", "/api/v1/entry-points", t, json={"name": f"{t.slug} web", "queue_id": queue_id})
    t.resources["widget_key"] = created["widget_key"]
    return str(created["id"])


async def make_call(h: "Harness", t: "TenantWorld") -> str:
    """An ended, answered web call with its event log and one recording file per party.

    Calls only come into being through WebRTC (the caller widget), so the row
    and its events are written with the call log's services, the way the call
    flow writes them.
    """
    from datetime import timedelta

    from kefu.platform.db.base import utcnow
    from kefu.tenants import call_log
    from kefu.tenants.models import Call, Recording

    entry_point_id = uuid.UUID(await h.resource(t, "entry_point_id"))
    queue_id = uuid.UUID(await h.resource(t, "queue_id"))
    agent_id = uuid.UUID(await h.resource(t, "agent_id"))
    # The agent-desktop user's own agent takes the call, so its routes have a call to act on.
    await h.token(t, "agent")
    desk_agent = uuid.UUID(t.resources["agent:agent"])
    started = utcnow() - timedelta(minutes=5)
    call_id = uuid.uuid4()
    async with h.db.tenant_session(tenant_id=t.id) as session:
        session.add(Call(
            id=call_id, tenant_id=t.id, entry_point_id=entry_point_id, queue_id=queue_id, agent_id=desk_agent,
            caller_name=f"{t.slug} caller", status="ended", started_at=started, queued_at=started,
            answered_at=started + timedelta(seconds=12), ended_at=started + timedelta(seconds=95), end_reason="caller_hangup",
        ))
        await session.flush()
        for seq_type, offset in (("queued", 0), ("offered", 2), ("answered", 12), ("ended", 95)):
            await call_log.append_event(
                session, tenant_id=t.id, call_id=call_id, type=seq_type, actor="system", at=started + timedelta(seconds=offset),
                data={"agent_id": str(agent_id)} if seq_type == "offered" else {},
            )
        for party in ("caller", "agent"):
            relative = f"{t.id}/{call_id}/{party}.ogg"
            path = h.runtime.settings.recordings_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"OggS" + party.encode() * 16)
            recording = Recording(
                tenant_id=t.id, call_id=call_id, party=party, path=relative, started_at=started + timedelta(seconds=12),
                ended_at=started + timedelta(seconds=95), size_bytes=path.stat().st_size, duration_ms=83000,
            )
            session.add(recording)
            await session.flush()
            t.resources.setdefault("recording_id", str(recording.id))
    return str(call_id)


async def make_recording(h: "Harness", t: "TenantWorld") -> str:
    await h.resource(t, "call_id")
    return t.resources["recording_id"]


async def make_skill(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/skills", t, json={"name": f"{t.slug} mandarin"})
    skill_id = str(created["id"])
    # The skill is held by the tenant's agent and needed by its queue, so those lists have rows.
    agent_id, queue_id = await h.resource(t, "agent_id"), await h.resource(t, "queue_id")
    await h.call_ok("PUT", f"/api/v1/agents/{agent_id}/skills", t, json={"skills": [{"skill_id": skill_id, "proficiency": 7}]})
    await h.call_ok("PUT", f"/api/v1/queues/{queue_id}/skills", t, json={"skills": [{"skill_id": skill_id, "min_proficiency": 3}]})
    return skill_id


async def make_reason_code(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/reason-codes", t, json={"code": "lunch", "label": f"{t.slug} lunch"})
    return str(created["id"])


async def make_wrap_up_code(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/wrap-up-codes", t, json={"code": "resolved", "label": f"{t.slug} resolved"})
    return str(created["id"])


async def make_schedule(h: "Harness", t: "TenantWorld") -> str:
    body = {"name": f"{t.slug} office hours", "time_zone": "Europe/Berlin", "weekly": {"mon": [["09:00", "18:00"]]},
            "holidays": [{"date": "2026-12-25", "name": "Christmas", "hours": []}]}
    created = await h.call_ok("POST", "/api/v1/schedules", t, json=body)
    return str(created["id"])


def ivr_document(queue_id: str | None = None) -> dict[str, Any]:
    nodes: dict[str, Any] = {"bye": {"type": "hangup", "prompt": {"en": {"text": "Goodbye"}}}}
    if queue_id is not None:
        nodes = {"q": {"type": "queue", "queue_id": queue_id}}
    return {"schema": "kefu.ivr/1", "start": next(iter(nodes)), "nodes": nodes}


async def make_ivr_flow(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/ivr/flows", t, json={"name": f"{t.slug} main line", "document": ivr_document()})
    await h.call_ok("POST", f"/api/v1/ivr/flows/{created['id']}/publish", t)
    return str(created["id"])


async def make_ivr_lookup_address(h: "Harness", t: "TenantWorld") -> str:
    created = await h.call_ok("POST", "/api/v1/ivr/lookup-addresses", t, json={"prefix": f"https://crm.{t.slug}.test/"})
    return str(created["id"])


async def make_ivr_audio(h: "Harness", t: "TenantWorld") -> str:
    token = await h.token(t, DEFAULT_ROLE)
    from tenants_support import wav_bytes

    response = await h.client.post(f"/api/v1/ivr/audio?name={t.slug}-welcome", content=wav_bytes(),
                                   headers={"Authorization": f"Bearer {token}", "Content-Type": "audio/wav"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def make_voicemail(h: "Harness", t: "TenantWorld") -> str:
    """A caller's message left for the tenant's queue (written as the call flow writes it)."""
    from datetime import timedelta

    from kefu.platform.db.base import utcnow
    from kefu.tenants import call_log
    from kefu.tenants.models import Call, Voicemail

    entry_point_id = uuid.UUID(await h.resource(t, "entry_point_id"))
    queue_id = uuid.UUID(await h.resource(t, "queue_id"))
    started = utcnow() - timedelta(minutes=3)
    call_id = uuid.uuid4()
    async with h.db.tenant_session(tenant_id=t.id) as session:
        session.add(Call(
            id=call_id, tenant_id=t.id, entry_point_id=entry_point_id, queue_id=queue_id, caller_name=f"{t.slug} voicemail caller",
            status="ended", started_at=started, ended_at=started + timedelta(seconds=40), end_reason="voicemail",
        ))
        await session.flush()
        await call_log.append_event(session, tenant_id=t.id, call_id=call_id, type="voicemail_started", actor="acd", at=started, data={})
        voicemail = Voicemail(tenant_id=t.id, call_id=call_id, queue_id=queue_id, status="new", created_at=started)
        session.add(voicemail)
        await session.flush()
        return str(voicemail.id)


async def make_invoice(h: "Harness", t: "TenantWorld") -> str:
    from kefu.billing.models import Invoice

    now = datetime.now(UTC)
    async with h.db.tenant_session(tenant_id=t.id) as session:
        invoice = Invoice(
            tenant_id=t.id, number=f"L-{t.slug}-0001", status="open", currency="usd", period_start=now - timedelta(days=30), period_end=now,
            subtotal=4900, total=4900, amount_due=4900, lines=[], sent_to_stripe=False, local_key=f"local:{t.slug}",
        )
        session.add(invoice)
        await session.flush()
        return str(invoice.id)


async def make_team(h: "Harness", t: "TenantWorld") -> str:
    agent_id = await h.resource(t, "agent_id")
    created = await h.call_ok("POST", "/api/v1/teams", t, json={"name": f"{t.slug} day shift", "agent_ids": [agent_id]})
    return str(created["id"])


ID_FACTORIES: dict[str, Factory] = {
    "team_id": make_team,
    "invoice_id": make_invoice,
    "ivr_audio_id": make_ivr_audio,
    "voicemail_id": make_voicemail,
    "user_id": make_user,
    "client_id": make_integration_client,
    "agent_id": make_agent,
    "queue_id": make_queue,
    "entry_point_id": make_entry_point,
    "call_id": make_call,
    "recording_id": make_recording,
    "skill_id": make_skill,
    "reason_code_id": make_reason_code,
    "wrap_up_code_id": make_wrap_up_code,
    "schedule_id": make_schedule,
    "ivr_flow_id": make_ivr_flow,
    "ivr_lookup_address_id": make_ivr_lookup_address,
}

# --- roles and bodies ------------------------------------------------------------

# Routes a tenant admin may not call.  "agent" is a user with an agent seat.
ROUTE_ROLES: dict[str, str] = {
    "/api/v1/agent/calls/{call_id:uuid}/answer": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/hangup": "agent",
    "/api/v1/agent/state": "agent",
    "/api/v1/agent/session": "agent",
    "/api/v1/agent/status": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/hold": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/mute": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/recording": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/media": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/transfer": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/consult": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/consult/answer": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/consult/conference": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/consult/complete": "agent",
    "/api/v1/agent/directory": "agent",
    "/api/v1/agent/reason-codes": "agent",
    "/api/v1/agent/wrap-up-codes": "agent",
    "/api/v1/agent/wrap-up/end": "agent",
    "/api/v1/agent/wrap-up/extend": "agent",
    "/api/v1/agent/calls/{call_id:uuid}/disposition": "agent",
}

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

WRITE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("PATCH", "/api/v1/users/{user_id:uuid}"): {"display_name": "Mallory"},
    ("PUT", "/api/v1/users/{user_id:uuid}/roles"): {"roles": ["agent", "supervisor"]},
    ("PATCH", "/api/v1/agents/{agent_id:uuid}"): {"display_name": "Mallory"},
    ("PATCH", "/api/v1/queues/{queue_id:uuid}"): {"name": "Mallory's queue"},
    ("PUT", "/api/v1/queues/{queue_id:uuid}/members"): {"agent_ids": []},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/answer"): {"offer_sdp": SDP},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/hangup"): None,
    ("PUT", "/api/v1/agent/calls/{call_id:uuid}/hold"): {"on_hold": True},
    ("PUT", "/api/v1/agent/calls/{call_id:uuid}/mute"): {"muted": True},
    ("PUT", "/api/v1/agent/calls/{call_id:uuid}/recording"): {"paused": True},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/transfer"): {"queue_id": "00000000-0000-4000-8000-000000000001"},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/consult"): {"queue_id": "00000000-0000-4000-8000-000000000001"},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/consult/answer"): {"offer_sdp": SDP},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/consult/conference"): None,
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/consult/complete"): None,
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/media"): {"offer_sdp": SDP},
    ("POST", "/api/v1/supervision/calls/{call_id:uuid}"): {"mode": "monitor", "offer_sdp": SDP},
    ("PUT", "/api/v1/supervision/calls/{call_id:uuid}/mode"): {"mode": "barge"},
    ("POST", "/api/v1/supervision/calls/{call_id:uuid}/takeover"): None,
    ("PUT", "/api/v1/supervision/calls/{call_id:uuid}/recording"): {"paused": True},
    ("PUT", "/api/v1/agent/calls/{call_id:uuid}/disposition"): {"code": "resolved", "first_call_resolution": True},
    ("PATCH", "/api/v1/skills/{skill_id:uuid}"): {"name": "Mallory's skill"},
    ("PUT", "/api/v1/agents/{agent_id:uuid}/skills"): {"skills": [{"skill_id": "00000000-0000-4000-8000-000000000001", "proficiency": 5}]},
    ("PUT", "/api/v1/queues/{queue_id:uuid}/skills"): {"skills": [{"skill_id": "00000000-0000-4000-8000-000000000001", "min_proficiency": 5}]},
    ("PATCH", "/api/v1/reason-codes/{reason_code_id:uuid}"): {"label": "Mallory's reason", "active": False},
    ("PATCH", "/api/v1/wrap-up-codes/{wrap_up_code_id:uuid}"): {"label": "Mallory's disposition", "active": False},
    ("PATCH", "/api/v1/schedules/{schedule_id:uuid}"): {"name": "Mallory's hours", "weekly": {}},
    ("PUT", "/api/v1/ivr/flows/{ivr_flow_id:uuid}/draft"): {"document": ivr_document()},
    ("POST", "/api/v1/ivr/flows/{ivr_flow_id:uuid}/validate"): None,
    ("POST", "/api/v1/ivr/flows/{ivr_flow_id:uuid}/publish"): None,
    ("POST", "/api/v1/ivr/flows/{ivr_flow_id:uuid}/rollback"): {"version": 1},
    ("POST", "/api/v1/ivr/flows/{ivr_flow_id:uuid}/simulate"): {"inputs": ["1"]},
    ("PATCH", "/api/v1/entry-points/{entry_point_id:uuid}"): {"name": "Mallory's line"},
    ("POST", "/api/v1/voicemails/{voicemail_id:uuid}/done"): None,
    ("PATCH", "/api/v1/teams/{team_id:uuid}"): {"name": "Mallory's team"},
    ("PUT", "/api/v1/queues/{queue_id:uuid}/supervisors"): {"user_ids": []},
    ("PUT", "/api/v1/supervision/agents/{agent_id:uuid}/status"): {"status": "not_ready"},
}

# Write routes whose body names other resources: the path takes the caller's
# own ids, the body's "{param}" placeholders the other tenant's.  Found by the
# harness from the request types (fields named *_id / *_ids); each needs a line.
BODY_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/entry-points"): {"name": "smuggled", "queue_id": "{queue_id}"},
    # The other tenant's (published) flow; its queue is checked the same way (tests/tenants/test_ivr_calls.py).
    ("PATCH", "/api/v1/entry-points/{entry_point_id:uuid}"): {"flow_id": "{ivr_flow_id}"},
    ("PUT", "/api/v1/queues/{queue_id:uuid}/members"): {"agent_ids": ["{agent_id}"]},
    ("POST", "/api/v1/teams"): {"name": "smuggled", "agent_ids": ["{agent_id}"], "supervisor_ids": ["{user_id}"]},
    ("PATCH", "/api/v1/teams/{team_id:uuid}"): {"agent_ids": ["{agent_id}"], "supervisor_ids": ["{user_id}"]},
    ("PUT", "/api/v1/queues/{queue_id:uuid}/supervisors"): {"user_ids": ["{user_id}"]},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/transfer"): {"agent_id": "{agent_id}"},
    ("POST", "/api/v1/agent/calls/{call_id:uuid}/consult"): {"queue_id": "{queue_id}"},
    ("POST", "/api/v1/queues"): {
        "name": "smuggled", "overflow_after_s": 60, "overflow_action": "queue", "overflow_queue_id": "{queue_id}",
    },
    ("PATCH", "/api/v1/queues/{queue_id:uuid}"): {"schedule_id": "{schedule_id}"},
    # Nested ids (the harness finds top-level ones only): the other tenant's skill.
    ("PUT", "/api/v1/agents/{agent_id:uuid}/skills"): {"skills": [{"skill_id": "{skill_id}", "proficiency": 5}]},
    ("PUT", "/api/v1/queues/{queue_id:uuid}/skills"): {"skills": [{"skill_id": "{skill_id}", "min_proficiency": 5, "required": True}]},
}

# Request fields named *_id that are not references to Kefu rows.
NOT_REFERENCES: dict[tuple[str, str], str] = {
    ("PUT", "/api/v1/sso"): "client_id is the tenant's client id at its own OIDC provider, not a Kefu row",
}


@dataclass(frozen=True)
class ListCheck:
    # The resource of tenant A the answer must contain (None: a singleton such
    # as "me"; the reason says what it shows).
    shows: str | None
    reason: str = ""


LIST_ROUTES: dict[str, ListCheck] = {
    "/api/v1/users": ListCheck("user_id"),
    "/api/v1/integration-clients": ListCheck("client_id"),
    "/api/v1/audit-log": ListCheck("user_id", "user creation is audited with the user's id"),
    "/api/v1/me": ListCheck(None, "the caller's own user and tenant"),
    "/api/v1/sso": ListCheck("sso_issuer", "the caller's tenant's SSO settings (a singleton)"),
    "/api/v1/agents": ListCheck("agent_id"),
    "/api/v1/queues": ListCheck("queue_id"),
    "/api/v1/entry-points": ListCheck("entry_point_id"),
    "/api/v1/calls": ListCheck("call_id"),
    "/api/v1/agent/state": ListCheck("agent:agent", "the signed-in agent's own seat"),
    "/api/v1/agent/directory": ListCheck("agent_id", "transfer targets: the tenant's queues and its agents other than the caller's own seat"),
    "/api/v1/media/ice-servers": ListCheck(None, "ICE servers and a TURN credential named for the caller's own tenant and user"),
    "/api/v1/skills": ListCheck("skill_id"),
    "/api/v1/reason-codes": ListCheck("reason_code_id"),
    "/api/v1/wrap-up-codes": ListCheck("wrap_up_code_id"),
    "/api/v1/schedules": ListCheck("schedule_id"),
    "/api/v1/ivr/flows": ListCheck("ivr_flow_id"),
    "/api/v1/ivr/lookup-addresses": ListCheck("ivr_lookup_address_id"),
    "/api/v1/voicemails": ListCheck("voicemail_id"),
    "/api/v1/ivr/audio": ListCheck("ivr_audio_id"),
    "/api/v1/ivr/statistics": ListCheck("ivr_flow_id", "every flow of the tenant with its counts for the last day"),
    "/api/v1/ivr/schema": ListCheck(None, "the published JSON Schema of a flow document, the same for every tenant"),
    "/api/v1/agent/reason-codes": ListCheck("reason_code_id", "the active reason codes the agent desktop offers"),
    "/api/v1/agent/wrap-up-codes": ListCheck("wrap_up_code_id", "the active wrap-up codes the agent desktop offers"),
    "/api/v1/billing": ListCheck(None, "the caller's own tenant's billing account (plan, seats, status)"),
    "/api/v1/billing/ledger": ListCheck(None, "the caller's own tenant's seat ledger"),
    "/api/v1/billing/invoices": ListCheck("invoice_id"),
    "/api/v1/teams": ListCheck("team_id"),
    "/api/v1/supervision/console": ListCheck("agent_id", "a tenant admin's console: every agent, queue and connected call of the tenant"),
}


@dataclass(frozen=True)
class CreateCheck:
    reason: str
    methods: tuple[str, ...] = field(default=("POST",))


CREATE_ROUTES: dict[str, CreateCheck] = {
    "/api/v1/users": CreateCheck("the tenant comes from the token; the body names no other resource"),
    "/api/v1/integration-clients": CreateCheck("the body names no other resource"),
    "/api/v1/sso": CreateCheck("PUT of the caller's own tenant's settings", ("PUT",)),
    "/api/v1/agents": CreateCheck("creates a user and seat in the caller's tenant"),
    "/api/v1/queues": CreateCheck("the overflow and max-wait queues and the schedule in the body are checked by BODY_REFERENCES"),
    "/api/v1/skills": CreateCheck("the body names no other resource"),
    "/api/v1/reason-codes": CreateCheck("the body names no other resource"),
    "/api/v1/wrap-up-codes": CreateCheck("the body names no other resource"),
    "/api/v1/schedules": CreateCheck("the body names no other resource"),
    "/api/v1/ivr/flows": CreateCheck(
        "the document's queues, skills, schedules, flows and agents are validated against the caller's tenant only "
        "(another tenant's are unknown: tests/tenants/test_ivr_store.py and test_ivr_api.py)"
    ),
    "/api/v1/ivr/lookup-addresses": CreateCheck("the body names no other resource"),
    "/api/v1/ivr/audio": CreateCheck("the body is the audio file; it is stored under the caller's tenant's own folder"),
    "/api/v1/ivr/flows/import": CreateCheck("creates a flow in the caller's tenant; the document is validated against that tenant only"),
    "/api/v1/entry-points": CreateCheck("the queue in the body is checked by BODY_REFERENCES"),
    "/api/v1/agent/session": CreateCheck("the signed-in agent's own seat (log in / log out)", ("POST", "DELETE")),
    "/api/v1/agent/status": CreateCheck("the signed-in agent's own status", ("PUT",)),
    "/api/v1/agent/wrap-up/end": CreateCheck("the signed-in agent's own after-call work"),
    "/api/v1/agent/wrap-up/extend": CreateCheck("the signed-in agent's own after-call work"),
    "/api/v1/billing/seats": CreateCheck("rents or releases the caller's own tenant's seats; the body names no other resource"),
    "/api/v1/billing/checkout": CreateCheck("a Stripe Checkout session for the caller's own tenant's customer (local billing: 409)"),
    "/api/v1/teams": CreateCheck("the agents and supervisors in the body are checked by BODY_REFERENCES"),
    "/api/v1/billing/portal": CreateCheck("a Stripe Billing Portal session for the caller's own tenant's customer (local billing: 409)"),
}

# Setup per tenant for singletons that have no id (value: a marker string).
async def configure_sso(h: "Harness", t: "TenantWorld") -> str:
    from kefu.platform.identity.models import OidcProvider

    issuer = f"https://sso.{t.slug}.test/realms/{t.slug}"
    async with h.db.tenant_session(tenant_id=t.id) as session:
        session.add(OidcProvider(tenant_id=t.id, issuer=issuer, client_id=f"kefu-{t.slug}", client_secret="s3cret"))
    return issuer


TENANT_SETUP: dict[str, Factory] = {"sso_issuer": configure_sso}

# --- routes outside the tenant API -------------------------------------------------

PUBLIC_ROUTES: dict[str, str] = {
    "/api/v1/auth/login": "sign-in: the tenant is named by slug, no token yet",
    "/api/v1/auth/refresh": "the refresh token itself identifies the session",
    "/api/v1/auth/logout": "revokes the presented refresh token or the caller's own sessions",
    "/api/v1/invitations/accept": "the invitation secret identifies user and tenant",
    "/api/v1/widget/{widget_key:str}/calls": "the caller widget: the public widget key names the entry point",
    "/api/v1/widget/calls/{call_id:uuid}": "the caller's own call: its caller token (X-Caller-Token) is checked with the id "
    "(test_caller_endpoints_refuse_another_tenants_call)",
    "/api/v1/widget/calls/{call_id:uuid}/hangup": "the caller's own call: its caller token (X-Caller-Token) is checked with the id "
    "(test_caller_endpoints_refuse_another_tenants_call)",
    "/api/v1/widget/calls/{call_id:uuid}/callback": "the caller's own call: its caller token (X-Caller-Token) is checked with the id "
    "(tests/tenants/test_calls.py::test_caller_token_names_its_tenant_and_the_caller_endpoints_never_open_a_platform_session)",
    "/api/v1/widget/{widget_key:str}/ice-servers": "the caller widget before its call: the public widget key names the entry point; "
    "answers ICE servers and a TURN credential only, limited per client IP (tests/tenants/test_ice_and_signalling.py)",
    "/api/v1/widget/calls/{call_id:uuid}/media": "the caller's own call: its caller token (X-Caller-Token) is checked with the id "
    "(tests/tenants/test_reconnect.py::test_a_caller_token_re_attaches_only_its_own_call)",
    "/health": "liveness for load balancers; no tenant data",
    "/ready": "readiness for load balancers (runtime, database, Redis answer); no tenant data",
    "/metrics": "Prometheus metrics behind KEFU_METRICS_TOKEN (404 while unset): platform-wide aggregates, no tenant ids in "
    "labels (tests/platform/test_metrics.py)",
    "/api/billing/stripe/webhook": "Stripe's webhooks: the signature is the authentication; the event's customer names the tenant "
    "(tests/billing/test_webhooks.py)",
    "/.well-known/jwks.json": "public signing keys",
    "/oauth/token": "OAuth2 token endpoint: the client credentials identify the tenant",
    "/sso/{tenant_slug:str}/login": "starts SSO for a tenant named by its public slug; returns a redirect only",
    "/sso/callback": "SSO redirect target: the signed state cookie names the tenant",
    "/call/{widget_key:str}": "the caller page: the public widget key names the entry point; shows the tenant's name only",
    "/agent": "the agent desktop's log-in page; its data comes from the API with the agent's token",
    "/portal": "the portal's log-in page; its data comes from the API with the admin's token",
    "/portal/ivr": "the IVR editor's log-in page; its data comes from the API with the admin's token",
    "/portal/billing": "the billing page's log-in page; its data comes from the API with the admin's token",
    "/portal/recordings": "the recordings page's log-in page; its data comes from the API with the user's token",
    "/qa": "the QA reviewer page's log-in page; its data comes from the API with the reviewer's token",
    "/qa/my": "the agent's QA page's log-in page; its data comes from the API with the agent's token",
    "/supervisor": "the supervisor page's log-in page; its data comes from the API with the supervisor's token",
    "/invite": "the invitation page; the secret stays in the URL fragment and goes only to /api/v1/invitations/accept",
}

PUBLIC_PREFIXES: dict[str, str] = {
    "/schema": "OpenAPI document and its viewers",
    "/static/": "static assets (JavaScript, CSS), no tenant data",
}

WEBSOCKET_ROUTES: dict[str, str] = {
    "/ws/agent": "the agent's channel is derived from the access token (tenant and user), never from the client; "
    "offers and candidates for another tenant's call answer call_not_found like a missing call "
    "(tests/tenants/test_ice_and_signalling.py::test_another_tenants_call_answers_exactly_like_a_call_that_does_not_exist)",
    "/ws/caller/{call_id:uuid}": "needs the call's caller token; another tenant's call closes with 4404 "
    "(test_caller_endpoints_refuse_another_tenants_call); messages for any other call answer call_not_found",
    "/ws/events": "tenant taken from the access token; other tenants' events are never delivered "
    "(tests/events/test_websocket.py)",
}


# --- other contexts' entries, kept beside this file (one file per context) ---------

def _merge(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    for name in ("ID_FACTORIES", "ROUTE_ROLES", "WRITE_BODIES", "BODY_REFERENCES", "NOT_REFERENCES", "LIST_ROUTES", "CREATE_ROUTES", "PUBLIC_ROUTES"):
        extra = getattr(module, name, {})
        ours = globals()[name]
        clash = set(extra) & set(ours)
        assert not clash, f"{module_name}.{name} repeats {sorted(map(str, clash))}"
        ours.update(extra)


for _module in ("qa_isolation", "recordings_isolation", "reports_isolation", "wallboard_isolation", "staffing_isolation"):
    _merge(_module)

# --- wallboard (issue 8, part C): its websocket entry, kept in wallboard_isolation.py ------
from wallboard_isolation import WEBSOCKET_ROUTES as _WALLBOARD_SOCKETS  # noqa: E402

WEBSOCKET_ROUTES.update(_WALLBOARD_SOCKETS)
# --- end of wallboard ----------------------------------------------------------------------
